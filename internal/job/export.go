package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/writer"
)

// Snapshot selections.
const (
	SnapshotsAll    = "all"
	SnapshotsLatest = "latest"
	SnapshotsNone   = "none"
)

// ExportOptions of one export run. The zero value exports everything into a new archive.
type ExportOptions struct {
	// Dir is the archive directory, or an s3://bucket/prefix URL (internal/location). Without Resume
	// it must not exist or be empty.
	Dir string
	// S3 configures the object store when Dir or Since is an s3:// URL; nil takes everything from the
	// AWS environment (s3store.New).
	S3 *s3store.Options
	// Retention, when set, is put on every object of an archive exported to an object store, once the
	// archive is complete (s3store.Store.Retain). A bucket without Object Lock is refused before anything
	// is written. A resumed export of an archive already complete only puts the retention on it.
	Retention *s3store.Retention
	// Sign, when set, signs the archive before it is complete (archive.Options.Sign).
	Sign archive.SignFunc
	// Recipients encrypt every chunk (archive.Options.Recipients); Identities decrypt what an encrypted
	// export committed, when resuming its snapshot phase reads it back.
	Recipients []age.Recipient
	Identities []age.Identity
	// Resume continues an interrupted export in Dir; the source and selection must be the same.
	Resume bool
	// AllowEmpty lets a source that holds no events at all (a context never written to, or a mistyped
	// context name on a server that keeps contexts apart) make an empty archive; without it that is
	// ErrEmpty, before anything is written.
	AllowEmpty bool

	Filter    *manifest.Filter
	Snapshots string // SnapshotsAll (default), SnapshotsLatest or SnapshotsNone

	// FromToken and ToToken bound the exported range (inclusive); nil means the source's first token and
	// the head captured at the start.
	FromToken, ToToken *int64
	// FromTime and ToTime select by event time through the server's token index (live export only):
	// events from FromTime on, and before ToTime.
	FromTime, ToTime *time.Time
	// Since is the directory (or s3:// URL) of a previous archive: the export continues after its last token and links
	// to it, making an incremental archive.
	Since string

	ChunkBytes, ChunkRecords int64
	// Context names the context in the manifest of an offline export; "" means the name of the directory
	// the segment files are in (data/<context>/ in Axon Server's layout). A live export names the context
	// it reads.
	Context string

	// Level is the zstd level of the chunks (1 to 22); 0 means DefaultLevel. A resumed export keeps the
	// level it started with.
	Level int
	Tool  string

	// MaxRetries bounds how many times in a row a lost stream is re-opened without progress; 0 means
	// DefaultMaxRetries, a negative value none.
	MaxRetries int
	// Warn receives messages a person must see: retries, a cut tail, unreachable snapshots.
	Warn func(msg string)
	// Progress, if set, is updated as the export runs; the caller may read it from another goroutine.
	Progress *ExportProgress
}

// ExportProgress is read by the CLI while an export runs.
type ExportProgress struct {
	Phase      atomic.Value // string: "events", "snapshots", "committing"
	First      atomic.Int64 // range being exported
	Last       atomic.Int64
	Token      atomic.Int64 // last token read
	Events     atomic.Int64 // events read this run
	Written    atomic.Int64 // events written (after selection) this run
	Bytes      atomic.Int64 // protobuf bytes read this run
	Snapshots  atomic.Int64 // snapshots written this run
	Aggregates atomic.Int64 // aggregates whose snapshots are to be read
	AggsDone   atomic.Int64
	Resumed    atomic.Int64 // token the run resumed at, or -1
}

func (o *ExportOptions) warn(format string, args ...any) {
	if o.Warn != nil {
		o.Warn(fmt.Sprintf(format, args...))
	}
}

// ExportResult summarises a finished export.
type ExportResult struct {
	Events, Snapshots int64
	Range             manifest.Range
	Fingerprint       string
	Dir               string
	// Retained is the number of objects Options.Retention was put on.
	Retained int
}

// InterruptedError is returned when an export stops before it is complete (cancelled, or failed): the
// archive directory is left resumable.
type InterruptedError struct {
	Dir       string
	NextToken int64 // first token not committed
	Events    int64 // events committed
	Err       error
}

func (e *InterruptedError) Error() string {
	if errors.Is(e.Err, context.Canceled) {
		return fmt.Sprintf("export interrupted before token %d (%d events committed in %s)", e.NextToken, e.Events, e.Dir)
	}
	return fmt.Sprintf("export stopped before token %d (%d events committed in %s): %v", e.NextToken, e.Events, e.Dir, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// DefaultLevel is the zstd level of an export's chunks: the fastest. Compression is most of an export's
// CPU, and zstd's default level (3) makes chunks only about 1% smaller for a fifth more export time. The
// level changes the chunks' compressed bytes only: records, JSON Lines and fingerprint are the same.
const DefaultLevel = 1

// PreviousError is an archive given as Since that cannot be opened: an export cannot continue it.
type PreviousError struct {
	Dir string
	Err error
}

func (e *PreviousError) Error() string {
	msg := e.Err.Error()
	// Open's errors often start with the directory already: say it once.
	msg = strings.TrimPrefix(msg, e.Dir+": ")
	return fmt.Sprintf("previous archive %s: %s", e.Dir, msg)
}

func (e *PreviousError) Unwrap() error { return e.Err }

// ErrRange is returned for a requested range that the source cannot serve.
var ErrRange = reader.ErrRange

// TokenError names the event an export stopped at.
type TokenError = reader.TokenError

// ErrEmpty is returned for a new, non-incremental export of a source that holds no events, unless
// Options.AllowEmpty.
var ErrEmpty = errors.New("nothing to export: the source holds no events")

// Export moves the events and snapshots of src into the archive opts.Dir, resumably.
func Export(ctx context.Context, src reader.Source, opts ExportOptions) (*ExportResult, error) {
	return run(ctx, src, opts)
}

// ExportServer exports the context conn talks to from a running Axon Server.
func ExportServer(ctx context.Context, conn *axonclient.Conn, opts ExportOptions) (*ExportResult, error) {
	return run(ctx, reader.NewServer(conn, reader.ServerOptions{MaxRetries: opts.MaxRetries, Warn: opts.Warn, NoSnapshots: opts.Snapshots == SnapshotsNone}), opts)
}

// ExportSegments exports from a copy of Axon Server's segment files, without a server.
func ExportSegments(ctx context.Context, segOpts reader.SegmentsOptions, opts ExportOptions) (*ExportResult, error) {
	s, err := reader.OpenSegments(segOpts)
	if err != nil {
		return nil, err
	}
	for _, n := range s.Notes() {
		opts.warn("%s", n)
	}
	return run(ctx, reader.NewSegmentSource(s, reader.SegmentSourceOptions{Context: opts.Context, ToToken: opts.ToToken, Warn: opts.Warn}), opts)
}

type job struct {
	opts     ExportOptions
	st       archive.Storage // where the archive is written
	w        *writer.ArchiveSink
	src      reader.Source
	progress *ExportProgress
	sel      *selection

	// aggregate ids of exported domain events, in order of first appearance: the snapshot phase of a
	// live export asks for each one's snapshots.
	aggSeen  map[string]struct{}
	aggOrder []string
}

func (j *job) noteAggregate(id string) {
	if _, ok := j.aggSeen[id]; ok {
		return
	}
	j.aggSeen[id] = struct{}{}
	j.aggOrder = append(j.aggOrder, id)
}

func run(ctx context.Context, src reader.Source, opts ExportOptions) (*ExportResult, error) {
	if opts.Snapshots == "" {
		opts.Snapshots = SnapshotsAll
	}
	switch opts.Snapshots {
	case SnapshotsAll, SnapshotsLatest, SnapshotsNone:
	default:
		return nil, fmt.Errorf("unknown snapshot selection %q (want all, latest or none)", opts.Snapshots)
	}
	opts.Filter = normalizeFilter(opts.Filter)
	progress := opts.Progress
	if progress == nil {
		progress = new(ExportProgress)
	}
	progress.Resumed.Store(-1)
	progress.Phase.Store("events")

	wopts := archive.Options{
		Source:       src.Describe(),
		Filter:       opts.Filter,
		Snapshots:    opts.Snapshots,
		ChunkBytes:   opts.ChunkBytes,
		ChunkRecords: opts.ChunkRecords,
		Level:        cmp.Or(opts.Level, DefaultLevel),
		Tool:         opts.Tool,
		Transactions: src.Transactions() && opts.Filter == nil,
		Sign:         opts.Sign,
		Recipients:   opts.Recipients,
		Identities:   opts.Identities,
	}
	st, err := location.Storage(ctx, opts.Dir, opts.S3)
	if err != nil {
		return nil, err
	}
	store, _ := st.(*s3store.Store)
	if err := checkStore(ctx, store, &opts); err != nil {
		return nil, err
	}
	if opts.Since != "" {
		prev, err := location.Open(ctx, opts.Since, opts.S3)
		if err != nil {
			return nil, &PreviousError{Dir: opts.Since, Err: err}
		}
		m := prev.Manifest()
		wopts.Previous = &manifest.Link{Fingerprint: m.Fingerprint, LastToken: m.Events.LastToken}
	}

	var w *archive.Writer
	// created: this run starts the archive (it resumes none); localNew: in a directory that was not there.
	var created, localNew bool
	if opts.Resume {
		if store != nil {
			// The parts of the files the interrupted run was writing: never completed, the journal says
			// which files to write again.
			n, err := store.AbortUploads(ctx)
			if err != nil {
				return nil, fmt.Errorf("abort the interrupted run's uploads: %w", err)
			}
			if n > 0 {
				opts.warn("aborted %d unfinished upload(s) of the interrupted run in %s", n, store)
			}
		}
		w, err = archive.ResumeIn(st, wopts)
		if errors.Is(err, archive.ErrComplete) && opts.Retention != nil {
			// Retaining the complete archive was interrupted: finish it.
			return finishRetention(ctx, store, opts)
		}
		if err != nil && !errors.Is(err, archive.ErrNotStarted) {
			return nil, err
		}
	}
	if w != nil {
		progress.Resumed.Store(w.NextToken())
		warnKeptSettings(&opts, w.Options())
	} else {
		r, err := planRange(ctx, src, opts, wopts.Previous)
		if err != nil {
			return nil, err
		}
		wopts.Range = r
		if store == nil {
			_, serr := os.Lstat(opts.Dir)
			localNew = errors.Is(serr, fs.ErrNotExist)
		}
		w, err = archive.CreateIn(st, wopts)
		if err != nil && store != nil && !errors.Is(err, archive.ErrNotEmpty) {
			// An object store may have taken the first journal although its reply was lost: whether
			// the export started is unknown here, and --resume is right either way (it starts afresh
			// on a prefix with no journal).
			return nil, &InterruptedError{Dir: opts.Dir, NextToken: r.First, Err: err}
		}
		if err != nil {
			return nil, err
		}
		created = true
	}
	// Also on resume: a run killed between Create and these notes left a journal without them. AddNote
	// keeps a note once, and these come before anything else a run records, so the order is the same.
	for _, n := range src.Notes() {
		if err := w.AddNote(n); err != nil {
			_ = w.Suspend()
			return nil, err
		}
	}
	j := &job{opts: opts, st: st, w: writer.NewArchiveSink(w), src: src, progress: progress, sel: newSelection(opts.Filter), aggSeen: map[string]struct{}{}}
	res, err := j.run(ctx)
	if err != nil {
		// Suspend first: it waits for a chunk still being committed (into an object store), which then
		// counts as committed.
		serr := w.Suspend()
		next, committed := w.NextToken(), w.EventsCommitted()
		if serr != nil {
			err = errors.Join(err, fmt.Errorf("leave archive resumable: %w", serr))
		}
		ie := &InterruptedError{Dir: opts.Dir, NextToken: next, Events: committed, Err: err}
		if created && serr == nil && errors.As(err, new(*reader.SegmentError)) {
			// Damage in the input: --resume would stop at it again, so what this run wrote is nothing
			// anyone can finish. It goes, so that damaged input leaves nothing behind.
			if derr := discardArchive(ctx, st, store, opts.Dir, localNew); derr == nil {
				return nil, fmt.Errorf("%w; %s, which this run created, was removed", ie, opts.Dir)
			}
		}
		return nil, ie
	}
	return res, nil
}

// discardArchive removes what a run that created the archive in dir wrote there: the directory, if it
// was not there before; else its content (Create found it empty); in an object store, every object of
// the prefix (Create found it empty too) and the unfinished uploads.
func discardArchive(ctx context.Context, st archive.Storage, store *s3store.Store, dir string, localNew bool) error {
	if store == nil {
		if localNew {
			return os.RemoveAll(dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := store.AbortUploads(ctx); err != nil {
		return err
	}
	entries, err := st.List("")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Mode.IsDir() {
			if err := st.Remove(e.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// warnKeptSettings says which of the settings given to a resumed export it does not use: the chunking and
// the level are the interrupted export's, so that the archive is the one an uninterrupted run writes. Zero
// means not given.
func warnKeptSettings(opts *ExportOptions, kept archive.Options) {
	var ignored []string
	if opts.Level != 0 && opts.Level != kept.Level {
		ignored = append(ignored, fmt.Sprintf("--level %d (it keeps %d)", opts.Level, kept.Level))
	}
	if opts.ChunkRecords != 0 && opts.ChunkRecords != kept.ChunkRecords {
		ignored = append(ignored, fmt.Sprintf("--chunk-records %d (it keeps %d)", opts.ChunkRecords, kept.ChunkRecords))
	}
	if opts.ChunkBytes != 0 && opts.ChunkBytes != kept.ChunkBytes {
		ignored = append(ignored, fmt.Sprintf("--chunk-size %d (it keeps %d)", opts.ChunkBytes, kept.ChunkBytes))
	}
	if len(ignored) > 0 {
		opts.warn("resuming keeps the chunking and compression level the interrupted export started with, so that the archive is the one an uninterrupted run writes: ignoring %s", strings.Join(ignored, ", "))
	}
}

// planRange fixes the token range of a new export: what was asked for, within what the source holds now.
// Events appended later are not included, so that the archive describes one moment of the store.
func planRange(ctx context.Context, src reader.Source, opts ExportOptions, prev *manifest.Link) (manifest.Range, error) {
	first, last, err := src.Bounds(ctx)
	if err != nil {
		return manifest.Range{}, err
	}
	if seg, ok := src.(*reader.SegmentSource); ok && seg.HoldsSnapshots() {
		opts.AllowEmpty = true // a snapshot store alone is something to archive
	}
	if last < first && prev == nil && !opts.AllowEmpty {
		d := src.Describe()
		if d.Kind == manifest.SourceSegments {
			return manifest.Range{}, fmt.Errorf("%w: the segment files in %s hold no events", ErrEmpty, d.Path)
		}
		return manifest.Range{}, fmt.Errorf("%w: context %q on %s has no events (its last token is %d)", ErrEmpty, d.Context, d.Address, last)
	}
	from, to := first, last
	if prev != nil {
		from = prev.LastToken + 1
	}
	if opts.FromTime != nil {
		t, err := src.TokenAt(ctx, *opts.FromTime)
		if err != nil {
			return manifest.Range{}, err
		}
		from = max(from, t)
	}
	if opts.ToTime != nil {
		t, err := src.TokenAt(ctx, *opts.ToTime)
		if err != nil {
			return manifest.Range{}, err
		}
		if t >= 0 {
			to = min(to, t-1)
		}
	}
	if opts.FromToken != nil {
		if *opts.FromToken < first {
			return manifest.Range{}, fmt.Errorf("%w: --from-token %d is before the first token %d", ErrRange, *opts.FromToken, first)
		}
		from = max(from, *opts.FromToken)
	}
	if opts.ToToken != nil {
		to = min(to, *opts.ToToken)
	}
	if prev != nil && prev.LastToken+1 < first {
		return manifest.Range{}, fmt.Errorf("%w: the previous archive ends at token %d but the source starts at %d", ErrRange, prev.LastToken, first)
	}
	if to < from {
		to = from - 1 // empty range: a valid, empty archive
	}
	return manifest.Range{First: from, Last: to}, nil
}

func (j *job) run(ctx context.Context) (*ExportResult, error) {
	r := j.w.Options().Range
	j.progress.First.Store(r.First)
	j.progress.Last.Store(r.Last)
	wantAggs := j.opts.Snapshots != SnapshotsNone && j.src.WantsAggregates()
	if j.opts.Resume && wantAggs {
		if err := j.reloadAggregates(ctx); err != nil {
			return nil, err
		}
	}
	if !j.w.EventsDone() {
		if err := j.exportEvents(ctx, r, wantAggs); err != nil {
			return nil, err
		}
		if err := j.w.FinishEvents(); err != nil {
			return nil, err
		}
	}
	if j.opts.Snapshots != SnapshotsNone {
		j.progress.Phase.Store("snapshots")
		req := reader.SnapshotRequest{Latest: j.opts.Snapshots == SnapshotsLatest, Skip: j.w.SnapshotsCommitted()}
		if j.src.WantsAggregates() {
			req.Aggregates = j.aggOrder
			j.progress.Aggregates.Store(int64(len(j.aggOrder)))
			req.AggregateDone = func() { j.progress.AggsDone.Add(1) }
		}
		if err := j.src.Snapshots(ctx, req, snapshotCounter{j.w, &j.progress.Snapshots}); err != nil {
			return nil, err
		}
	}
	j.progress.Phase.Store("committing")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := j.w.Close(); err != nil {
		return nil, err
	}
	if store, ok := j.st.(*s3store.Store); ok && j.opts.Retention != nil {
		j.progress.Phase.Store("retaining")
		return finishRetention(ctx, store, j.opts)
	}
	a, err := archive.OpenIn(j.st)
	if err != nil {
		return nil, fmt.Errorf("reopen finished archive: %w", err)
	}
	m := a.Manifest()
	return &ExportResult{Events: m.Events.Count, Snapshots: m.Snapshots.Count, Range: r, Fingerprint: m.Fingerprint, Dir: j.opts.Dir}, nil
}

func (j *job) exportEvents(ctx context.Context, r manifest.Range, wantAggs bool) error {
	from := j.w.NextToken()
	if from > r.Last {
		return nil
	}
	convert := toLines(j.sel, wantAggs, false)
	sinkErr, srcErr := pipeline(ctx, exportBatch, maxBatchAge, func() func(*batch) { return convert }, func(f *feed) error {
		return j.src.Events(f.ctx, from, r.Last, func(e reader.Event) error {
			_, err := f.add(e.Token, e.Raw, e.TxEnd)
			return err
		})
	}, func(b *batch) error {
		if b.err != nil {
			return b.err
		}
		start := 0
		for i, end := range b.outEnds {
			// Transactions are recorded without a filter only, so line i is event i.
			if err := j.w.WriteEvent(b.outToken[i], b.out[start:end], b.txEnd[i]); err != nil {
				return err
			}
			start = end
		}
		for _, id := range b.aggs {
			j.noteAggregate(id)
		}
		j.progress.Events.Add(int64(len(b.tokens)))
		// The token of what is written, not of what was received: the source runs ahead of the
		// converters by up to the pipeline's batches, and a percentage from it ran ahead of the events
		// counted (81% shown at 56% of the events).
		if n := len(b.tokens); n > 0 {
			j.progress.Token.Store(b.tokens[n-1])
		}
		j.progress.Written.Add(int64(len(b.outEnds)))
		j.progress.Bytes.Add(b.inBytes)
		return nil
	})
	if sinkErr != nil {
		return sinkErr
	}
	return srcErr
}

// reloadAggregates rebuilds the aggregate order from the committed events of the interrupted run, so a
// resumed snapshot phase asks for the same aggregates in the same order as an uninterrupted run would.
func (j *job) reloadAggregates(ctx context.Context) error {
	it := j.w.CommittedEvents(ctx)
	defer it.Close()
	for it.Next() {
		r, err := it.Record()
		if err != nil {
			return err
		}
		if r.AggregateType != "" {
			j.noteAggregate(r.AggregateID)
		}
	}
	return it.Err()
}

// snapshotCounter counts the snapshots a source writes into the sink.
type snapshotCounter struct {
	reader.SnapshotWriter
	n *atomic.Int64
}

func (c snapshotCounter) WriteSnapshot(r *archive.Record) error {
	if err := c.SnapshotWriter.WriteSnapshot(r); err != nil {
		return err
	}
	c.n.Add(1)
	return nil
}
