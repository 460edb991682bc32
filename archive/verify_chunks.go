package archive

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/klauspost/compress/zstd"

	"github.com/axarchive/axarchive/archive/internal/zstdframe"
	"github.com/axarchive/axarchive/internal/ordered"
)

// The chunk passes of Verify: a quick one that hashes every chunk file, a full one that decompresses
// the chunks into batches of lines for the workers, and the transactions stream's.

// quickChunks hashes every chunk file (and follows its zstd frame structure) on the workers, reporting
// in manifest order.
func (v *verifier) quickChunks() error {
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	chunks := v.a.m.Chunks
	p := ordered.New(func() *qbatch { return new(qbatch) }, func() func(*qbatch) {
		buf := make([]byte, 256<<10)
		return func(b *qbatch) { v.hashChunk(ctx, b, buf) }
	})
	go func() {
		defer p.Finish()
		for i := range chunks {
			s, err := p.Get(ctx)
			if err != nil {
				return
			}
			s.Batch.chunk = i
			if p.Submit(ctx, s) != nil {
				return
			}
		}
	}()
	p.Drain(func(b *qbatch) error {
		if v.ctx.Err() != nil {
			return nil
		}
		v.report.Chunks++
		v.report.Bytes += b.n
		if b.sum != "" {
			v.sums[archivePath(chunks[b.chunk].Path)] = b.sum
		}
		v.problems(b.errs)
		return nil
	}, cancel)
	return v.ctx.Err()
}

// qbatch is one chunk file of a quick verification.
type qbatch struct {
	chunk int    // index in the manifest's chunks
	sum   string // SHA-256 of the file as read
	n     int64  // bytes read
	errs  error
}

func (b *qbatch) Reset() { *b = qbatch{} }

// hashChunk hashes the file of b's chunk with buf, following its frame, and compares it with the
// manifest.
func (v *verifier) hashChunk(ctx context.Context, b *qbatch, buf []byte) {
	c := &v.a.m.Chunks[b.chunk]
	var r chunkReader
	r.info, r.path = c, archivePath(c.Path)
	f, size, err := openSized(v.a.st, r.path)
	if err != nil {
		b.errs = r.fileError(err)
		return
	}
	var errs []error
	if size != c.Size {
		errs = append(errs, errorf(r.path, 0, -1, ErrCorrupt, "size is %d bytes, the manifest says %d", size, c.Size))
	}
	// Hash the whole file and follow the frame's structure beside it, so that a structural problem does
	// not keep the digest from being compared.
	limit := max(c.Size, size)
	var fc zstdframe.Checker
	fc.Reset(nil, limit)
	// An encrypted chunk's frame is inside the ciphertext: a quick pass checks the file's size and
	// SHA-256 only, a full one decrypts and checks the frame.
	encrypted := chunkEncrypted(c.Path)
	var n int64
	var rerr error
	for n <= limit && ctx.Err() == nil {
		k, err := f.Read(buf[:min(int64(len(buf)), limit-n+1)])
		fc.Hash().Write(buf[:k])
		if !encrypted {
			fc.Scan(buf[:k])
		}
		n += int64(k)
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	f.Close()
	if rerr != nil {
		errs = append(errs, errorf(r.path, 0, -1, ErrCorrupt, "%v", unwrapPath(rerr)))
	} else if err := fc.Complete(); err != nil && !encrypted {
		errs = append(errs, &Error{Path: r.path, Token: -1, Err: fmt.Errorf("%w: %w", ErrCorrupt, err)})
	}
	sum := hexSum(fc.Hash())
	if rerr == nil && sum != c.SHA256 {
		errs = append(errs, errorf(r.path, 0, -1, ErrCorrupt, "sha256 is %s, the manifest says %s", sum, c.SHA256))
	}
	b.sum, b.n, b.errs = sum, n, joinErrors(errs)
}

// Full verification runs as a pipeline. One goroutine (reader) opens the chunks in order, hashes and
// decompresses them, feeds the stream digests and cuts the lines into batches; workers parse and
// validate the lines of a batch (the costly part); the calling goroutine takes the batches back in
// order and follows tokens, counts and types.

const (
	batchLines = 2048
	batchBytes = 1 << 20
)

type vbatch struct {
	chunk     int    // index in the manifest's chunks
	firstLine int64  // line number of the first line
	buf       []byte // the lines
	ends      []int
	// filled by the worker
	tokens   []int64 // -1 when the line has no readable token
	types    []string
	sizes    []int64 // VerifyOptions.Measure of each line's record, -1 when it did not parse
	problems []linedError
	// set by the reader on the last batch of a chunk
	end       bool
	chunkErrs error
	partial   bool // the chunk could not be read to its end
	rawBytes  int64
	fileBytes int64
	fileSum   string
}

type linedError struct {
	idx int
	err *Error
}

func (b *vbatch) Reset() {
	b.buf, b.ends, b.tokens, b.types, b.problems = b.buf[:0], b.ends[:0], b.tokens[:0], b.types[:0], b.problems[:0]
	b.sizes = b.sizes[:0]
	b.end, b.chunkErrs, b.partial, b.rawBytes, b.fileBytes, b.fileSum = false, nil, false, 0, 0, ""
}

func (v *verifier) fullChunks() error {
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	chunks := recordChunks(v.a.m.Chunks)
	evDigest, snDigest := sha256.New(), sha256.New()
	dec, err := zstdframe.NewDecoder()
	if err != nil {
		return fmt.Errorf("zstd decoder: %w", err)
	}
	p := ordered.New(func() *vbatch { return new(vbatch) }, func() func(*vbatch) {
		var parser recordParser
		names := make(names)
		return func(b *vbatch) { v.validate(b, chunks[b.chunk].Stream, &parser, names) }
	})
	go func() {
		defer p.Finish()
		defer dec.Close()
		for i := range chunks {
			digest := evDigest
			if chunks[i].Stream == manifest.StreamSnapshots {
				digest = snDigest
			}
			if !v.readChunk(ctx, i, dec, digest, p) {
				return
			}
		}
	}()
	c := newCollector(v)
	p.Drain(func(b *vbatch) error { c.batch(b); return nil }, cancel)
	if err = v.ctx.Err(); err != nil {
		return err
	}
	c.finish(hexSum(evDigest), hexSum(snDigest))
	return nil
}

// recordChunks returns the chunks of the record streams: those before the transactions chunks, which
// come last (Open checked the order) and are verified by transactions.
func recordChunks(chunks []manifest.ChunkInfo) []manifest.ChunkInfo {
	for i, c := range chunks {
		if c.Stream == manifest.StreamTransactions {
			return chunks[:i]
		}
	}
	return chunks
}

// transactions verifies the transactions stream in full: every chunk against the manifest, every line
// canonical, the runs grouping exactly the archive's event tokens, the count and the digest. The first
// problem stops it: what follows a broken run cannot be placed.
func (v *verifier) transactions() error {
	if v.a.m.Transactions == nil {
		return nil
	}
	for _, c := range v.a.m.Chunks {
		if c.Stream == manifest.StreamTransactions {
			v.report.Chunks++
			v.report.Bytes += c.Size
			v.report.RawBytes += c.RawSize
		}
	}
	s := v.a.source(manifest.StreamTransactions, v.a.m.Transactions.SHA256)
	s.contentVerified = false
	it := newIterator(v.ctx, manifest.StreamTransactions, math.MinInt64, s)
	t := &txIterator{it: it, follow: newTxFollower(v.a.m)}
	defer t.Close()
	for t.Next() {
	}
	if err := v.ctx.Err(); err != nil {
		return err
	}
	v.problems(t.Err())
	return nil
}

// readChunk is the reader's work for one chunk; it returns false when cancelled.
func (v *verifier) readChunk(ctx context.Context, i int, dec *zstd.Decoder, digest hash.Hash, p *ordered.Pipeline[*vbatch]) bool {
	info := &v.a.m.Chunks[i]
	var s *ordered.Slot[*vbatch]
	get := func() (*vbatch, bool) {
		var err error
		if s, err = p.Get(ctx); err != nil {
			return nil, false
		}
		s.Batch.chunk = i
		return s.Batch, true
	}
	send := func(*vbatch) bool { return p.Submit(ctx, s) == nil }
	b, ok := get()
	if !ok {
		return false
	}
	b.firstLine = 1
	cr := chunkReader{identities: v.a.identities}
	err := cr.open(v.a.st, info, dec, digest, false)
	if err != nil {
		b.end, b.chunkErrs, b.partial = true, err, true
		return send(b)
	}
	var errs []error
	for {
		line, err := cr.readLine()
		if err == io.EOF {
			errs = append(errs, cr.finish())
			break
		}
		if err != nil {
			errs = append(errs, err)
			b.partial = true
			// The rest of the chunk cannot be read; still compare the file's size and digest.
			if size, sum := cr.drain(); size != info.Size {
				errs = append(errs, errorf(cr.path, 0, -1, ErrCorrupt, "size is %d bytes, the manifest says %d", size, info.Size))
			} else if sum != info.SHA256 {
				errs = append(errs, errorf(cr.path, 0, -1, ErrCorrupt, "sha256 is %s, the manifest says %s", sum, info.SHA256))
			}
			break
		}
		if len(b.ends) >= batchLines || (len(b.buf)+len(line) > batchBytes && len(b.ends) > 0) {
			next := cr.lines
			if !send(b) {
				cr.close()
				return false
			}
			if b, ok = get(); !ok {
				cr.close()
				return false
			}
			b.firstLine = next
		}
		b.buf = append(b.buf, line...)
		b.ends = append(b.ends, len(b.buf))
	}
	cr.close()
	b.end = true
	b.chunkErrs = joinErrors(nonNil(errs))
	b.rawBytes = cr.raw.n
	b.fileBytes, b.fileSum = cr.fileDigest()
	return send(b)
}

func nonNil(errs []error) []error {
	out := errs[:0]
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}
