package reader

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// EndState says how the data of a segment file ends.
type EndState string

// End states, as CheckSegments reports them.
const (
	// EndClosed: a −1 marker. The server closed the segment because the next transaction did not fit and
	// went on in a new file named after the next token.
	EndClosed EndState = "closed"
	// EndActive: a 0 marker. The segment was open for writing when copied, or was closed by a restart.
	EndActive EndState = "active"
	// EndNoMarker: the file ends exactly at a block boundary, where a marker was due. Real segments are
	// pre-allocated with room for the marker, so the copy was cut or trimmed; in the newest file this is
	// a tail cut.
	EndNoMarker EndState = "no-marker"
	// EndTailCut: the final block of the newest file is cut short or fails its checksum; see TailCut.
	EndTailCut EndState = "tail-cut"
	// EndCorrupt: reading stopped at damage; see the error.
	EndCorrupt EndState = "corrupt"
)

const (
	headerSize      = 5 // file version (1) + flags (4)
	blockHeaderSize = 7 // size (4) + transaction version (1) + event count (2)
	checksumSize    = 4
)

// scanner reads the blocks of one segment file at a time, verifying each before it exposes its entries.
// Its buffers are reused from block to block and file to file, so memory stays at the bufio buffer plus the
// largest block seen.
//
// How a bad block is judged "final" (AXON.md 3.4): Axon Server writes a transaction's entries and checksums
// before the size field of its first block, so a crash leaves a 0 where the transaction would start and never
// a half-written block. A
// damaged block at the end of the newest file therefore comes from a copy taken while the server wrote
// (the copy saw the size but not all the bytes after it), or from a copy cut short. The scanner accepts that
// explanation, and stops with a TailCut instead of an error, only when nothing valid can follow the block:
//   - the block runs past the end of the file, as its own size field says: nothing can follow it. Its
//     entries must also run past the end: entries that end inside the file at a different place than
//     the size says mean a damaged size field, which is corruption wherever it is;
//   - the block is whole but fails its checksum, and the next int32 is the 0 marker or the end of the file.
//     If anything else follows (a −1, another block, stale bytes), the server had moved on, so the block
//     was complete when written and its damage is corruption;
//   - the file ends exactly where the next size field or marker was due.
//
// In any other file, or anywhere else, the same damage is an error. A bad size, count or event length is an
// error everywhere: torn copies damage bytes, not the structure that the server wrote last.
type scanner struct {
	maxBlock int64
	br       *bufio.Reader
	buf      []byte // the current block's entries followed by its checksum
	entries  []int  // offsets in buf of the current block's entries (their length prefixes)
	hdr      [blockHeaderSize]byte

	file    SegmentFile
	newest  bool
	size    int64 // file size, from Stat when opened
	off     int64 // offset of the next block
	next    int64 // token (store position) of the next entry
	version byte
	flags   uint32
	blocks  int64

	blockOff   int64  // offset of the current block
	blockCRC   uint32 // its checksum (stored, and equal to the computed one)
	blockToken int64  // token of its first entry

	end    EndState
	endOff int64 // offset of the marker, cut or damage that ended the data
	cut    *TailCut
}

// start begins a file: reads and checks its header. r must be positioned at the start of the file and hold
// size bytes. newest says whether a damaged tail may be cut instead of failing.
func (s *scanner) start(r io.Reader, size int64, f SegmentFile, newest bool) error {
	if s.br == nil {
		s.br = bufio.NewReaderSize(r, readBufferSize)
	} else {
		s.br.Reset(r)
	}
	s.file, s.newest, s.size = f, newest, size
	s.off, s.next, s.version, s.flags, s.blocks = 0, f.First, 0, 0, 0
	s.blockOff, s.blockToken = 0, f.First
	s.end, s.endOff, s.cut = "", 0, nil
	s.entries = s.entries[:0]

	if size < headerSize {
		what := fmt.Sprintf("file is %d bytes, shorter than the %d-byte header", size, headerSize)
		if size == 0 {
			what = "file is empty"
		}
		return s.fail(0, f.First, fmt.Errorf("%w: %s", ErrTruncated, what))
	}
	var hdr [headerSize]byte
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		return s.readErr(0, err)
	}
	s.version, s.flags = hdr[0], binary.BigEndian.Uint32(hdr[1:])
	switch s.version {
	case 0:
		// Legacy files carry junk in the flags (AXON.md 3.2) and Axon Server ignores it; so do we.
	case 2:
		if s.flags != 0 {
			return s.fail(1, f.First, fmt.Errorf("%w: header flags 0x%08x: the store may be compressed or encrypted by a newer or Enterprise Edition Axon Server, which this reader cannot undo",
				ErrUnsupported, s.flags))
		}
	default:
		return s.fail(0, f.First, fmt.Errorf("%w: file version %d (known: 0 and 2)", ErrUnsupported, s.version))
	}
	s.off = headerSize
	return nil
}

// nextBlock reads and verifies the next block. It returns true with the block's entries in s.buf and
// s.entries; false and nil at the end of the file's data (s.end says how, and s.cut is set for a tail cut);
// or false and a *SegmentError.
func (s *scanner) nextBlock() (bool, error) {
	o := s.off
	rem := s.size - o
	s.entries = s.entries[:0]
	if rem == 0 {
		if s.newest {
			s.cutTail(o, ErrTruncated, "the file ends without an end marker; the copy may be cut short")
		}
		s.end, s.endOff = EndNoMarker, o
		return false, nil
	}
	if rem < 4 {
		return s.cutOrFail(o, ErrTruncated, "the file ends inside a block size field")
	}
	hdr := s.hdr[:] // a field, not a local: a local array passed to io.ReadFull escapes, once per block
	if _, err := io.ReadFull(s.br, hdr[:4]); err != nil {
		return false, s.readErr(o, err)
	}
	size := int64(int32(binary.BigEndian.Uint32(hdr[:4])))
	switch {
	case size == 0:
		s.end, s.endOff = EndActive, o
		return false, nil
	case size == -1:
		s.end, s.endOff = EndClosed, o
		return false, nil
	case size < 0:
		return false, s.fail(o, s.next, fmt.Errorf("%w: block size %d (end markers are 0 and -1)", ErrCorrupt, size))
	}
	if rem < blockHeaderSize {
		return s.cutOrFail(o, ErrTruncated, "the file ends inside a block header")
	}
	if _, err := io.ReadFull(s.br, hdr[4:]); err != nil {
		return false, s.readErr(o, err)
	}
	count := int64(int16(binary.BigEndian.Uint16(hdr[5:])))
	if count <= 0 {
		return false, s.fail(o+5, s.next, fmt.Errorf("%w: block event count %d (must be 1 to 32767)", ErrCorrupt, count))
	}

	// Buffer the block: all of it when it fits the file, else what the file still holds, to tell a cut
	// block from a damaged size field. Either way the length was checked against the bytes left in the file
	// and against the limit before the buffer grows.
	avail := rem - blockHeaderSize
	n := size + checksumSize
	fits := n <= avail
	if !fits {
		n = avail
	}
	capped := false
	if n > s.maxBlock+checksumSize {
		if fits {
			return false, s.fail(o, s.next, fmt.Errorf("%w: block of %d bytes, limit %d (raise SegmentsOptions.MaxBlockSize if the store holds transactions this large)",
				ErrTooLarge, size, s.maxBlock))
		}
		n, capped = s.maxBlock+checksumSize, true
	}
	if int64(cap(s.buf)) < n {
		// Grow geometrically so that slowly growing blocks do not reallocate each time, but never
		// beyond the limit: n itself was checked above.
		s.buf = make([]byte, max(n, min(2*int64(cap(s.buf)), s.maxBlock+checksumSize), 4<<10))
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.br, b); err != nil {
		return false, s.readErr(o, err)
	}
	short := func() (bool, error) {
		if capped {
			return false, s.fail(o, s.next, fmt.Errorf("%w: block of %d bytes runs past the end of the file, and its first %d bytes hold no block end (limit %d)",
				ErrTooLarge, size, s.maxBlock, s.maxBlock))
		}
		return s.cutOrFail(o, ErrTruncated, fmt.Sprintf("block of %d bytes runs past the end of the file (%d bytes left)", size, avail))
	}

	// A block that does not hold together, in the newest file, whose checksum field is still zero, with
	// nothing but zeros (the unused, pre-allocated rest of the file) or the end of the file after it, is
	// the last write, torn by a crash or a power cut: its size written, its second half not yet. That is a
	// cut tail, as a short copy is. A block with a checksum written is damage.
	damaged := func(failOff, token int64, err error) (bool, error) {
		s.entries = s.entries[:0]
		if fits && s.newest && binary.BigEndian.Uint32(b[size:]) == 0 {
			s.off = o + blockHeaderSize + size + checksumSize
			if s.endFollows() {
				s.cutTail(o, ErrTruncated, fmt.Sprintf("the final block does not hold together and only zeros follow it (a write cut short): %v", err))
				return false, nil
			}
		}
		return false, s.fail(failOff, token, err)
	}
	var p int64
	for i := int64(0); i < count; i++ {
		if p+4 > size {
			return damaged(o, s.next, fmt.Errorf("%w: block size %d too small for its %d events", ErrCorrupt, size, count))
		}
		if p+4 > n {
			return short()
		}
		l := int64(int32(binary.BigEndian.Uint32(b[p:])))
		at := o + blockHeaderSize + p
		if l < 0 {
			return damaged(at, s.next+i, fmt.Errorf("%w: event length %d", ErrCorrupt, l))
		}
		if p+4+l > size {
			return damaged(at, s.next+i, fmt.Errorf("%w: event length %d runs past the end of its block (block size %d)", ErrCorrupt, l, size))
		}
		if p+4+l > n {
			return short()
		}
		s.entries = append(s.entries, int(p))
		p += 4 + l
	}
	if p != size {
		return damaged(o, s.next, fmt.Errorf("%w: block size %d does not match its %d events (%d bytes)", ErrCorrupt, size, count, p))
	}
	if size+checksumSize > n {
		s.entries = s.entries[:0]
		return short()
	}
	s.off = o + blockHeaderSize + size + checksumSize
	stored := binary.BigEndian.Uint32(b[size:])
	if got := crc32.ChecksumIEEE(b[:size]); got != stored {
		s.entries = s.entries[:0]
		reason := fmt.Sprintf("stored 0x%08x, computed 0x%08x", stored, got)
		if s.newest && s.endFollows() {
			s.cutTail(o, ErrChecksum, "checksum mismatch in the final block, "+reason)
			return false, nil
		}
		return false, s.fail(o, s.next, fmt.Errorf("%w: %s", ErrChecksum, reason))
	}
	for i, p := range s.entries {
		l := int(binary.BigEndian.Uint32(b[p:]))
		if err := checkEvent(b[p+4 : p+4+l]); err != nil {
			s.entries = s.entries[:0]
			return false, s.fail(o+blockHeaderSize+int64(p), s.next+int64(i), fmt.Errorf("%w: event is not a valid protobuf Event (%v), although its block's checksum matches", ErrCorrupt, err))
		}
	}
	s.blocks++
	s.blockOff, s.blockToken, s.blockCRC = o, s.next, stored
	s.next += count
	return true, nil
}

// endFollows reports whether the 0 marker or the end of the file follows the block just read.
func (s *scanner) endFollows() bool {
	if s.size-s.off < 4 {
		return true
	}
	b, err := s.br.Peek(4)
	return err == nil && binary.BigEndian.Uint32(b) == 0
}

func (s *scanner) cutTail(off int64, sentinel error, reason string) {
	s.end, s.endOff = EndTailCut, off
	s.cut = &TailCut{Kind: s.file.Kind, File: s.file.Path, Offset: off, Token: s.next, Reason: reason, Err: sentinel}
}

// cutOrFail ends the data at a block that runs past the end of the file: a tail cut in the newest file, an
// error in any other.
func (s *scanner) cutOrFail(off int64, sentinel error, reason string) (bool, error) {
	if s.newest {
		s.cutTail(off, sentinel, reason)
		return false, nil
	}
	return false, s.fail(off, s.next, fmt.Errorf("%w: %s (only the newest file may end early)", sentinel, reason))
}

func (s *scanner) fail(off, token int64, err error) error {
	s.end, s.endOff = EndCorrupt, off
	return &SegmentError{File: s.file.Path, Offset: off, Token: token, Kind: s.file.Kind, Err: err}
}

// readErr reports a failed read of bytes the size check said were there: an I/O error, or a file that
// shrank while being read.
func (s *scanner) readErr(off int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w: the file shrank while being read: %w", ErrTruncated, err)
	}
	return s.fail(off, s.next, err)
}

// event returns the k-th entry of the current block and its file offset.
func (s *scanner) event(k int) ([]byte, int64) {
	p := s.entries[k]
	l := int(binary.BigEndian.Uint32(s.buf[p:]))
	end := p + 4 + l
	return s.buf[p+4 : end : end], s.blockOff + blockHeaderSize + int64(p)
}
