package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	sjson "github.com/segmentio/encoding/json"

	"github.com/axarchive/axarchive/archive/internal/bagit"
	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/archive/internal/zstdframe"
	"github.com/axarchive/axarchive/internal/ordered"
)

// VerifyOptions configure Archive.Verify. The zero value runs a full verification on all cores.
type VerifyOptions struct {
	// Quick checks the BagIt files, the file list, and every file's size and SHA-256 (and the
	// structure of each zstd frame), without decompressing.
	Quick bool
	// Problem, if set, is called with every problem as it is found, in a deterministic order (tag files,
	// file list, chunks in manifest order, line by line, then stream totals), from the goroutine that
	// called Verify.
	Problem func(*Error)
	// Measure, if set, is called in a full verification with every event record that parses, on the
	// validating goroutines (concurrently; the record is lent for the call only), and Measured, if set,
	// with each such event's token and what Measure returned, in token order, on the goroutine that called
	// Verify: whatever the caller needs to know of every event (an import, the size of each message it
	// will send) then costs no second read.
	Measure  func(*Record) int64
	Measured func(token, value int64)
}

// VerifyReport is the outcome of Archive.Verify.
type VerifyReport struct {
	Quick     bool  `json:"quick"`
	Chunks    int   `json:"chunks"`    // chunk files checked
	Bytes     int64 `json:"bytes"`     // compressed bytes read
	RawBytes  int64 `json:"rawBytes"`  // decompressed bytes checked (full verification)
	Events    int64 `json:"events"`    // event records checked (full verification)
	Snapshots int64 `json:"snapshots"` // snapshot records checked (full verification)
	// Fingerprint is computed from the records read (full verification), not taken from the manifest.
	Fingerprint  string   `json:"fingerprint,omitempty"`
	ProblemCount int64    `json:"problemCount"`
	Problems     []*Error `json:"-"` // the first MaxReportedProblems
}

// MaxReportedProblems bounds VerifyReport.Problems; VerifyOptions.Problem sees all of them, except that
// a chunk reports at most 100 line-level problems.
const MaxReportedProblems = 1000

const maxChunkLineProblems = 100

// OK reports whether no problem was found.
func (r *VerifyReport) OK() bool { return r.ProblemCount == 0 }

// Err returns nil when no problem was found, else an error wrapping ErrVerify and the problems kept in
// the report (one per line in its message; errors.Is and errors.As see each of them).
func (r *VerifyReport) Err() error { return r.ErrFirst(len(r.Problems)) }

// ErrFirst is Err naming at most n of the problems, and how many more there are: for a caller that
// refuses an archive and points at `axarchive verify` for the whole list.
func (r *VerifyReport) ErrFirst(n int) error {
	if r.OK() {
		return nil
	}
	errs := []error{fmt.Errorf("%w: %d problems", ErrVerify, r.ProblemCount)}
	for i, p := range r.Problems {
		if i == n {
			errs = append(errs, fmt.Errorf("… and %d more (axarchive verify lists them all)", r.ProblemCount-int64(i)))
			break
		}
		errs = append(errs, p)
	}
	return joinErrors(errs)
}

type verifier struct {
	ctx    context.Context
	a      *Archive
	opts   VerifyOptions
	report *VerifyReport
	// payload files found on disk (relative to the archive root) with their sizes
	found map[string]int64
	sums  map[string]string // SHA-256 of chunk files as read

	events, snapshots *recordSchema
}

func (v *verifier) problem(e *Error) {
	v.report.ProblemCount++
	if len(v.report.Problems) < MaxReportedProblems {
		v.report.Problems = append(v.report.Problems, e)
	}
	if v.opts.Problem != nil {
		v.opts.Problem(e)
	}
}

func (v *verifier) problems(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			v.problems(e)
		}
		return
	}
	var ae *Error
	if errors.As(err, &ae) {
		v.problem(ae)
	} else {
		v.problem(&Error{Token: -1, Err: err})
	}
}

// Verify checks the archive against its manifest and the format (SPEC.md, "Verification"): the BagIt
// files and every digest in them, that the files present are exactly those listed (no symbolic links),
// every chunk's size, SHA-256 and zstd frame; and, unless opts.Quick, every chunk decompressed (sizes,
// digests, record counts), every record against the JSON Schema and the canonical encoding, token order
// and continuity (or the declared gaps), first and last tokens, per-type counts, the stream digests and
// the fingerprint. It reports every problem, not just the first. It returns an error wrapping ErrVerify
// when it found any, the context's error when cancelled, and nil otherwise; the report is returned in
// every case. After a full verification without problems, the Archive's iterators no longer hash what
// they decompress (see Iterator).
func (a *Archive) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	v := &verifier{ctx: ctx, a: a, opts: opts, report: &VerifyReport{Quick: opts.Quick},
		found: map[string]int64{}, sums: map[string]string{}}
	v.events, v.snapshots = newRecordSchema(StreamEvents), newRecordSchema(StreamSnapshots)
	tags := v.readTags()
	v.walk()
	v.checkBag(tags)
	var err error
	if !opts.Quick && a.encrypted() && len(a.identities) == 0 {
		// Every chunk would fail alike; the manifest, the tag files and the file list were checked.
		return v.report, fmt.Errorf("%s: %w (a quick verification checks the encrypted files' checksums without one)", a.dir, ErrEncrypted)
	}
	if opts.Quick {
		err = v.quickChunks()
	} else {
		err = v.fullChunks()
		if err == nil {
			err = v.transactions()
		}
	}
	if err == nil {
		v.checkPayloadManifest(tags)
	}
	if err != nil {
		return v.report, err
	}
	if v.report.ProblemCount > 0 {
		return v.report, fmt.Errorf("%w: %d problems", ErrVerify, v.report.ProblemCount)
	}
	if !opts.Quick {
		a.contentVerified.Store(true)
	}
	return v.report, nil
}

// tags holds the tag files as read.
type tags struct {
	data map[string][]byte
}

func (v *verifier) readTags() *tags {
	t := &tags{data: map[string][]byte{}}
	for _, rel := range []string{bagitPath, bagInfoPath, bagManifestPath, tagManifestPath} {
		b, err := readSmallFile(v.a.dir, rel, maxTagFileBytes)
		if err != nil {
			var ae *Error
			if errors.As(err, &ae) {
				ae.Err = fmt.Errorf("%w: %v", ErrBag, ae.Err)
				v.problem(ae)
			} else if errors.Is(err, os.ErrNotExist) {
				v.problem(errorf(rel, 0, -1, ErrBag, "missing"))
			} else {
				v.problem(errorf(rel, 0, -1, ErrBag, "%v", unwrapPath(err)))
			}
			continue
		}
		t.data[rel] = b
	}
	return t
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// walk lists what is in the archive directory and reports what does not belong there.
func (v *verifier) walk() {
	listed := map[string]bool{}
	for _, c := range v.a.m.Chunks {
		listed[c.archivePath()] = true
	}
	root := v.a.dir
	entries, err := os.ReadDir(root)
	if err != nil {
		v.problem(errorf(".", 0, -1, ErrCorrupt, "%v", unwrapPath(err)))
		return
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataDir && e.IsDir():
		case (name == bagitPath || name == bagInfoPath || name == bagManifestPath || name == tagManifestPath || name == signaturePath) && e.Type().IsRegular():
		case e.Type()&os.ModeSymlink != 0:
			v.problem(errorf(name, 0, -1, ErrCorrupt, "symbolic link"))
		default:
			v.problem(errorf(name, 0, -1, ErrCorrupt, "unexpected file (not part of the archive)"))
		}
	}
	v.walkData(dataDir, listed)
}

func (v *verifier) walkData(rel string, listed map[string]bool) {
	fi, err := os.Lstat(filepath.Join(v.a.dir, filepath.FromSlash(rel)))
	if err != nil {
		v.problem(errorf(rel, 0, -1, ErrCorrupt, "%v", unwrapPath(err)))
		return
	}
	if fi.Mode()&os.ModeSymlink != 0 || !fi.IsDir() {
		v.problem(errorf(rel, 0, -1, ErrCorrupt, "not a directory"))
		return
	}
	entries, err := os.ReadDir(filepath.Join(v.a.dir, filepath.FromSlash(rel)))
	if err != nil {
		v.problem(errorf(rel, 0, -1, ErrCorrupt, "%v", unwrapPath(err)))
		return
	}
	for _, e := range entries {
		p := rel + "/" + e.Name()
		switch {
		case e.Type()&os.ModeSymlink != 0:
			if !listed[p] { // a listed chunk's own check reports it
				v.problem(errorf(p, 0, -1, ErrCorrupt, "symbolic link"))
			}
		case e.IsDir() && rel == dataDir && (e.Name() == StreamEvents || e.Name() == StreamSnapshots ||
			(e.Name() == StreamTransactions && v.a.m.Transactions != nil)):
			v.walkData(p, listed)
		case e.IsDir():
			v.problem(errorf(p, 0, -1, ErrCorrupt, "unexpected directory (not listed in %s)", manifestPath))
		case !e.Type().IsRegular():
			v.problem(errorf(p, 0, -1, ErrCorrupt, "not a regular file"))
		case p == manifestPath || listed[p]:
			if info, err := e.Info(); err == nil {
				v.found[p] = info.Size()
			}
		default:
			if info, err := e.Info(); err == nil {
				v.found[p] = info.Size()
			}
			v.problem(errorf(p, 0, -1, ErrCorrupt, "file not listed in %s", manifestPath))
		}
	}
}

// checkBag checks bagit.txt, bag-info.txt and tagmanifest-sha256.txt.
func (v *verifier) checkBag(t *tags) {
	if b, ok := t.data[bagitPath]; ok {
		if !bagit.ValidDeclaration(b) {
			v.problem(errorf(bagitPath, 0, -1, ErrBag, "want exactly %q", bagit.Content))
		}
	}
	if b, ok := t.data[bagInfoPath]; ok {
		fields, problems := bagit.ParseInfo(b)
		for _, p := range bagProblems(bagInfoPath, problems) {
			v.problem(p)
		}
		get := func(label string) (bagit.Field, bool) {
			for _, f := range fields {
				if strings.EqualFold(f.Label, label) {
					return f, true
				}
			}
			v.problem(errorf(bagInfoPath, 0, -1, ErrBag, "no %s", label))
			return bagit.Field{}, false
		}
		m := v.a.m
		if f, ok := get(bagFormat); ok && f.Value != bagFormatValue(m.Version) {
			v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s is %q, the manifest has %q", bagFormat, f.Value, bagFormatValue(m.Version)))
		}
		if f, ok := get(bagFingerprint); ok && f.Value != m.Fingerprint {
			v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s is %s, the manifest has %s", bagFingerprint, f.Value, m.Fingerprint))
		}
		if f, ok := get(bagit.Date); ok && !bagit.ValidDate(f.Value) {
			v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s %q is not YYYY-MM-DD", bagit.Date, f.Value))
		}
		if f, ok := get(bagit.Oxum); ok {
			var n int64
			for _, size := range v.found {
				n += size
			}
			if want := fmt.Sprintf("%d.%d", n, len(v.found)); f.Value != want {
				v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s is %s, the payload has %s (octets.files)", bagit.Oxum, f.Value, want))
			}
		}
	}
	b, ok := t.data[tagManifestPath]
	if !ok {
		return
	}
	entries, problems := bagit.ParseManifest(b)
	for _, p := range bagProblems(tagManifestPath, problems) {
		v.problem(p)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.Path != bagitPath && e.Path != bagInfoPath && e.Path != bagManifestPath:
			v.problem(errorf(tagManifestPath, e.Line, -1, ErrBag, "lists %q, which is not a tag file of the archive", e.Path))
			continue
		case seen[e.Path]:
			v.problem(errorf(tagManifestPath, e.Line, -1, ErrBag, "lists %s twice", e.Path))
			continue
		}
		seen[e.Path] = true
		if data, ok := t.data[e.Path]; ok {
			if sum := fmt.Sprintf("%x", sha256.Sum256(data)); sum != e.Sum {
				v.problem(errorf(e.Path, 0, -1, ErrBag, "sha256 is %s, %s says %s", sum, tagManifestPath, e.Sum))
			}
		}
	}
	for _, p := range []string{bagitPath, bagInfoPath, bagManifestPath} {
		if !seen[p] {
			v.problem(errorf(tagManifestPath, 0, -1, ErrBag, "does not list %s", p))
		}
	}
}

// checkPayloadManifest checks manifest-sha256.txt against the manifest and the files as read.
func (v *verifier) checkPayloadManifest(t *tags) {
	b, ok := t.data[bagManifestPath]
	if !ok {
		return
	}
	entries, problems := bagit.ParseManifest(b)
	for _, p := range bagProblems(bagManifestPath, problems) {
		v.problem(p)
	}
	want := map[string]string{manifestPath: v.a.manifestSum}
	for _, c := range v.a.m.Chunks {
		want[c.archivePath()] = c.SHA256
	}
	seen := map[string]bool{}
	for _, e := range entries {
		expected, known := want[e.Path]
		switch {
		case !known:
			v.problem(errorf(bagManifestPath, e.Line, -1, ErrBag, "lists %q, which is not a payload file of the archive", e.Path))
			continue
		case seen[e.Path]:
			v.problem(errorf(bagManifestPath, e.Line, -1, ErrBag, "lists %s twice", e.Path))
			continue
		}
		seen[e.Path] = true
		if e.Sum != expected {
			v.problem(errorf(bagManifestPath, e.Line, -1, ErrBag, "sha256 of %s is %s, %s says %s", e.Path, e.Sum, manifestPath, expected))
		} else if actual, ok := v.sums[e.Path]; ok && actual != e.Sum {
			v.problem(errorf(e.Path, 0, -1, ErrBag, "sha256 is %s, %s says %s", actual, bagManifestPath, e.Sum))
		}
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if !seen[p] {
			v.problem(errorf(bagManifestPath, 0, -1, ErrBag, "does not list %s", p))
		}
	}
}

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
			v.sums[chunks[b.chunk].archivePath()] = b.sum
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
	r.info, r.path = c, c.archivePath()
	f, fi, err := openRegular(v.a.dir, r.path)
	if err != nil {
		b.errs = r.fileError(err)
		return
	}
	var errs []error
	if fi.Size() != c.Size {
		errs = append(errs, errorf(r.path, 0, -1, ErrCorrupt, "size is %d bytes, the manifest says %d", fi.Size(), c.Size))
	}
	// Hash the whole file and follow the frame's structure beside it, so that a structural problem does
	// not keep the digest from being compared.
	limit := max(c.Size, fi.Size())
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
			if chunks[i].Stream == StreamSnapshots {
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
func recordChunks(chunks []ChunkInfo) []ChunkInfo {
	for i, c := range chunks {
		if c.Stream == StreamTransactions {
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
		if c.Stream == StreamTransactions {
			v.report.Chunks++
			v.report.Bytes += c.Size
			v.report.RawBytes += c.RawSize
		}
	}
	s := v.a.source(StreamTransactions, v.a.m.Transactions.SHA256)
	s.contentVerified = false
	it := newIterator(v.ctx, StreamTransactions, math.MinInt64, s)
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
	err := cr.open(v.a.dir, info, dec, digest, false)
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

// validate parses every line of a batch as a canonical record and validates it against the schema.
// names hands out one string for each payload type seen, so that a record the parser only lends need
// not be copied for its type to be counted.
type names map[string]string

// maxNames bounds names: hostile input could name a new type on every line.
const maxNames = 4096

func (n names) get(s string) string {
	if c, ok := n[s]; ok {
		return c
	}
	c := strings.Clone(s)
	if len(n) < maxNames {
		n[c] = c
	}
	return c
}

// validate checks the lines of a batch. The records are parsed into the parser's lent record, which
// nothing keeps beyond the line.
func (v *verifier) validate(b *vbatch, stream string, parser *recordParser, names names) {
	info := &v.a.m.Chunks[b.chunk]
	path := info.archivePath()
	val := v.events
	var scratch []byte
	prefix, snapshot := jsonline.EventPrefix, false
	if stream == StreamSnapshots {
		val, prefix, snapshot = v.snapshots, jsonline.SnapshotPrefix, true
	}
	measure := v.opts.Measure
	if snapshot {
		measure = nil
	}
	start := 0
	for i, end := range b.ends {
		line := b.buf[start:end]
		start = end
		lineNo := b.firstLine + int64(i)
		tok, ok := jsonline.LeadingInt(line, prefix)
		if !ok {
			tok = -1
			if jsonline.CheckShape(line) == nil { // a line of another shape is not decoded at all
				tok = tokenOf(line, stream)
			}
		}
		typ := ""
		if !utf8.Valid(line) {
			b.problems = append(b.problems, linedError{i, &Error{Path: path, Line: lineNo, Token: tok, Err: fmt.Errorf("%w: not valid UTF-8 (at byte %d)", ErrRecord, invalidUTF8At(line))}})
			b.tokens = append(b.tokens, tok)
			b.types = append(b.types, string(jsonline.PayloadType(line)))
			if measure != nil {
				b.sizes = append(b.sizes, -1)
			}
			continue
		}
		rec, perr := parser.parseLent(line, snapshot)
		if perr != nil {
			b.problems = append(b.problems, linedError{i, &Error{Path: path, Line: lineNo, Token: tok, Err: perr}})
			typ = string(jsonline.PayloadType(line)) // best effort, so that counts do not repeat the problem
		} else {
			if rec.Payload != nil {
				typ = names.get(rec.Payload.Type)
			}
			tok = rec.Token
		}
		var err error
		if errors.As(perr, new(*jsonline.ShapeError)) {
			// Refused before decoding: the schema would decode it after all.
		} else if scratch, err = val.check(line, rec, perr == nil, scratch); err != nil {
			b.problems = append(b.problems, linedError{i, &Error{Path: path, Line: lineNo, Token: tok, Err: fmt.Errorf("%w: %v", ErrRecord, err)}})
		}
		b.tokens = append(b.tokens, tok)
		b.types = append(b.types, typ)
		if measure != nil {
			size := int64(-1)
			if perr == nil {
				size = measure(rec)
			}
			b.sizes = append(b.sizes, size)
		}
	}
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// tokenOf finds the token (or position) of a line that does not start with it, so that a problem in a
// non-canonical line is reported with its token and does not look like a gap; -1 if there is none.
func tokenOf(line []byte, stream string) int64 {
	var v struct {
		Token    *int64 `json:"token"`
		Position *int64 `json:"position"`
	}
	if err := sjson.Unmarshal(line, &v); err != nil {
		return -1
	}
	p := v.Token
	if stream == StreamSnapshots {
		p = v.Position
	}
	if p == nil {
		return -1
	}
	return *p
}

// collector follows the batches in order: tokens, continuity, chunk bounds and counts, types.
type collector struct {
	v *verifier
	m *Manifest

	stream string
	order  tokenOrder

	// the current chunk
	chunk     int
	first     int64
	last      int64
	lines     int64
	lineProbs int
	types     [2]*typeCounter
	counts    [2]int64
	partial   [2]bool // a chunk of the stream could not be read to its end
}

func newCollector(v *verifier) *collector {
	c := &collector{v: v, m: v.a.m, chunk: -1}
	c.types[0], c.types[1] = newTypeCounter(), newTypeCounter()
	c.startStream(StreamEvents)
	return c
}

func (c *collector) startStream(stream string) {
	c.stream = stream
	if stream == StreamEvents {
		c.order = newEventOrder(c.m.Events.Range, c.m.Gaps, c.m.Filter == nil)
	} else {
		c.order = newSnapshotOrder(c.m.Source.Kind == SourceServer)
	}
}

func (c *collector) lineProblem(e *Error) {
	c.lineProbs++
	if c.lineProbs <= maxChunkLineProblems {
		c.v.problem(e)
	}
}

func (c *collector) batch(b *vbatch) {
	info := &c.m.Chunks[b.chunk]
	path := info.archivePath()
	if b.chunk != c.chunk {
		c.chunk = b.chunk
		c.first, c.last, c.lines, c.lineProbs = -1, -1, 0, 0
		if info.Stream != c.stream {
			c.endStream()
			c.startStream(info.Stream)
		}
	}
	s := 0
	if c.stream == StreamSnapshots {
		s = 1
	}
	p := 0
	for i, tok := range b.tokens {
		for p < len(b.problems) && b.problems[p].idx == i {
			c.lineProblem(b.problems[p].err)
			p++
		}
		lineNo := b.firstLine + int64(i)
		c.lines++
		c.counts[s]++
		c.types[s].addString(b.types[i])
		if i < len(b.sizes) && b.sizes[i] >= 0 && c.v.opts.Measured != nil {
			c.v.opts.Measured(tok, b.sizes[i])
		}
		if tok < 0 {
			continue
		}
		if c.lines == 1 {
			c.first = tok
		}
		c.last = tok
		c.follow(path, lineNo, tok, info)
	}
	if !b.end {
		return
	}
	c.v.report.Chunks++
	c.v.report.Bytes += b.fileBytes
	c.v.report.RawBytes += b.rawBytes
	if b.fileSum != "" {
		c.v.sums[path] = b.fileSum
	}
	if c.lineProbs > maxChunkLineProblems {
		c.v.problem(errorf(path, 0, -1, ErrCorrupt, "%d more problems in this chunk not shown", c.lineProbs-maxChunkLineProblems))
	}
	if b.partial {
		// What the chunk should have held is unknown: do not report its tokens as missing, nor the
		// stream's totals, which cannot match.
		c.partial[s] = true
		c.order.skipTo(info.Last)
	}
	if b.chunkErrs != nil {
		c.v.problems(b.chunkErrs)
		return
	}
	if c.lines > 0 && (c.first != info.First || c.last != info.Last) {
		c.v.problem(errorf(path, 0, -1, ErrCorrupt, "holds tokens %d to %d, the manifest says %d to %d", c.first, c.last, info.First, info.Last))
	}
}

// follow checks one token against the order and continuity rules of its stream.
func (c *collector) follow(path string, lineNo, tok int64, info *ChunkInfo) {
	fail := func(sentinel error, format string, args ...any) {
		c.lineProblem(errorf(path, lineNo, tok, sentinel, format, args...))
	}
	if outsideChunk(tok, info) {
		fail(ErrCorrupt, "outside the chunk's range %d to %d", info.First, info.Last)
	}
	o := &c.order
	prev, check := o.prev, o.check(tok)
	if c.stream == StreamSnapshots {
		if check.notOrdinal {
			fail(ErrSequence, "position %d of a server export must be its ordinal %d", tok, check.expected)
		}
		if check.notAfter {
			fail(ErrSequence, "not after position %d (duplicate or out of order)", prev)
		}
		o.take(tok)
		return
	}
	switch {
	case check.notAfter:
		fail(ErrSequence, "not after token %d (duplicate or out of order)", prev)
		return
	case check.outOfRange:
		fail(ErrSequence, "outside the archive's range %d to %d", c.m.Events.FirstToken, c.m.Events.LastToken)
	}
	if g := check.gap; check.inGap {
		fail(ErrSequence, "inside the declared gap %d to %d (%s)", g.From, g.To, g.Cause)
	} else if check.missing {
		fail(ErrSequence, "tokens %d to %d are missing and no gap is declared", check.expected, tok-1)
	}
	o.take(tok)
}

func (c *collector) endStream() {
	if c.stream != StreamEvents {
		return
	}
	if from, to, missing := c.order.missingAtEnd(); missing {
		c.v.problem(errorf(manifestPath, 0, -1, ErrSequence, "tokens %d to %d are missing at the end of the range and no gap is declared", from, to))
	}
	c.stream = "" // checked once
}

func (c *collector) finish(evDigest, snDigest string) {
	if c.stream == StreamEvents {
		c.endStream()
	}
	r := c.v.report
	r.Events, r.Snapshots = c.counts[0], c.counts[1]
	m := c.m
	if c.partial[0] || c.partial[1] {
		// The chunk problems already say why; totals over missing data would only repeat them.
		return
	}
	c.compareTypes("events", c.types[0], m.Events.Types, m.Events.OtherTypes)
	c.compareTypes("snapshots", c.types[1], m.Snapshots.Types, m.Snapshots.OtherTypes)
	if evDigest != m.Events.SHA256 {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "events digest is %s, the manifest says %s", evDigest, m.Events.SHA256))
	}
	if snDigest != m.Snapshots.SHA256 {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "snapshots digest is %s, the manifest says %s", snDigest, m.Snapshots.SHA256))
	}
	fp, _ := combineDigests(evDigest, snDigest)
	r.Fingerprint = fp
	if fp != m.Fingerprint {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "fingerprint of the records is %s, the manifest says %s", fp, m.Fingerprint))
	}
}

func (c *collector) compareTypes(stream string, got *typeCounter, want []TypeCount, wantOther int64) {
	have := got.list()
	if slices.Equal(have, want) && got.other == wantOther {
		return
	}
	wantMap := map[string]int64{}
	for _, t := range want {
		wantMap[t.Type] = t.Count
	}
	shown := 0
	for _, t := range have {
		if wantMap[t.Type] != t.Count && shown < 10 {
			c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "%s: %d records of type %q, the manifest says %d", stream, t.Count, t.Type, wantMap[t.Type]))
			shown++
		}
		delete(wantMap, t.Type)
	}
	for _, t := range want {
		if _, ok := wantMap[t.Type]; ok && shown < 10 {
			c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "%s: no records of type %q, the manifest says %d", stream, t.Type, t.Count))
			shown++
		}
	}
	if got.other != wantOther {
		c.v.problem(errorf(manifestPath, 0, -1, ErrCorrupt, "%s: %d records of other types, the manifest says %d", stream, got.other, wantOther))
	}
}
