package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/axarchive/axarchive/archive/manifest"
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
	Fingerprint  string `json:"fingerprint,omitempty"`
	ProblemCount int64  `json:"problemCount"`
	// Problems are the first 1000 problems; VerifyOptions.Problem sees all of them, except that a chunk
	// reports at most 100 line-level problems.
	Problems []*Error `json:"-"`
}

const maxReportedProblems = 1000

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
	if len(v.report.Problems) < maxReportedProblems {
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
	v.events, v.snapshots = newRecordSchema(manifest.StreamEvents), newRecordSchema(manifest.StreamSnapshots)
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
