package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/axarchive/axarchive/archive/internal/bagit"
	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/archive/internal/zstdframe"
	"github.com/axarchive/axarchive/internal/crashpoint"
)

// Options configure a new archive. The zero value is not enough: Source and Range must be set. On
// Resume, the options of the first run are authoritative (see Writer.Options); only NoSync is taken
// from the resuming run.
type Options struct {
	Source Source
	// Range is the token range the archive covers, fixed at Create.
	Range Range
	// Filter is the selection of events applied by the caller; nil means none. With a filter, tokens of
	// the range that are not written are counted as filtered; without one, missing tokens are an error
	// unless declared with AddGap.
	Filter *Filter
	// Snapshots is the snapshot mode recorded in the manifest: SnapshotsAll (default, ""), SnapshotsLatest
	// or SnapshotsNone (no snapshot may be written).
	Snapshots string
	// Previous links an incremental archive to the one it continues: Range.First must be
	// Previous.LastToken+1.
	Previous *Link
	// ChunkBytes and ChunkRecords rotate chunks: a chunk is closed before a record that would take it
	// over ChunkBytes of JSON Lines or ChunkRecords records. Zero means 64 MiB and a million
	// records.
	ChunkBytes   int64
	ChunkRecords int64
	// Level is the zstd compression level (1 to 22, mapped onto klauspost/compress's four levels);
	// zero means 3, its default.
	Level int
	// Tool names the writing program in the manifest, e.g. "axarchive v0.1.0"; zero means "axarchive".
	Tool string
	// Created is the creation time recorded; zero means SOURCE_DATE_EPOCH when set, else now. It is
	// stored in UTC, in whole seconds.
	Created time.Time
	// NoSync skips fsync (chunks, journal, manifest, directories). Only for tests and benchmarks: an
	// archive written with NoSync may be lost or torn by a crash.
	NoSync bool
	// Transactions records the source's transactions (format version 2): the caller marks the last
	// event of each with EndTransaction. Not with a Filter.
	Transactions bool
	// Recipients, when set, encrypt every chunk with age to each of them (format version 2, SPEC.md
	// "Encrypted chunks"); an export started with recipients must be resumed with them.
	Recipients []age.Recipient
	// Identities decrypt the committed chunks of an encrypted export for CommittedEvents (resuming a
	// live export's snapshot phase reads the aggregates it exported).
	Identities []age.Identity
	// Sign, when set, signs the archive: Close passes it the bytes of tagmanifest-sha256.txt (which
	// covers every other file's checksum) and writes what it returns as tagmanifest-sha256.txt.sig
	// (SignatureFile) before the archive is complete. An export started with Sign must be resumed with it.
	Sign SignFunc
}

// SignFunc returns a detached signature of the message, for example an SSHSIG signature under the
// namespace SignatureNamespace.
type SignFunc func(message []byte) ([]byte, error)

// Writer writes an archive: events in token order, then snapshots in position order, then Close
// commits the manifest and the BagIt files. Every full chunk is made durable and journaled before the
// next one starts, so an interrupted export loses at most one chunk of work and Resume continues it.
//
// A Writer is not safe for concurrent use. Its errors are sticky: after one, every method returns it
// (Suspend still cleans up). Close is idempotent.
type Writer struct {
	dir  string
	opts Options
	j    journal // as last written
	sync bool

	enc   *zstd.Encoder
	chunk chunkWriter
	open  bool // chunk holds an open chunk

	// Running state, ahead of the journal by the open chunk.
	events     tokenOrder // next: the next event token expected
	snapshots  tokenOrder // prev: the last position
	eventsDone bool
	evHash     hash.Hash
	snHash     hash.Hash
	evTypes    *typeCounter
	snTypes    *typeCounter
	evCount    int64
	snCount    int64
	gaps       []Gap
	tx         *txWriter // nil unless the archive records transactions

	scratch   []byte
	tokenBuf  []byte
	err       error
	closed    bool
	completed bool
}

func normalize(opts *Options) error {
	if opts.Snapshots == "" {
		opts.Snapshots = SnapshotsAll
	}
	switch opts.Snapshots {
	case SnapshotsAll, SnapshotsLatest, SnapshotsNone:
	default:
		return fmt.Errorf("snapshot mode %q: want %q, %q or %q", opts.Snapshots, SnapshotsAll, SnapshotsLatest, SnapshotsNone)
	}
	if opts.Filter != nil && len(opts.Filter.IncludeTypes) == 0 && len(opts.Filter.ExcludeTypes) == 0 && len(opts.Filter.AggregateTypes) == 0 {
		opts.Filter = nil
	}
	if opts.Transactions && opts.Filter != nil {
		return fmt.Errorf("transactions cannot be recorded with a filter: a filtered archive does not hold every event of a transaction")
	}
	return nil
}

func checkOptions(opts *Options) error {
	if err := normalize(opts); err != nil {
		return err
	}
	switch opts.Source.Kind {
	case SourceServer, SourceSegments:
	default:
		return fmt.Errorf("source kind %q: want %q or %q", opts.Source.Kind, SourceServer, SourceSegments)
	}
	r := opts.Range
	if r.First < 0 || r.Last < r.First-1 || r.Last == math.MaxInt64 {
		return fmt.Errorf("invalid token range %d-%d", r.First, r.Last)
	}
	if p := opts.Previous; p != nil {
		if len(p.Fingerprint) != 64 || !bagit.IsHex(p.Fingerprint) || strings.ToLower(p.Fingerprint) != p.Fingerprint {
			return fmt.Errorf("previous archive fingerprint %q is not a lower-case hex SHA-256", p.Fingerprint)
		}
		if p.LastToken+1 != r.First {
			return fmt.Errorf("range starts at %d, not after the previous archive's last token %d", r.First, p.LastToken)
		}
	}
	if opts.ChunkBytes < 0 || opts.ChunkRecords < 0 {
		return fmt.Errorf("negative chunk limits")
	}
	if opts.ChunkBytes == 0 {
		opts.ChunkBytes = defaultChunkBytes
	}
	if opts.ChunkRecords == 0 {
		opts.ChunkRecords = defaultChunkRecords
	}
	if opts.Level < 0 || opts.Level > 22 {
		return fmt.Errorf("zstd level %d: want 1 to 22", opts.Level)
	}
	if opts.Level == 0 {
		opts.Level = 3
	}
	if opts.Tool == "" {
		opts.Tool = "axarchive"
	}
	if opts.Created.IsZero() {
		t, err := createdNow()
		if err != nil {
			return err
		}
		opts.Created = t
	}
	opts.Created = opts.Created.UTC().Truncate(time.Second)
	if y := opts.Created.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("created time %v is outside years 1 to 9999", opts.Created)
	}
	return nil
}

// createdNow honours SOURCE_DATE_EPOCH (https://reproducible-builds.org/specs/source-date-epoch/).
func createdNow() (time.Time, error) {
	if s, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not an integer number of seconds", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}

// Create starts a new archive in dir, which must not exist or be empty (else ErrNotEmpty). It writes
// the directory layout and a first journal, so that even an export interrupted before its first chunk
// can be resumed.
func Create(dir string, opts Options) (*Writer, error) {
	if err := checkOptions(&opts); err != nil {
		return nil, fmt.Errorf("create archive %s: %w", dir, err)
	}
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) > 0 {
			if !unborn(dir) {
				return nil, fmt.Errorf("create archive %s: %w", dir, ErrNotEmpty)
			}
			// Left by an export killed before its first journal existed: only what Create makes.
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(journalPath+tmpSuffix))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("create archive: %w", err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	sync := !opts.NoSync
	dirs := []string{"", dataDir, dataDir + "/" + StreamEvents, dataDir + "/" + StreamSnapshots}
	if opts.Transactions {
		dirs = append(dirs, dataDir+"/"+StreamTransactions)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			return nil, fmt.Errorf("create archive: %w", err)
		}
	}
	if sync {
		for _, d := range []string{dataDir, ""} {
			if err := syncDir(filepath.Join(dir, d)); err != nil {
				return nil, fmt.Errorf("create archive: %w", err)
			}
		}
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("create archive: %w", err)
		}
	}
	w := &Writer{
		dir:  dir,
		opts: opts,
		sync: sync,
		j: journal{
			Format: journalFormat, Version: Version,
			Tool: opts.Tool, Created: opts.Created, Source: opts.Source, Range: opts.Range,
			Filter: opts.Filter, SnapshotMode: opts.Snapshots, Previous: opts.Previous,
			Chunking: Chunking{MaxBytes: opts.ChunkBytes, MaxRecords: opts.ChunkRecords},
			Level:    opts.Level, Signed: opts.Sign != nil, NextToken: opts.Range.First, LastPosition: -1,
			Chunks: []ChunkInfo{}, Gaps: []Gap{}, Notes: []Note{},
		},
	}
	if len(opts.Recipients) > 0 {
		// Version 2 of the journal: a version-1 writer would resume it unencrypted.
		w.j.Version, w.j.Encrypted = versionEncryption, true
	}
	if opts.Transactions {
		// Version 2 of the journal, too: a version-1 writer would resume it without the transactions.
		w.j.Version = VersionTransactions
		w.j.Transactions = &journalTx{Hash: marshalHash(sha256.New()), Open: -1}
	}
	if err := w.start(); err != nil {
		return nil, err
	}
	if err := w.j.write(dir, sync); err != nil {
		w.enc.Close()
		return nil, fmt.Errorf("create archive: %w", err)
	}
	return w, nil
}

// unborn reports whether dir holds nothing but what Create makes before its first journal is in place:
// the empty data directories and, at most, the first journal's temporary file. Anything else, a link
// included, makes it a directory that is not ours to reuse.
func unborn(dir string) bool {
	allowed := map[string]bool{
		dataDir: true, dataDir + "/" + StreamEvents: true, dataDir + "/" + StreamSnapshots: true,
		dataDir + "/" + StreamTransactions: true, journalPath + tmpSuffix: false,
	}
	ok := true
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, rerr := filepath.Rel(dir, path)
		if rerr != nil {
			return rerr
		}
		if rel == "." {
			return nil
		}
		isDir, known := allowed[filepath.ToSlash(rel)]
		if !known || isDir != d.IsDir() || (!d.IsDir() && !d.Type().IsRegular()) {
			ok = false
			return filepath.SkipAll
		}
		return nil
	})
	return err == nil && ok
}

// start sets the running state from the journal.
func (w *Writer) start() error {
	j := &w.j
	var err error
	if w.evHash, err = unmarshalHash(j.Events.Hash); err != nil {
		return errorf(journalPath, 0, -1, ErrCorrupt, "events %v", err)
	}
	if w.snHash, err = unmarshalHash(j.Snapshots.Hash); err != nil {
		return errorf(journalPath, 0, -1, ErrCorrupt, "snapshots %v", err)
	}
	w.eventsDone = j.EventsDone
	w.evTypes = typeCounterFrom(j.Events.Types, j.Events.OtherTypes)
	w.snTypes = typeCounterFrom(j.Snapshots.Types, j.Snapshots.OtherTypes)
	w.evCount, w.snCount = j.Events.Count, j.Snapshots.Count
	w.gaps = slices.Clone(j.Gaps)
	w.events = newEventOrder(w.opts.Range, w.gaps, w.opts.Filter == nil)
	w.events.next = j.NextToken
	w.snapshots = newSnapshotOrder(w.opts.Source.Kind == SourceServer)
	w.snapshots.prev, w.snapshots.next = j.LastPosition, j.LastPosition+1
	w.enc, err = zstdframe.NewEncoder(j.Level)
	if err != nil {
		return fmt.Errorf("zstd encoder: %w", err)
	}
	w.chunk = chunkWriter{enc: w.enc, sync: w.sync, recipients: w.opts.Recipients}
	if jt := j.Transactions; jt != nil {
		t := &txWriter{count: jt.Count, lines: jt.Lines, run: jt.Run, start: jt.Open}
		if t.hash, err = unmarshalHash(jt.Hash); err != nil {
			return errorf(journalPath, 0, -1, ErrCorrupt, "transactions %v", err)
		}
		if t.enc, err = zstdframe.NewEncoder(j.Level); err != nil {
			return fmt.Errorf("zstd encoder: %w", err)
		}
		t.chunk = chunkWriter{enc: t.enc, sync: w.sync, recipients: w.opts.Recipients}
		w.tx = t
	}
	return nil
}

// Resume reopens the incomplete archive in dir to continue an interrupted export. The options must
// describe the same export: a different Source, Filter, Snapshots or Previous is refused with
// ErrMismatch naming the field; Range, chunking, level, tool and created time are taken from the
// journal (see Writer.Options). Resume re-hashes every committed chunk (a damaged one is ErrCorrupt),
// deletes temporary files and any chunk written after the last journal update, and returns ErrComplete
// for a finished archive.
func Resume(dir string, opts Options) (*Writer, error) {
	if err := normalize(&opts); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	j, err := readJournal(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, merr := os.Lstat(filepath.Join(dir, filepath.FromSlash(manifestPath))); merr == nil {
				return nil, fmt.Errorf("resume archive %s: %w", dir, ErrComplete)
			}
			if unborn(dir) {
				return nil, fmt.Errorf("resume archive %s: %w", dir, ErrNotStarted)
			}
			return nil, fmt.Errorf("resume archive %s: %w: no %s", dir, ErrNotArchive, journalPath)
		}
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	if err := checkJournal(j); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	if err := sameExport(j, &opts); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	w := &Writer{dir: dir, j: *j, sync: !opts.NoSync}
	w.opts = Options{
		Source: j.Source, Range: j.Range, Filter: j.Filter, Snapshots: j.SnapshotMode, Previous: j.Previous,
		ChunkBytes: j.Chunking.MaxBytes, ChunkRecords: j.Chunking.MaxRecords, Level: j.Level,
		Tool: j.Tool, Created: j.Created, NoSync: opts.NoSync, Transactions: j.Transactions != nil, Sign: opts.Sign,
		Recipients: opts.Recipients, Identities: opts.Identities,
	}
	if err := w.cleanup(); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	if err := w.start(); err != nil {
		return nil, fmt.Errorf("resume archive %s: %w", dir, err)
	}
	return w, nil
}

func encryptionWord(encrypted bool) string {
	if encrypted {
		return "recipients"
	}
	return "no recipients"
}

func signingWord(signed bool) string {
	if signed {
		return "a signing key"
	}
	return "no signing key"
}

// sameExport compares the options that make an archive different.
func sameExport(j *journal, opts *Options) error {
	mismatch := func(field string, was, is any) error {
		return fmt.Errorf("%w: %s: the interrupted export has %v, this one %v", ErrMismatch, field, was, is)
	}
	if j.Source != opts.Source {
		return mismatch("source", describeSource(j.Source), describeSource(opts.Source))
	}
	if !sameFilter(j.Filter, opts.Filter) {
		return mismatch("filter", describeFilter(j.Filter), describeFilter(opts.Filter))
	}
	if j.SnapshotMode != opts.Snapshots {
		return mismatch("snapshots", j.SnapshotMode, opts.Snapshots)
	}
	if (j.Previous == nil) != (opts.Previous == nil) || (j.Previous != nil && *j.Previous != *opts.Previous) {
		return mismatch("previous archive", describeLink(j.Previous), describeLink(opts.Previous))
	}
	if (j.Transactions != nil) != opts.Transactions {
		return mismatch("transactions recorded", j.Transactions != nil, opts.Transactions)
	}
	if j.Encrypted != (len(opts.Recipients) > 0) {
		return mismatch("encryption", encryptionWord(j.Encrypted), encryptionWord(len(opts.Recipients) > 0))
	}
	if j.Signed != (opts.Sign != nil) {
		return mismatch("signing", signingWord(j.Signed), signingWord(opts.Sign != nil))
	}
	return nil
}

func sameFilter(a, b *Filter) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	eq := func(x, y []string) bool {
		x, y = slices.Clone(x), slices.Clone(y)
		slices.Sort(x)
		slices.Sort(y)
		return slices.Equal(slices.Compact(x), slices.Compact(y))
	}
	return eq(a.IncludeTypes, b.IncludeTypes) && eq(a.ExcludeTypes, b.ExcludeTypes) && eq(a.AggregateTypes, b.AggregateTypes)
}

func describeFilter(f *Filter) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprintf("include %v, exclude %v, aggregate types %v", f.IncludeTypes, f.ExcludeTypes, f.AggregateTypes)
}

func describeLink(l *Link) string {
	if l == nil {
		return "none"
	}
	return fmt.Sprintf("%s (last token %d)", l.Fingerprint, l.LastToken)
}

// checkJournal makes sure a journal read from disk is one this package could have written, so that its
// paths are safe to use and its state consistent.
func checkJournal(j *journal) error {
	bad := func(format string, args ...any) error {
		return errorf(journalPath, 0, -1, ErrCorrupt, format, args...)
	}
	r := j.Range
	if r.First < 0 || r.Last < r.First-1 || r.Last == math.MaxInt64 {
		return bad("invalid range %d-%d", r.First, r.Last)
	}
	if j.Chunking.MaxBytes <= 0 || j.Chunking.MaxRecords <= 0 || j.Level < 1 || j.Level > 22 {
		return bad("invalid chunking or level")
	}
	if j.NextToken < r.First || j.NextToken > r.Last+1 || (j.EventsDone && j.NextToken != r.Last+1) {
		return bad("next token %d outside the range %d-%d", j.NextToken, r.First, r.Last)
	}
	switch j.SnapshotMode {
	case SnapshotsAll, SnapshotsLatest, SnapshotsNone:
	default:
		return bad("snapshot mode %q", j.SnapshotMode)
	}
	if j.LastPosition < -1 {
		return bad("last position %d", j.LastPosition)
	}
	var counts [3]int64
	last := [3]int64{r.First - 1, -1, r.First - 1}
	for _, c := range j.Chunks {
		stream, first, ok := parseChunkName(c.Path)
		if !ok || stream != c.Stream || first != c.First || c.Last < c.First || c.Records < 1 {
			return bad("invalid chunk %q", c.Path)
		}
		s := streamIndex(stream)
		if s == 2 && j.Transactions == nil {
			return bad("transactions chunk %q in a journal without transactions", c.Path)
		}
		if c.First <= last[s] {
			return bad("chunk %q out of order", c.Path)
		}
		last[s] = c.Last
		counts[s] += c.Records
	}
	if last[0] >= j.NextToken || last[1] != j.LastPosition || counts[0] != j.Events.Count || counts[1] != j.Snapshots.Count {
		return bad("chunks do not match the committed state")
	}
	if t := j.Transactions; t != nil {
		if counts[2] != t.Lines || last[2] >= j.NextToken || t.Open >= j.NextToken || t.Open < -1 ||
			t.Run.Repeat < 0 || t.Run.Events < 0 || (t.Run.Repeat > 0 && (t.Run.Token <= last[2] || t.Run.Events < 1)) {
			return bad("transactions do not match the committed state")
		}
	}
	return nil
}

// cleanup removes what an interrupted run left that the journal does not cover: temporary files,
// chunks renamed after the last journal update, and the manifest and BagIt files of an interrupted
// Close. Every committed chunk is re-hashed. Files that axarchive does not write are left alone and
// refused.
func (w *Writer) cleanup() error {
	committed := map[string]*ChunkInfo{}
	for i := range w.j.Chunks {
		committed[w.j.Chunks[i].Path] = &w.j.Chunks[i]
	}
	remove := func(rel string) error {
		if err := os.Remove(filepath.Join(w.dir, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	for _, rel := range []string{journalPath + tmpSuffix, manifestPath, manifestPath + tmpSuffix,
		bagitPath, bagInfoPath, bagManifestPath, tagManifestPath,
		bagitPath + tmpSuffix, bagInfoPath + tmpSuffix, bagManifestPath + tmpSuffix, tagManifestPath + tmpSuffix} {
		if err := remove(rel); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(filepath.Join(w.dir, dataDir)); err != nil || !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		return errorf(dataDir, 0, -1, ErrCorrupt, "not a directory")
	}
	streams := []string{StreamEvents, StreamSnapshots}
	if w.j.Transactions != nil {
		streams = append(streams, StreamTransactions)
	}
	for _, stream := range streams {
		rel := dataDir + "/" + stream
		fi, err := os.Lstat(filepath.Join(w.dir, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			// Version control does not keep empty directories; recreate them.
			if err := os.Mkdir(filepath.Join(w.dir, filepath.FromSlash(rel)), 0o755); err != nil {
				return err
			}
		} else if err != nil || !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
			if err == nil {
				err = fmt.Errorf("not a directory")
			}
			return errorf(rel, 0, -1, ErrCorrupt, "%v", err)
		}
		entries, err := os.ReadDir(filepath.Join(w.dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := stream + "/" + e.Name()
			if _, _, ok := parseChunkName(strings.TrimSuffix(name, tmpSuffix)); !ok || !e.Type().IsRegular() {
				return errorf(dataDir+"/"+name, 0, -1, ErrCorrupt, "unexpected file in an incomplete archive; move it away and resume again")
			}
			if strings.HasSuffix(name, tmpSuffix) || committed[name] == nil {
				if err := remove(dataDir + "/" + name); err != nil {
					return err
				}
			}
		}
	}
	for _, c := range w.j.Chunks {
		if err := checkChunkFile(w.dir, &c); err != nil {
			return err
		}
	}
	return nil
}

// checkChunkFile compares a chunk file's size and SHA-256 with its description.
func checkChunkFile(root string, c *ChunkInfo) error {
	var r chunkReader
	r.info, r.path = c, c.archivePath()
	f, fi, err := openRegular(root, r.path)
	if err != nil {
		return r.fileError(err)
	}
	defer f.Close()
	if fi.Size() != c.Size {
		return errorf(r.path, 0, -1, ErrCorrupt, "size is %d bytes, the journal says %d", fi.Size(), c.Size)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err != nil || n > c.Size {
			break
		}
	}
	if sum := hexSum(h); n != c.Size || sum != c.SHA256 {
		return errorf(r.path, 0, -1, ErrCorrupt, "sha256 is %s, the journal says %s", sum, c.SHA256)
	}
	return nil
}

// Options returns the options of the archive as journaled: on Resume, those of the first run.
func (w *Writer) Options() Options { return w.opts }

// NextToken returns the token after the last committed event (or after a declared gap or the filtered
// tokens before it): where an interrupted export continues. It is Range.First for a new archive and
// Range.Last+1 once the events are finished.
func (w *Writer) NextToken() int64 { return w.j.NextToken }

// EventsCommitted returns the number of events in committed chunks.
func (w *Writer) EventsCommitted() int64 { return w.j.Events.Count }

// SnapshotsCommitted returns the number of snapshots in committed chunks.
func (w *Writer) SnapshotsCommitted() int64 { return w.j.Snapshots.Count }

// EventsDone reports whether FinishEvents has been committed.
func (w *Writer) EventsDone() bool { return w.j.EventsDone }

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errClosed
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// WriteEvent writes the next event. Tokens must increase and stay within the range; a token after a
// jump is accepted when the skipped tokens were declared with AddGap or the archive has a Filter (they
// count as filtered), else it fails.
func (w *Writer) WriteEvent(r *Record) error {
	if err := w.checkEvent(r.Token); err != nil {
		return err
	}
	w.scratch = AppendEventJSON(w.scratch[:0], r)
	var typ []byte
	if r.Payload != nil {
		typ = append(w.tokenBuf[:0], r.Payload.Type...)
	}
	return w.addEvent(r.Token, w.scratch, typ)
}

// WriteEventLine is WriteEvent for a line already encoded by AppendEventJSON (with its LF): the fast
// path of an export that encodes on other cores. The writer checks the token and the size of the line,
// not the rest of its encoding.
func (w *Writer) WriteEventLine(token int64, line []byte) error {
	if err := w.checkEvent(token); err != nil {
		return err
	}
	w.tokenBuf = strconv.AppendInt(append(w.tokenBuf[:0], jsonline.EventPrefix...), token, 10)
	w.tokenBuf = append(w.tokenBuf, ',')
	if !bytes.HasPrefix(line, w.tokenBuf) || bytes.IndexByte(line, '\n') != len(line)-1 {
		return w.fail(fmt.Errorf("write event (token %d): %w: not a canonical line of that token", token, ErrRecord))
	}
	return w.addEvent(token, line, jsonline.PayloadType(line))
}

func (w *Writer) checkEvent(token int64) error {
	if err := w.usable(); err != nil {
		return err
	}
	check := w.events.check(token)
	switch {
	case w.eventsDone:
		return w.fail(fmt.Errorf("write event (token %d): %w: events are finished", token, errState))
	case check.behind:
		return w.fail(fmt.Errorf("write event (token %d): %w: expected a token from %d on", token, errOrder, check.expected))
	case check.outOfRange:
		return w.fail(fmt.Errorf("write event (token %d): %w: the range ends at %d", token, errOrder, w.opts.Range.Last))
	case check.missing:
		return w.fail(fmt.Errorf("write event (token %d): %w: tokens %d to %d were neither written nor declared as a gap", token, errGap, check.expected, token-1))
	}
	return nil
}

func (w *Writer) addEvent(token int64, line, typ []byte) error {
	if err := checkLine(line); err != nil {
		return w.fail(fmt.Errorf("write event (token %d): %w", token, err))
	}
	if err := w.rotate(StreamEvents, token, len(line)); err != nil {
		return err
	}
	if err := w.chunk.add(token, line); err != nil {
		return w.fail(fmt.Errorf("write event (token %d): %w", token, err))
	}
	crashpoint.Hit("event") // faulttest: mid-chunk, after the Nth event
	w.evTypes.add(typ)
	w.evCount++
	w.events.take(token)
	if w.tx != nil && w.tx.start < 0 {
		w.tx.start = token
	}
	return nil
}

// checkLine refuses lines that no reader would accept: over maxRecordBytes, or not UTF-8 (a Record
// whose strings are not valid UTF-8 has no JSON form).
func checkLine(line []byte) error {
	if len(line) > maxRecordBytes {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(line))
	}
	if !utf8.Valid(line) {
		return fmt.Errorf("%w: a string of the record is not valid UTF-8", ErrRecord)
	}
	return nil
}

// rotate commits the open chunk if the next line does not fit, and opens a chunk if none is open.
func (w *Writer) rotate(stream string, first int64, size int) error {
	if w.open {
		c := &w.chunk.info
		if c.Records >= w.opts.ChunkRecords || c.RawSize+int64(size) > w.opts.ChunkBytes {
			if err := w.commitChunk(); err != nil {
				return err
			}
		}
	}
	if !w.open {
		h := w.evHash
		if stream == StreamSnapshots {
			h = w.snHash
		}
		if err := w.chunk.open(w.dir, stream, first, h); err != nil {
			return w.fail(err)
		}
		w.open = true
	}
	return nil
}

// commitChunk makes the open chunk durable and journals it with the state it completes.
func (w *Writer) commitChunk() error {
	if !w.open {
		return nil
	}
	info, err := w.chunk.commit()
	w.open = false
	if err != nil {
		return w.fail(err)
	}
	crashpoint.Hit("chunk-renamed") // faulttest: the chunk has its final name, the journal does not list it
	j := &w.j
	j.Chunks = append(j.Chunks, info)
	// The transactions of the chunk's events are committed with it: a resumed export continues after
	// the chunk's last event, so the journal must describe their grouping up to there.
	if err := w.commitTx(); err != nil {
		return err
	}
	w.snapshotState()
	if err := j.write(w.dir, w.sync); err != nil {
		return w.fail(err)
	}
	return nil
}

// snapshotState copies the running state into the journal (whose chunks already include the open
// chunk's, or it is empty).
func (w *Writer) snapshotState() {
	j := &w.j
	j.NextToken = w.events.next
	j.EventsDone = w.eventsDone
	j.LastPosition = w.snapshots.prev
	j.Events = journalState{Count: w.evCount, Hash: marshalHash(w.evHash), Types: w.evTypes.list(), OtherTypes: w.evTypes.other}
	j.Snapshots = journalState{Count: w.snCount, Hash: marshalHash(w.snHash), Types: w.snTypes.list(), OtherTypes: w.snTypes.other}
	j.Gaps = slices.Clone(w.gaps)
	if t := w.tx; t != nil {
		j.Transactions = &journalTx{Count: t.count, Lines: t.lines, Hash: marshalHash(t.hash), Run: t.run, Open: t.start}
	}
}

// AddGap declares that the tokens g.From to g.To are not in the archive, for the reason g.Cause (for
// example "unavailable" for tokens a source does not hold). g.From must be the next expected token.
// Declaring again a gap that an earlier run committed is accepted and ignored.
func (w *Writer) AddGap(g Gap) error {
	if err := w.usable(); err != nil {
		return err
	}
	if slices.Contains(w.gaps, g) && g.To < w.events.next {
		return nil
	}
	switch {
	case w.eventsDone:
		return w.fail(fmt.Errorf("add gap %d-%d: %w: events are finished", g.From, g.To, errState))
	case g.Cause == "":
		return w.fail(fmt.Errorf("add gap %d-%d: no cause", g.From, g.To))
	case g.From != w.events.next || g.To < g.From || g.To > w.opts.Range.Last:
		return w.fail(fmt.Errorf("add gap %d-%d: %w: expected a gap from %d, within the range ending at %d", g.From, g.To, errOrder, w.events.next, w.opts.Range.Last))
	}
	if err := w.endTx(); err != nil { // a transaction never holds a gap
		return err
	}
	if n := len(w.gaps); n > 0 && w.gaps[n-1].To+1 == g.From && w.gaps[n-1].Cause == g.Cause {
		w.gaps[n-1].To = g.To
	} else {
		w.gaps = append(w.gaps, g)
	}
	w.events.passGap(w.gaps)
	return nil
}

// FinishEvents closes the events stream: it commits the last events chunk and journals that the events
// are complete. The tokens after the last event up to Range.Last count as filtered when the archive has
// a Filter; without one they must have been declared with AddGap, else it fails. Calling it again is a
// no-op.
func (w *Writer) FinishEvents() error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.eventsDone {
		return nil
	}
	if from, to, missing := w.events.missingAtEnd(); missing {
		return w.fail(fmt.Errorf("finish events: %w: tokens %d to %d were neither written nor declared as a gap", errGap, from, to))
	}
	if w.tx != nil {
		if err := w.endTx(); err != nil {
			return err
		}
		if err := w.flushTxRun(); err != nil {
			return err
		}
	}
	w.events.finish()
	w.eventsDone = true
	if w.open {
		return w.commitChunk()
	}
	if err := w.commitTx(); err != nil {
		return err
	}
	w.snapshotState()
	if err := w.j.write(w.dir, w.sync); err != nil {
		return w.fail(err)
	}
	return nil
}

// WriteSnapshot writes the next snapshot, after FinishEvents; r.Token is its position (SPEC.md,
// "Snapshot positions"): positions must increase, and for a SourceServer archive they are the ordinals
// 0, 1, 2, …. With snapshot mode SnapshotsNone it fails.
func (w *Writer) WriteSnapshot(r *Record) error {
	if err := w.usable(); err != nil {
		return err
	}
	pos := r.Token
	check := w.snapshots.check(pos)
	switch {
	case w.opts.Snapshots == SnapshotsNone:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: snapshot mode is %q", pos, errState, SnapshotsNone))
	case !w.eventsDone:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: FinishEvents first", pos, errState))
	case check.notAfter:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: expected a position after %d", pos, errOrder, w.snapshots.prev))
	case check.notOrdinal:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: the snapshots of a server export are numbered 0, 1, 2, …; expected %d", pos, errOrder, check.expected))
	}
	w.scratch = AppendSnapshotJSON(w.scratch[:0], r)
	if err := checkLine(w.scratch); err != nil {
		return w.fail(fmt.Errorf("write snapshot (position %d): %w", pos, err))
	}
	if err := w.rotate(StreamSnapshots, pos, len(w.scratch)); err != nil {
		return err
	}
	if err := w.chunk.add(pos, w.scratch); err != nil {
		return w.fail(fmt.Errorf("write snapshot (position %d): %w", pos, err))
	}
	crashpoint.Hit("snapshot") // faulttest: in the snapshot phase, after the Nth snapshot
	var typ []byte
	if r.Payload != nil {
		typ = append(w.tokenBuf[:0], r.Payload.Type...)
	}
	w.snTypes.add(typ)
	w.snCount++
	w.snapshots.take(pos)
	return nil
}

// AddNote records a note for the manifest. It is journaled at once; adding a note equal to one already
// recorded (by an earlier run) does nothing.
func (w *Writer) AddNote(n Note) error {
	if err := w.usable(); err != nil {
		return err
	}
	if n.Kind == "" {
		return w.fail(fmt.Errorf("add note: no kind"))
	}
	if slices.Contains(w.j.Notes, n) {
		return nil
	}
	w.j.Notes = append(w.j.Notes, n)
	if err := w.j.write(w.dir, w.sync); err != nil {
		return w.fail(err)
	}
	return nil
}

// Close completes the archive: it finishes the events if FinishEvents was not called, commits the last
// chunk, writes data/manifest.json, then the BagIt files, and removes the journal. Only when Close
// returns nil is the archive complete. Close is idempotent; after an error the directory stays
// resumable.
func (w *Writer) Close() error {
	if w.closed {
		if w.completed || w.err != nil {
			return w.err
		}
		return errClosed
	}
	if w.err != nil {
		w.discard()
		return w.err
	}
	if err := w.FinishEvents(); err != nil {
		w.discard()
		return err
	}
	if err := w.commitChunk(); err != nil {
		w.discard()
		return err
	}
	err := w.commit()
	w.discard()
	if err != nil {
		return w.fail(err)
	}
	w.completed = true
	return nil
}

func (w *Writer) commit() error {
	m, err := w.manifest()
	if err != nil {
		return err
	}
	data, err := marshalManifest(m)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if len(data) > maxManifestBytes {
		return fmt.Errorf("write manifest: it would be %d bytes (%d chunks), more than the %d bytes readers accept: export again with larger chunks (--chunk-size, --chunk-records)", len(data), len(m.Chunks), maxManifestBytes)
	}
	// The manifest must be one that Open accepts; a failure here is a bug, and nothing is written.
	if _, err := parseManifest(data); err != nil {
		return fmt.Errorf("internal error: the manifest written would be invalid: %w", err)
	}
	if err := writeFileAtomic(w.dir, manifestPath, data, w.sync); err != nil {
		return err
	}
	for _, f := range bagFiles(m, data) {
		if err := writeFileAtomic(w.dir, f.Path, f.Data, w.sync); err != nil {
			return err
		}
	}
	if w.opts.Sign != nil {
		if err := signTagManifest(w.dir, w.opts.Sign, w.sync); err != nil {
			return err
		}
	}
	crashpoint.Hit("journal-remove") // faulttest: manifest and BagIt files written, journal still there
	if err := os.Remove(filepath.Join(w.dir, journalPath)); err != nil {
		return fmt.Errorf("remove journal: %w", err)
	}
	if w.sync {
		return syncDir(w.dir)
	}
	return nil
}

// manifest builds the manifest from the journal, which by now covers everything.
func (w *Writer) manifest() (*Manifest, error) {
	j := &w.j
	evHash, err := unmarshalHash(j.Events.Hash)
	if err != nil {
		return nil, err
	}
	snHash, err := unmarshalHash(j.Snapshots.Hash)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Format: formatName, Version: Version, Tool: j.Tool, Created: j.Created, Source: j.Source,
		Events: EventStream{
			FirstToken: j.Range.First, LastToken: j.Range.Last, Range: j.Range, Count: j.Events.Count,
			SHA256: hexSum(evHash), Types: j.Events.Types, OtherTypes: j.Events.OtherTypes,
		},
		Snapshots: SnapshotStream{
			Mode: j.SnapshotMode, Count: j.Snapshots.Count, SHA256: hexSum(snHash),
			Types: j.Snapshots.Types, OtherTypes: j.Snapshots.OtherTypes,
		},
		Filter: j.Filter, Previous: j.Previous, Chunking: j.Chunking,
		Gaps: j.Gaps, Notes: j.Notes, Chunks: j.Chunks,
	}
	var gapTokens int64
	for _, g := range j.Gaps {
		gapTokens += g.To - g.From + 1
	}
	if m.Filter != nil {
		m.Events.Filtered = (j.Range.Last - j.Range.First + 1) - j.Events.Count - gapTokens
	}
	if m.Events.Types == nil {
		m.Events.Types = []TypeCount{}
	}
	if m.Snapshots.Types == nil {
		m.Snapshots.Types = []TypeCount{}
	}
	if m.Gaps == nil {
		m.Gaps = []Gap{}
	}
	if m.Notes == nil {
		m.Notes = []Note{}
	}
	if m.Chunks == nil {
		m.Chunks = []ChunkInfo{}
	}
	if j.Encrypted {
		m.Version, m.Encryption = versionEncryption, encryptionAge
	}
	if t := j.Transactions; t != nil {
		txHash, err := unmarshalHash(t.Hash)
		if err != nil {
			return nil, err
		}
		m.Version = VersionTransactions
		m.Transactions = &TransactionStream{Count: t.Count, Runs: t.Lines, SHA256: hexSum(txHash)}
		// Committed with the events chunks, listed after the snapshots.
		m.Chunks = slices.Clone(m.Chunks)
		slices.SortStableFunc(m.Chunks, func(a, b ChunkInfo) int { return streamIndex(a.Stream) - streamIndex(b.Stream) })
	}
	m.Fingerprint, err = combineDigests(m.Events.SHA256, m.Snapshots.SHA256)
	return m, err
}

// discard drops the open chunk and releases the encoder; the writer is closed afterwards.
func (w *Writer) discard() {
	if w.closed {
		return
	}
	if w.open {
		w.chunk.abort()
		w.open = false
	}
	w.enc.Close()
	if t := w.tx; t != nil {
		if t.open {
			t.chunk.abort()
			t.open = false
		}
		t.enc.Close()
	}
	w.closed = true
}

// Suspend stops writing and leaves the directory resumable: the open chunk is discarded, everything
// committed stays, and Resume continues from NextToken and SnapshotsCommitted. After Suspend the writer
// is closed.
func (w *Writer) Suspend() error {
	w.discard()
	return nil
}

// CommittedEvents iterates over the events in committed chunks, verified like Archive.Events: what an
// export resuming its snapshot phase needs to find the aggregates it exported. The iterator must be
// closed; it does not see events written after it was created.
func (w *Writer) CommittedEvents(ctx context.Context) *Iterator {
	var chunks []ChunkInfo
	for _, c := range w.j.Chunks {
		if c.Stream == StreamEvents {
			chunks = append(chunks, c)
		}
	}
	return newIterator(ctx, StreamEvents, w.opts.Range.First, source{root: w.dir, chunks: chunks, identities: w.opts.Identities})
}
