package archive

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/axarchive/axarchive/archive/internal/zstdframe"
)

// Reading a chunk: chunkReader decompresses, hashes, checks the frame's structure (zstdframe.Checker)
// and splits lines, never trusting the file.

// rawReader counts and hashes the decompressed bytes and stops a decompression bomb: reading more than
// limit bytes is an error, found after at most one byte too many.
type rawReader struct {
	r      io.Reader
	h      hash.Hash // nil: not hashed
	stream hash.Hash // optional: the reader's running stream digest
	n      int64
	limit  int64
}

func (r *rawReader) Read(p []byte) (int, error) {
	if room := r.limit - r.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := r.r.Read(p)
	if r.n+int64(n) > r.limit {
		// Deliver nothing beyond the limit: the lines up to it are read, then this error.
		n = int(r.limit - r.n)
		if r.h != nil {
			r.h.Write(p[:n])
		}
		if r.stream != nil {
			r.stream.Write(p[:n])
		}
		r.n = r.limit + 1
		return n, fmt.Errorf("%w: decompresses to more than the %d bytes of the manifest", ErrCorrupt, r.limit)
	}
	if r.h != nil {
		r.h.Write(p[:n])
	}
	if r.stream != nil {
		r.stream.Write(p[:n])
	}
	r.n += int64(n)
	return n, err
}

// chunkReader reads the lines of one chunk file, checking everything against its ChunkInfo. It owns
// the file it opens; the decoder and buffers are lent by its user and reused from chunk to chunk.
type chunkReader struct {
	identities []age.Identity // for encrypted chunks
	cipher     cipherReader   // the file's bytes, for an encrypted chunk; src then checks the plaintext frame
	plain      errTap         // what age decrypted, and why it stopped
	encrypted  bool
	info       *manifest.ChunkInfo
	path       string // relative to the archive root, for errors
	f          io.ReadCloser
	src        zstdframe.Checker
	dec        *zstd.Decoder
	raw        rawReader
	rawHash    hash.Hash // kept from chunk to chunk; raw.h is it or nil
	br         *bufio.Reader
	long       []byte
	lines      int64
	eof        bool
}

const readBufferBytes = 256 << 10

// open opens the chunk file in st. streamHash, if not nil, is fed the decompressed bytes. With
// contentVerified the decompressed bytes are not hashed: the caller knows that a full verification found
// that these very file bytes (still hashed and compared with the manifest) decompress to rawSha256.
func (c *chunkReader) open(st Storage, info *manifest.ChunkInfo, dec *zstd.Decoder, streamHash hash.Hash, contentVerified bool) error {
	c.info, c.path = info, archivePath(info.Path)
	c.lines, c.eof = 0, false
	f, size, err := openSized(st, c.path)
	if err != nil {
		return c.fileError(err)
	}
	if size != info.Size {
		f.Close()
		return errorf(c.path, 0, -1, ErrCorrupt, "size is %d bytes, the manifest says %d", size, info.Size)
	}
	c.f = f
	c.encrypted = chunkEncrypted(info.Path)
	if c.encrypted {
		c.cipher.reset(f, info.Size)
		plain, err := age.Decrypt(&c.cipher, c.identities...)
		if err != nil {
			c.close()
			return &Error{Path: c.path, Token: -1, Err: decryptError(err, len(c.identities))}
		}
		// The plaintext frame is shorter than the ciphertext: the file's size bounds it.
		c.plain = errTap{r: plain}
		c.src.Reset(&c.plain, info.Size)
	} else {
		c.src.Reset(f, info.Size)
	}
	c.dec = dec
	if err := dec.Reset(&c.src); err != nil {
		c.close()
		return c.wrap(err)
	}
	h := c.rawHash
	if contentVerified {
		h = nil
	} else {
		if h == nil {
			c.rawHash = sha256.New()
			h = c.rawHash
		}
		h.Reset()
	}
	c.raw = rawReader{r: dec, h: h, stream: streamHash, limit: info.RawSize}
	if c.br == nil {
		c.br = bufio.NewReaderSize(&c.raw, readBufferBytes)
	} else {
		c.br.Reset(&c.raw)
	}
	return nil
}

func (c *chunkReader) fileError(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return errorf(c.path, 0, -1, ErrCorrupt, "missing")
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return errorf(c.path, 0, -1, ErrCorrupt, "%v", err)
}

// wrap turns an error met while reading into an *Error at the current line. A structural problem of
// the frame is reported in preference to the decoder's view of it.
func (c *chunkReader) wrap(err error) error {
	var ae *Error
	if errors.As(err, &ae) {
		return err
	}
	if ferr := c.src.Err(); ferr != nil {
		err = fmt.Errorf("%w: %w", ErrCorrupt, ferr)
	} else if c.encrypted && c.plain.err != nil {
		// age authenticates each 64 KiB: a change to the ciphertext stops it, not the decompressor.
		err = fmt.Errorf("%w: decrypt: %v", ErrCorrupt, c.plain.err)
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w: truncated: %v", ErrCorrupt, err)
	} else if !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	if c.lines > 0 {
		err = fmt.Errorf("after line %d: %w", c.lines, err)
	}
	return &Error{Path: c.path, Token: -1, Err: err}
}

// readLine returns the next line with its LF, valid until the next call, or io.EOF after the last one.
// It enforces maxRecordBytes, and rejects empty lines and a last line without LF.
func (c *chunkReader) readLine() ([]byte, error) {
	if c.eof {
		return nil, io.EOF
	}
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(c.long) > maxRecordBytes {
				return nil, &Error{Path: c.path, Line: c.lines + 1, Token: -1, Err: fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, maxRecordBytes)}
			}
			line, err = c.br.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if err == io.EOF {
		c.eof = true
		if len(line) == 0 {
			return nil, io.EOF
		}
		return nil, &Error{Path: c.path, Line: c.lines + 1, Token: -1, Err: fmt.Errorf("%w: the last line has no LF", ErrRecord)}
	}
	if err != nil {
		c.eof = true
		return nil, c.wrap(err)
	}
	c.lines++
	if len(line) > maxRecordBytes {
		return nil, &Error{Path: c.path, Line: c.lines, Token: -1, Err: fmt.Errorf("%w: line of %d bytes is longer than %d", ErrTooLarge, len(line), maxRecordBytes)}
	}
	if len(line) == 1 {
		return nil, &Error{Path: c.path, Line: c.lines, Token: -1, Err: fmt.Errorf("%w: empty line", ErrRecord)}
	}
	if cap(c.long) > 4*readBufferBytes && len(line) <= readBufferBytes {
		c.long = nil // do not keep a huge buffer for one long line
	}
	return line, nil
}

// finish checks, after readLine returned io.EOF, everything the manifest says about the chunk except
// the tokens (which its user follows). Every mismatch found is returned, joined.
func (c *chunkReader) finish() error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, errorf(c.path, 0, -1, ErrCorrupt, format, args...))
	}
	// Read what the decoder left (nothing, for a valid chunk) so that size and digest cover the file.
	if _, err := io.Copy(io.Discard, &c.src); err != nil {
		errs = append(errs, c.wrap(err))
	} else if err := c.src.Complete(); err != nil {
		errs = append(errs, &Error{Path: c.path, Token: -1, Err: fmt.Errorf("%w: %w", ErrCorrupt, err)})
	}
	if c.encrypted {
		// age has read its last payload chunk; anything after it is part of the file all the same.
		if _, err := io.Copy(io.Discard, &c.cipher); err != nil {
			errs = append(errs, c.wrap(err))
		}
	}
	fileSize, sum := c.fileDigest()
	if fileSize != c.info.Size {
		fail("size is %d bytes, the manifest says %d", fileSize, c.info.Size)
	}
	if sum != c.info.SHA256 {
		fail("sha256 is %s, the manifest says %s", sum, c.info.SHA256)
	}
	if c.raw.n != c.info.RawSize {
		fail("decompresses to %d bytes, the manifest says rawSize %d", c.raw.n, c.info.RawSize)
	}
	if c.raw.h != nil { // nil: contentVerified, and the file's digest above stands for its content
		if sum := hexSum(c.raw.h); sum != c.info.RawSHA256 {
			fail("decompressed sha256 is %s, the manifest says rawSha256 %s", sum, c.info.RawSHA256)
		}
	}
	if c.lines != c.info.Records {
		fail("holds %d records, the manifest says %d", c.lines, c.info.Records)
	}
	return joinErrors(errs)
}

// fileDigest returns the size and SHA-256 of the file bytes read so far: the ciphertext's for an
// encrypted chunk.
func (c *chunkReader) fileDigest() (int64, string) {
	if c.encrypted {
		return c.cipher.n, hexSum(c.cipher.h)
	}
	return c.src.Size(), hexSum(c.src.Hash())
}

// drain reads the rest of the file after an error, so that the file's size and digest can still be
// compared with the manifest.
func (c *chunkReader) drain() (size int64, sum string) {
	if c.f == nil {
		return 0, ""
	}
	if c.encrypted {
		io.Copy(io.Discard, &c.cipher)
		return c.cipher.n, hexSum(c.cipher.h)
	}
	c.src.HashRest(c.f)
	return c.src.Size(), hexSum(c.src.Hash())
}

func (c *chunkReader) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}
