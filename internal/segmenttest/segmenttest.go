// Package segmenttest writes Axon Server segment files (*.events, *.snapshots) for tests and benchmarks:
// single files with chosen headers, blocks and end markers, and damaged copies, which the real writer
// (internal/writer's SegmentStore) never makes; whole generated stores, which it writes with that writer.
// The format is AXON.md section 3; the reader under test is internal/reader.
//
// It is for tests only: it trusts its arguments and writes whatever it is told, including invalid files.
package segmenttest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Suffixes of the two kinds of segment files.
const (
	Events    = ".events"
	Snapshots = ".snapshots"
)

// Name returns the file name Axon Server gives the segment whose first token (store position) is first.
func Name(first int64, suffix string) string { return fmt.Sprintf("%020d%s", first, suffix) }

// Options tune WriteSegment. The zero value writes a version-2-style file of exactly the needed size ending
// with a 0 marker (an active segment), with transaction version equal to the file version.
type Options struct {
	// Flags goes into the header after the version byte.
	Flags uint32
	// TxVersion, if set, is the version byte of every block; otherwise the file version is used.
	TxVersion *byte
	// Size pre-allocates the file to this many bytes (zero-filled past the data) as Axon Server does;
	// 0 makes the file end right after the end marker (or Trailer).
	Size int64
	// Marker is the int32 written after the last block: 0 (active segment) or -1 (closed). Other values
	// make damaged files.
	Marker int32
	// NoMarker leaves the marker out, so the file ends right after the last block (unless Size or
	// Trailer add bytes).
	NoMarker bool
	// Trailer is written after the marker: stale bytes that a reader must never look at.
	Trailer []byte
}

// Layout says where WriteSegment put things, for tests that damage files at exact places.
type Layout struct {
	// Blocks lists the blocks in file order.
	Blocks []BlockLayout
	// End is the offset of the end marker (or where it would be, with NoMarker).
	End int64
	// Size is the file size.
	Size int64
}

// BlockLayout is the position of one block.
type BlockLayout struct {
	// Offset is the block's size field; the transaction version is at Offset+4 and the count at Offset+5.
	Offset int64
	// Size is the value of the size field: the bytes of the entries.
	Size int64
	// Events are the offsets of the entries' length prefixes (the event bytes follow 4 bytes later).
	Events []int64
	// Checksum is the offset of the block's CRC-32.
	Checksum int64
}

// WriteSegment writes a segment file at path with the given file version and blocks, each block a list of
// event byte strings. It overwrites any existing file.
func WriteSegment(path string, version byte, blocks [][][]byte, opts *Options) (*Layout, error) {
	if opts == nil {
		opts = &Options{}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	lay, err := writeSegment(f, version, blocks, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return lay, err
}

func writeSegment(f *os.File, version byte, blocks [][][]byte, opts *Options) (*Layout, error) {
	w := bufio.NewWriter(f)
	var hdr [5]byte
	hdr[0] = version
	binary.BigEndian.PutUint32(hdr[1:], opts.Flags)
	w.Write(hdr[:])
	tx := version
	if opts.TxVersion != nil {
		tx = *opts.TxVersion
	}
	lay := &Layout{}
	off := int64(len(hdr))
	var block []byte
	for _, events := range blocks {
		var bl BlockLayout
		block, bl = AppendBlock(block[:0], tx, events)
		bl.Offset = off
		for i := range bl.Events {
			bl.Events[i] += off
		}
		bl.Checksum += off
		lay.Blocks = append(lay.Blocks, bl)
		w.Write(block)
		off += int64(len(block))
	}
	lay.End = off
	if !opts.NoMarker {
		var m [4]byte
		binary.BigEndian.PutUint32(m[:], uint32(opts.Marker))
		w.Write(m[:])
		off += 4
	}
	w.Write(opts.Trailer)
	off += int64(len(opts.Trailer))
	if err := w.Flush(); err != nil {
		return nil, err
	}
	lay.Size = max(off, opts.Size)
	if lay.Size > off {
		// Extending with Truncate leaves a sparse run of zeros, like a fresh pre-allocated segment,
		// without writing them.
		if err := f.Truncate(lay.Size); err != nil {
			return nil, err
		}
	}
	return lay, nil
}

// AppendBlock appends one encoded block (size, transaction version, count, entries, CRC-32) to dst, and
// returns its layout relative to the block start.
func AppendBlock(dst []byte, txVersion byte, events [][]byte) ([]byte, BlockLayout) {
	start := len(dst)
	size := 0
	for _, e := range events {
		size += 4 + len(e)
	}
	bl := BlockLayout{Size: int64(size), Events: make([]int64, 0, len(events))}
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst = append(dst, txVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(events)))
	entries := len(dst)
	for _, e := range events {
		bl.Events = append(bl.Events, int64(len(dst)-start))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(e)))
		dst = append(dst, e...)
	}
	bl.Checksum = int64(len(dst) - start)
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[entries:]))
	return dst, bl
}

// FlipBit inverts one bit of the byte at off in the file at path.
func FlipBit(path string, off int64, bit uint) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return err
	}
	b[0] ^= 1 << (bit % 8)
	_, err = f.WriteAt(b[:], off)
	return err
}

// PutInt32 overwrites the big-endian int32 at off in the file at path.
func PutInt32(path string, off int64, v int32) error {
	return WriteAt(path, off, binary.BigEndian.AppendUint32(nil, uint32(v)))
}

// WriteAt overwrites bytes at off in the file at path.
func WriteAt(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CopyDir copies the regular files of src (not its subdirectories) into a new temporary directory of tb
// and returns that directory. The copies are writable, ready to be damaged.
func CopyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(dst, e.Name()), filepath.Join(src, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
