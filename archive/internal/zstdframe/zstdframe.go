// Package zstdframe holds the zstd side of an archive's chunks (SPEC.md, "Chunks"): the one way they are
// compressed, a decoder with bounded memory, and a Checker that follows the structure of a chunk's frame
// as its bytes go by, never trusting the file.
package zstdframe

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
)

// MaxWindowBytes bounds the zstd window of a chunk (and the content size of a single-segment frame):
// what a decoder must hold in memory.
const MaxWindowBytes = 8 << 20

// NewEncoder returns the zstd encoder a writer uses for all its chunks. The options are fixed so that
// the same klauspost/compress version always writes the same bytes: concurrency is pinned (GOMAXPROCS
// would otherwise choose between two code paths), and with 2 the encoder compresses one block in the
// background while the caller hashes and fills the next, which is what keeps a 2-core export busy.
func NewEncoder(level int) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(2),
		zstd.WithWindowSize(MaxWindowBytes),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true),
	)
}

// NewDecoder returns a decoder with bounded memory: one block at a time (no read-ahead), a window of at
// most MaxWindowBytes. The caller must Close it.
func NewDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(MaxWindowBytes),
		zstd.WithDecoderMaxMemory(MaxWindowBytes*2),
		zstd.WithDecoderLowmem(true),
	)
}

// Checker reads a chunk file, hashing and counting every byte, and follows the structure of the zstd
// frame (RFC 8878, section 3.1.1) as the bytes go by: exactly one frame, with the content checksum, no
// dictionary, a window of at most MaxWindowBytes, well-formed block headers, and nothing after it. It
// refuses to read beyond the size it is given, so a grown file cannot make a reader loop. Its errors say
// what is wrong with the file; the caller says that this makes the archive corrupt.
type Checker struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
	err   error

	state   int
	hdr     [18]byte
	hdrLen  int
	hdrNeed int
	blk     [3]byte
	blkLen  int
	skip    int64 // bytes left in the current block body or checksum
	last    bool
}

const (
	fcHeader = iota
	fcBlockHeader
	fcBlockBody
	fcChecksum
	fcDone
)

const maxBlockSize = 128 << 10

func (c *Checker) Reset(r io.Reader, limit int64) {
	*c = Checker{r: r, h: c.h, limit: limit, hdrNeed: 5}
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
}

func (c *Checker) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if room := c.limit - c.n + 1; int64(len(p)) > room {
		p = p[:room] // read at most one byte past the expected size: enough to tell it is larger
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.n > c.limit {
		c.err = fmt.Errorf("the file is larger than the %d bytes of the manifest", c.limit)
		return 0, c.err
	}
	c.Scan(p[:n])
	if c.err != nil {
		return 0, c.err
	}
	return n, err
}

func (c *Checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("zstd frame: "+format, args...)
	}
}

func (c *Checker) Scan(p []byte) {
	for len(p) > 0 && c.err == nil {
		switch c.state {
		case fcHeader:
			k := copy(c.hdr[c.hdrLen:c.hdrNeed], p)
			c.hdrLen += k
			p = p[k:]
			if c.hdrLen < c.hdrNeed {
				return
			}
			if c.hdrNeed == 5 {
				c.header5()
			} else {
				c.headerDone()
			}
		case fcBlockHeader:
			k := copy(c.blk[c.blkLen:], p)
			c.blkLen += k
			p = p[k:]
			if c.blkLen < 3 {
				return
			}
			c.blkLen = 0
			v := uint32(c.blk[0]) | uint32(c.blk[1])<<8 | uint32(c.blk[2])<<16
			c.last = v&1 == 1
			size := int64(v >> 3)
			switch (v >> 1) & 3 {
			case 1: // RLE: one byte, repeated size times
				if size > maxBlockSize {
					c.fail("block of %d bytes exceeds %d", size, maxBlockSize)
				}
				size = 1
			case 3:
				c.fail("reserved block type")
			default:
				if size > maxBlockSize {
					c.fail("block of %d bytes exceeds %d", size, maxBlockSize)
				}
			}
			c.skip = size
			c.state = fcBlockBody
			c.afterBody()
		case fcBlockBody, fcChecksum:
			k := int64(len(p))
			if k > c.skip {
				k = c.skip
			}
			c.skip -= k
			p = p[k:]
			if c.skip > 0 {
				return
			}
			if c.state == fcBlockBody {
				c.afterBody()
			} else {
				c.state = fcDone
			}
		case fcDone:
			c.fail("data after the end of the frame")
			return
		}
	}
}

// afterBody moves on once a block body has been skipped (or immediately for an empty one).
func (c *Checker) afterBody() {
	if c.skip > 0 {
		return
	}
	if c.last {
		c.state, c.skip = fcChecksum, 4
	} else {
		c.state = fcBlockHeader
	}
}

func (c *Checker) header5() {
	magic := binary.LittleEndian.Uint32(c.hdr[:4])
	if magic != 0xFD2FB528 {
		if magic&0xFFFFFFF0 == 0x184D2A50 {
			c.fail("skippable frames are not allowed")
		} else {
			c.fail("not a zstd frame (magic %08x)", magic)
		}
		return
	}
	fhd := c.hdr[4]
	fcsFlag, single := fhd>>6, fhd>>5&1 == 1
	switch {
	case fhd&0x08 != 0:
		c.fail("reserved header bit set")
	case fhd&0x04 == 0:
		c.fail("no content checksum")
	case fhd&0x03 != 0:
		c.fail("dictionaries are not allowed")
	}
	need := 5
	if !single {
		need++
	}
	switch fcsFlag {
	case 0:
		if single {
			need++
		}
	case 1:
		need += 2
	case 2:
		need += 4
	case 3:
		need += 8
	}
	c.hdrNeed = need
	if c.hdrLen >= need {
		c.headerDone()
	}
}

func (c *Checker) headerDone() {
	fhd := c.hdr[4]
	single := fhd>>5&1 == 1
	if !single {
		wd := c.hdr[5]
		log := 10 + uint(wd>>3)
		base := uint64(1) << log
		window := base + base/8*uint64(wd&7)
		if window > MaxWindowBytes {
			c.fail("window of %d bytes exceeds %d", window, MaxWindowBytes)
		}
	} else {
		fcs := c.hdr[5:c.hdrNeed]
		var size uint64
		switch len(fcs) {
		case 1:
			size = uint64(fcs[0])
		case 2:
			size = uint64(binary.LittleEndian.Uint16(fcs)) + 256
		case 4:
			size = uint64(binary.LittleEndian.Uint32(fcs))
		case 8:
			size = binary.LittleEndian.Uint64(fcs)
		}
		if size > MaxWindowBytes {
			c.fail("single-segment frame of %d bytes exceeds %d", size, MaxWindowBytes)
		}
	}
	c.state = fcBlockHeader
}

// Complete returns nil when a whole frame was seen, else what is wrong.
func (c *Checker) Complete() error {
	if c.err != nil {
		return c.err
	}
	if c.state != fcDone {
		return errors.New("zstd frame is truncated")
	}
	return nil
}

// Err returns the first problem met, or nil.
func (c *Checker) Err() error { return c.err }

// Hash returns the SHA-256 of the bytes read so far (and given to Scan's caller's Write, see Scan).
func (c *Checker) Hash() hash.Hash { return c.h }

// Size returns the number of bytes read so far.
func (c *Checker) Size() int64 { return c.n }

// HashRest reads what is left of r, up to one byte beyond the size given to Reset, into the hash and the
// count without following the frame: after a problem, so that the file's size and digest can still be
// compared.
func (c *Checker) HashRest(r io.Reader) {
	c.err = nil
	c.state = fcDone
	buf := make([]byte, 32<<10)
	for c.n <= c.limit {
		n, err := r.Read(buf)
		c.h.Write(buf[:n])
		c.n += int64(n)
		if err != nil {
			break
		}
	}
}
