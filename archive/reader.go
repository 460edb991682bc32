package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"sync/atomic"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/archive/internal/zstdframe"
)

// Archive is a complete archive opened for reading. Its manifest has been checked for consistency, but
// nothing it says about the files has been: readers check each chunk as they read it, and Verify checks
// everything. An Archive holds no open files and is safe for concurrent use; its iterators are not.
type Archive struct {
	st           Storage
	dir          string // st.String(), for messages
	m            *manifest.Manifest
	manifestSum  string // SHA-256 of data/manifest.json as read by Open
	manifestSize int64

	// contentVerified: a full Verify found no problem, so every chunk file whose bytes still hash to
	// the manifest's sha256 decompresses to its rawSha256 and the streams to their digests.
	contentVerified atomic.Bool

	identities []age.Identity // decrypt the chunks of an encrypted archive (SetIdentities)
}

// Open opens the complete archive in dir. It returns an error wrapping ErrIncomplete when dir holds an
// interrupted export (a journal), ErrNotArchive when it holds neither manifest nor journal, ErrVersion
// for a format version outside MinVersion..MaxVersion, and ErrManifest (every problem, joined, each an
// *Error) for a manifest that is invalid or inconsistent.
func Open(dir string) (*Archive, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open archive %s: %w: not a directory", dir, ErrNotArchive)
	}
	return OpenIn(Dir(dir))
}

// OpenIn opens the complete archive in st, as Open does in a directory. The Archive reads st whenever
// it reads a file; the caller keeps st open as long as it uses the Archive.
func OpenIn(st Storage) (*Archive, error) {
	dir := st.String()
	if _, err := st.Stat(journalPath); err == nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrIncomplete)
	}
	b, err := readSmallFile(st, manifestPath, maxManifestBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: no %s", dir, ErrNotArchive, manifestPath)
		}
		var ae *Error
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, errorf(manifestPath, 0, -1, ErrManifest, "%v", err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &Archive{st: st, dir: dir, m: m, manifestSum: fmt.Sprintf("%x", sum), manifestSize: int64(len(b))}, nil
}

// Dir returns the directory the archive was opened from (Storage.String for one opened with OpenIn).
func (a *Archive) Dir() string { return a.dir }

// Storage returns the storage the archive was opened from.
func (a *Archive) Storage() Storage { return a.st }

// Manifest returns the archive's manifest. The caller must not modify it.
func (a *Archive) Manifest() *manifest.Manifest { return a.m }

func (a *Archive) chunks(stream string) []manifest.ChunkInfo {
	var out []manifest.ChunkInfo
	for _, c := range a.m.Chunks {
		if c.Stream == stream {
			out = append(out, c)
		}
	}
	return out
}

// Events returns an iterator over the events from token from on (0 or math.MinInt64 for all). When it
// starts at the first chunk, the iterator also checks the stream digest at the end.
func (a *Archive) Events(ctx context.Context, from int64) *Iterator {
	return a.newIterator(ctx, manifest.StreamEvents, from, a.m.Events.SHA256)
}

// Snapshots returns an iterator over the snapshots in position order.
func (a *Archive) Snapshots(ctx context.Context) *Iterator {
	return a.SnapshotsFrom(ctx, math.MinInt64)
}

// SnapshotsFrom returns an iterator over the snapshots from position from on.
func (a *Archive) SnapshotsFrom(ctx context.Context, from int64) *Iterator {
	return a.newIterator(ctx, manifest.StreamSnapshots, from, a.m.Snapshots.SHA256)
}

// Iterator reads the records of one stream, in order, verifying as it goes:
//
//	it := a.Events(ctx, 0)
//	defer it.Close()
//	for it.Next() {
//		line := it.Line() // or it.Record()
//	}
//	if err := it.Err(); err != nil { … }
//
// It never ends cleanly on data it has not checked: a chunk's end is reported only after its size,
// SHA-256 digests, record count, first and last token and zstd checksum matched the manifest, and the
// tokens of all lines increase within the chunk's bounds. Once Verify has checked the whole Archive
// without finding a problem, the digests of the decompressed lines (rawSha256 and the stream digest)
// are not computed again: decompression is a function of the file's bytes, whose SHA-256 is still
// compared, so they would only repeat what Verify proved, at the cost of hashing every line twice. Lines are checked to be canonical records
// only when Record is called. Errors are *Error values naming the file, line and token. An Iterator is
// not safe for concurrent use; Close releases its file and decoder.
type Iterator struct {
	ctx    context.Context
	stream string
	prefix string
	from   int64
	source           // the archive being read
	rest   []source  // the archives after it, in a Chain
	digest hash.Hash // nil when not reading from the first chunk, or contentVerified

	dec    *zstd.Decoder
	cr     chunkReader
	inside bool // cr has an open chunk
	idx    int

	line    []byte
	token   int64
	parser  recordParser
	rec     Record
	parsed  bool
	recErr  error
	order   tokenOrder // of the source's tokens: each after the last
	first   int64      // first token of the open chunk, seen so far
	counter int
	err     error
	done    bool
}

// source is what an Iterator reads of one archive: the chunks of its stream, and how to check them.
type source struct {
	st              Storage
	chunks          []manifest.ChunkInfo
	wantDigest      string // of the whole stream; "" for none
	contentVerified bool   // the Archive was fully verified: hashing the chunk files is enough
	identities      []age.Identity
}

func (a *Archive) source(stream string, digest string) source {
	return source{st: a.st, chunks: a.chunks(stream), wantDigest: digest, contentVerified: a.contentVerified.Load(), identities: a.identities}
}

func (a *Archive) newIterator(ctx context.Context, stream string, from int64, digest string) *Iterator {
	return newIterator(ctx, stream, from, a.source(stream, digest))
}

// newIterator returns an iterator over the records of stream from token from on, in the sources one
// after the other, each checked as an archive of its own.
func newIterator(ctx context.Context, stream string, from int64, sources ...source) *Iterator {
	it := &Iterator{ctx: ctx, stream: stream, from: from}
	it.prefix = jsonline.EventPrefix
	if stream == manifest.StreamSnapshots {
		it.prefix = jsonline.SnapshotPrefix
	}
	if len(sources) == 0 {
		sources = []source{{}}
	}
	it.start(sources[0])
	it.rest = sources[1:]
	return it
}

// start makes s the source read next.
func (it *Iterator) start(s source) {
	it.source, it.idx, it.order = s, 0, newSnapshotOrder(false)
	it.cr.identities = s.identities
	it.digest = nil
	if !s.contentVerified && (len(s.chunks) == 0 || s.chunks[0].Last >= it.from) {
		it.digest = sha256.New()
	}
}

// Next advances to the next record and reports whether there is one. At the end, or on error, it
// returns false; Err tells which.
func (it *Iterator) Next() bool {
	if it.err != nil || it.done {
		return false
	}
	it.parsed, it.recErr, it.line = false, nil, nil
	for {
		if !it.inside {
			if it.idx >= len(it.chunks) {
				if len(it.rest) > 0 && it.checkDigest() {
					it.start(it.rest[0])
					it.rest = it.rest[1:]
					continue
				}
				it.end()
				return false
			}
			c := &it.chunks[it.idx]
			if c.Last < it.from {
				it.idx++
				continue
			}
			if it.dec == nil {
				dec, err := zstdframe.NewDecoder()
				if err != nil {
					it.err = fmt.Errorf("zstd decoder: %w", err)
					return false
				}
				it.dec = dec
			}
			if err := it.cr.open(it.st, c, it.dec, it.digest, it.contentVerified); err != nil {
				it.err = err
				return false
			}
			it.inside = true
			it.first = math.MinInt64
		}
		c := &it.chunks[it.idx]
		line, err := it.cr.readLine()
		if err == io.EOF {
			err = it.cr.finish()
			if err == nil && it.cr.lines > 0 && (it.first != c.First || it.order.prev != c.Last) {
				err = errorf(it.cr.path, 0, -1, ErrCorrupt, "holds tokens %d to %d, the manifest says %d to %d", it.first, it.order.prev, c.First, c.Last)
			}
			it.cr.close()
			it.inside = false
			if err != nil {
				it.err = err
				return false
			}
			it.idx++
			continue
		}
		if err != nil {
			it.fail(err)
			return false
		}
		tok, ok := jsonline.LeadingInt(line, it.prefix)
		switch {
		case !ok:
			it.fail(&Error{Path: it.cr.path, Line: it.cr.lines, Token: -1, Err: fmt.Errorf("%w: does not start with %s and a number", ErrRecord, it.prefix)})
			return false
		case !it.order.after(tok):
			it.fail(&Error{Path: it.cr.path, Line: it.cr.lines, Token: tok, Err: fmt.Errorf("%w: not after %d", ErrSequence, it.order.prev)})
			return false
		case outsideChunk(tok, c):
			it.fail(&Error{Path: it.cr.path, Line: it.cr.lines, Token: tok, Err: fmt.Errorf("%w: outside the chunk's range %d to %d", ErrCorrupt, c.First, c.Last)})
			return false
		}
		if it.first == math.MinInt64 {
			it.first = tok
		}
		it.order.take(tok)
		if it.counter++; it.counter&255 == 0 && it.ctx != nil {
			if err := it.ctx.Err(); err != nil {
				it.fail(err)
				return false
			}
		}
		if tok < it.from {
			continue
		}
		it.line, it.token = line, tok
		return true
	}
}

func (it *Iterator) fail(err error) {
	it.err = err
	it.cr.close()
	it.inside = false
}

func (it *Iterator) end() {
	it.done = true
	it.checkDigest()
	it.release()
}

// checkDigest compares the digest of the source's stream, when it was computed, with its manifest's,
// and reports whether they match.
func (it *Iterator) checkDigest() bool {
	if it.digest != nil && it.wantDigest != "" && it.err == nil {
		if sum := hexSum(it.digest); sum != it.wantDigest {
			it.err = errorf(manifestPath, 0, -1, ErrCorrupt, "%s digest is %s, the manifest says %s", it.stream, sum, it.wantDigest)
			return false
		}
	}
	return true
}

// Line returns the current record's line, with its LF, exactly as stored. It is valid until the next
// call to Next.
func (it *Iterator) Line() []byte { return it.line }

// Token returns the current record's token (events) or position (snapshots).
func (it *Iterator) Token() int64 { return it.token }

// Path returns the chunk file (relative to the archive root) and line number of the current record.
func (it *Iterator) Path() (string, int64) { return it.cr.path, it.cr.lines }

// Record parses the current line, checking that it is a canonical record (as ParseEventJSON or
// ParseSnapshotJSON would), and returns it. The *Record is overwritten by the next call, but the memory
// its fields point to is its own. An invalid line gives an *Error wrapping ErrRecord.
func (it *Iterator) Record() (*Record, error) {
	if it.line == nil {
		return nil, errors.New("archive: Record called without a current record")
	}
	if !it.parsed {
		it.parsed = true
		if err := it.parser.parse(it.line, &it.rec, it.stream == manifest.StreamSnapshots); err != nil {
			it.recErr = &Error{Path: it.cr.path, Line: it.cr.lines, Token: it.token, Err: err}
		}
	}
	if it.recErr != nil {
		return nil, it.recErr
	}
	return &it.rec, nil
}

// Err returns the error that stopped the iteration, or nil after a verified end.
func (it *Iterator) Err() error { return it.err }

// Close releases the iterator's file and decoder. It is safe to call more than once.
func (it *Iterator) Close() error {
	if !it.done && it.err == nil {
		it.err = errors.New("iterator closed")
	}
	it.cr.close()
	it.inside = false
	it.release()
	return nil
}

func (it *Iterator) release() {
	if it.dec != nil {
		it.dec.Close()
		it.dec = nil
	}
}
