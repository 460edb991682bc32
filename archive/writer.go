package archive

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/axarchive/axarchive/archive/internal/bagit"
	"github.com/axarchive/axarchive/archive/internal/zstdframe"
)

// Options configure a new archive. The zero value is not enough: Source and Range must be set. On
// Resume, the options of the first run are authoritative (see Writer.Options); only NoSync is taken
// from the resuming run.
type Options struct {
	Source manifest.Source
	// Range is the token range the archive covers, fixed at Create.
	Range manifest.Range
	// Filter is the selection of events applied by the caller; nil means none. With a filter, tokens of
	// the range that are not written are counted as filtered; without one, missing tokens are an
	// error.
	Filter *manifest.Filter
	// Snapshots is the snapshot mode recorded in the manifest: manifest.SnapshotsAll (default, ""),
	// manifest.SnapshotsLatest or manifest.SnapshotsNone (no snapshot may be written).
	Snapshots string
	// Previous links an incremental archive to the one it continues: Range.First must be
	// Previous.LastToken+1.
	Previous *manifest.Link
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
	st   Storage
	dir  string // st.String(), for messages
	opts Options
	j    journal // as last written
	sync bool

	enc   *zstd.Encoder
	chunk chunkWriter
	open  bool // chunk holds an open chunk

	// pending is the commit of the last full chunk running in the background (not into a directory),
	// nil when none; pendingJ the journal it writes, the committed state once it is done (wait).
	pending  chan error
	pendingJ *journal

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
	gaps       []manifest.Gap
	tx         *txWriter // nil unless the archive records transactions

	scratch   []byte
	tokenBuf  []byte
	err       error
	closed    bool
	completed bool
}

func normalize(opts *Options) error {
	if opts.Snapshots == "" {
		opts.Snapshots = manifest.SnapshotsAll
	}
	switch opts.Snapshots {
	case manifest.SnapshotsAll, manifest.SnapshotsLatest, manifest.SnapshotsNone:
	default:
		return fmt.Errorf("snapshot mode %q: want %q, %q or %q", opts.Snapshots, manifest.SnapshotsAll, manifest.SnapshotsLatest, manifest.SnapshotsNone)
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
	case manifest.SourceServer, manifest.SourceSegments:
	default:
		return fmt.Errorf("source kind %q: want %q or %q", opts.Source.Kind, manifest.SourceServer, manifest.SourceSegments)
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
	return CreateIn(Dir(dir), opts)
}

// CreateIn starts a new archive in st, which must hold nothing (else ErrNotEmpty), as Create does in a
// directory. The caller keeps st; the Writer does not close it.
func CreateIn(st Storage, opts Options) (*Writer, error) {
	dir := st.String()
	if err := checkOptions(&opts); err != nil {
		return nil, fmt.Errorf("create archive %s: %w", dir, err)
	}
	sync := !opts.NoSync
	st = withSync(st, sync)
	entries, err := st.List("")
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	if len(entries) > 0 {
		if !unborn(entries) {
			return nil, fmt.Errorf("create archive %s: %w", dir, ErrNotEmpty)
		}
		// Left by an export killed before its first journal existed: only what Create makes.
		if err := st.Remove(journalPath + tmpSuffix); err != nil {
			return nil, fmt.Errorf("create archive: %w", err)
		}
	}
	if d := localDir(st); d != nil {
		dirs := []string{"", dataDir, dataDir + "/" + manifest.StreamEvents, dataDir + "/" + manifest.StreamSnapshots}
		if opts.Transactions {
			dirs = append(dirs, dataDir+"/"+manifest.StreamTransactions)
		}
		for _, sub := range dirs {
			if err := os.MkdirAll(d.path(sub), 0o755); err != nil {
				return nil, fmt.Errorf("create archive: %w", err)
			}
		}
		if sync {
			for _, sub := range []string{dataDir, ""} {
				if err := syncDir(filepath.Join(dir, sub)); err != nil {
					return nil, fmt.Errorf("create archive: %w", err)
				}
			}
			if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
				return nil, fmt.Errorf("create archive: %w", err)
			}
		}
	}
	w := &Writer{
		st:   st,
		dir:  dir,
		opts: opts,
		sync: sync,
		j: journal{
			Format: journalFormat, Version: Version,
			Tool: opts.Tool, Created: opts.Created, Source: opts.Source, Range: opts.Range,
			Filter: opts.Filter, SnapshotMode: opts.Snapshots, Previous: opts.Previous,
			Chunking: manifest.Chunking{MaxBytes: opts.ChunkBytes, MaxRecords: opts.ChunkRecords},
			Level:    opts.Level, Signed: opts.Sign != nil, NextToken: opts.Range.First, LastPosition: -1,
			Chunks: []manifest.ChunkInfo{}, Gaps: []manifest.Gap{}, Notes: []manifest.Note{},
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
	if err := w.j.write(st); err != nil {
		w.enc.Close()
		return nil, fmt.Errorf("create archive: %w", err)
	}
	return w, nil
}

// unborn reports whether the entries (List("") of a storage) are nothing but what Create makes before
// its first journal is in place: the empty data directories and, at most, the first journal's
// temporary file. Anything else, a link included, makes it a storage that is not ours to reuse.
func unborn(entries []StorageEntry) bool {
	allowed := map[string]bool{
		dataDir: true, dataDir + "/" + manifest.StreamEvents: true, dataDir + "/" + manifest.StreamSnapshots: true,
		dataDir + "/" + manifest.StreamTransactions: true, journalPath + tmpSuffix: false,
	}
	for _, e := range entries {
		isDir, known := allowed[e.Name]
		if !known || isDir != e.Mode.IsDir() || (!e.Mode.IsDir() && !e.Mode.IsRegular()) {
			return false
		}
	}
	return true
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
	w.snapshots = newSnapshotOrder(w.opts.Source.Kind == manifest.SourceServer)
	w.snapshots.prev, w.snapshots.next = j.LastPosition, j.LastPosition+1
	w.enc, err = zstdframe.NewEncoder(j.Level)
	if err != nil {
		return fmt.Errorf("zstd encoder: %w", err)
	}
	w.chunk = chunkWriter{enc: w.enc, recipients: w.opts.Recipients}
	if jt := j.Transactions; jt != nil {
		t := &txWriter{count: jt.Count, lines: jt.Lines, run: jt.Run, start: jt.Open}
		if t.hash, err = unmarshalHash(jt.Hash); err != nil {
			return errorf(journalPath, 0, -1, ErrCorrupt, "transactions %v", err)
		}
		if t.enc, err = zstdframe.NewEncoder(j.Level); err != nil {
			return fmt.Errorf("zstd encoder: %w", err)
		}
		t.chunk = chunkWriter{enc: t.enc, recipients: w.opts.Recipients}
		w.tx = t
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

// CommittedEvents iterates over the events in committed chunks, verified like Archive.Events: what an
// export resuming its snapshot phase needs to find the aggregates it exported. The iterator must be
// closed; it does not see events written after it was created.
func (w *Writer) CommittedEvents(ctx context.Context) *Iterator {
	_ = w.wait() // an error is sticky: the writer's next call returns it
	var chunks []manifest.ChunkInfo
	for _, c := range w.j.Chunks {
		if c.Stream == manifest.StreamEvents {
			chunks = append(chunks, c)
		}
	}
	return newIterator(ctx, manifest.StreamEvents, w.opts.Range.First, source{st: w.st, chunks: chunks, identities: w.opts.Identities})
}
