package archive

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// A chunk is one zstd frame (content checksum on, window at most zstdframe.MaxWindowBytes) holding JSON
// Lines. Writing one: chunkWriter compresses and hashes while writing, and commits the file durably
// under its final name (chunk_read.go reads one).

// flushBytes is how much the writer gathers before hashing and compressing a run of lines: large enough
// that per-call costs vanish, small enough to stay in cache.
const flushBytes = 256 << 10

// hashWriter counts and hashes what passes through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// chunkWriter writes one chunk file at a time to a temporary name; commit makes it durable and gives it
// its final name.
type chunkWriter struct {
	enc        *zstd.Encoder
	recipients []age.Recipient // encrypt every chunk to these; none: plain zstd
	sealer     io.WriteCloser  // the open chunk's age encryption
	stream     hash.Hash       // the writer's running stream digest, fed the same bytes

	info manifest.ChunkInfo
	f    NewFile // the open chunk's file, nil when none is open
	out  hashWriter
	raw  hash.Hash
	buf  []byte
	bw   *bufio.Writer
}

// writeBufferBytes is how much compressed output a chunkWriter gathers per write to the file.
const writeBufferBytes = 1 << 20

func (c *chunkWriter) open(st Storage, stream string, first int64, streamHash hash.Hash) error {
	c.info = manifest.ChunkInfo{Path: chunkName(stream, first, len(c.recipients) > 0), Stream: stream, First: first, Last: first}
	f, err := st.Create(archivePath(c.info.Path))
	if err != nil {
		return fmt.Errorf("create chunk: %w", err)
	}
	c.f = f
	if c.raw == nil {
		c.raw = sha256.New()
	}
	c.raw.Reset()
	// The encoder writes each compressed block as it is done, a few tens of KiB; one write a MiB spares
	// most of the system calls.
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(f, writeBufferBytes)
	} else {
		c.bw.Reset(f)
	}
	c.out = hashWriter{w: c.bw, h: sha256.New()}
	c.stream = streamHash
	if len(c.recipients) > 0 {
		// Compressed, then encrypted: the file's size and SHA-256 (BagIt's) are the ciphertext's.
		if c.sealer, err = age.Encrypt(&c.out, c.recipients...); err != nil {
			return fmt.Errorf("encrypt chunk: %w", err)
		}
		c.enc.Reset(c.sealer)
	} else {
		c.enc.Reset(&c.out)
	}
	if c.buf == nil {
		c.buf = make([]byte, 0, flushBytes+64<<10)
	}
	c.buf = c.buf[:0]
	return nil
}

// add appends one record line (with its LF) of the given token.
func (c *chunkWriter) add(token int64, line []byte) error {
	if c.info.Records == 0 {
		c.info.First = token
	}
	c.info.Last = token
	c.info.Records++
	c.info.RawSize += int64(len(line))
	if len(c.buf)+len(line) > cap(c.buf) {
		if err := c.flush(); err != nil {
			return err
		}
		if len(line) > cap(c.buf) {
			return c.write(line)
		}
	}
	c.buf = append(c.buf, line...)
	if len(c.buf) >= flushBytes {
		return c.flush()
	}
	return nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.write(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *chunkWriter) write(p []byte) error {
	c.raw.Write(p)
	c.stream.Write(p)
	if _, err := c.enc.Write(p); err != nil {
		return fmt.Errorf("compress chunk: %w", err)
	}
	return nil
}

// commit finishes the chunk and commits its file (finish, then NewFile.Commit).
func (c *chunkWriter) commit() (manifest.ChunkInfo, error) {
	info, f, err := c.finish()
	if err != nil {
		return manifest.ChunkInfo{}, err
	}
	if err := commitFile(f); err != nil {
		return manifest.ChunkInfo{}, err
	}
	return info, nil
}

// finish finishes the frame (and the encryption), writes out what is buffered and returns the chunk's
// description and its file, for the caller to commit; the chunkWriter is free for the next chunk. On
// error the file is left for abort (or a later Resume) to remove.
func (c *chunkWriter) finish() (manifest.ChunkInfo, NewFile, error) {
	if err := c.flush(); err != nil {
		return manifest.ChunkInfo{}, nil, err
	}
	if err := c.enc.Close(); err != nil {
		return manifest.ChunkInfo{}, nil, fmt.Errorf("compress chunk: %w", err)
	}
	if c.sealer != nil {
		err := c.sealer.Close()
		c.sealer = nil
		if err != nil {
			return manifest.ChunkInfo{}, nil, fmt.Errorf("encrypt chunk: %w", err)
		}
	}
	if err := c.bw.Flush(); err != nil {
		return manifest.ChunkInfo{}, nil, fmt.Errorf("write chunk: %w", err)
	}
	f := c.f
	c.f = nil
	c.info.Size = c.out.n
	c.info.SHA256 = hexSum(c.out.h)
	c.info.RawSHA256 = hexSum(c.raw)
	return c.info, f, nil
}

// commitFile makes a finished chunk's file durable under its final name; on error it is aborted.
func commitFile(f NewFile) error {
	if err := f.Commit(); err != nil {
		f.Abort()
		return fmt.Errorf("commit chunk: %w", err)
	}
	return nil
}

// abort discards the open chunk.
func (c *chunkWriter) abort() {
	c.enc.Reset(io.Discard)
	c.sealer = nil
	if c.bw != nil {
		c.bw.Reset(io.Discard)
	}
	if c.f != nil {
		c.f.Abort()
		c.f = nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
