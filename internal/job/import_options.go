package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/writer"
)

// Limits of one AppendEvent transaction (AXON.md 2.3 and 5.10).
const (
	// MaxTransactionEvents is the most events Axon Server writes as one block.
	MaxTransactionEvents = 32767
	// DefaultMaxMessageSize is Axon Server's default axoniq.axonserver.max-message-size.
	DefaultMaxMessageSize = 4 << 20
	// transactionHeadroom keeps a transaction this far under the message size, as EE replicates a
	// transaction as one message.
	transactionHeadroom = 10000
	// DefaultTransactionBytes is the size a transaction's events aim at. Axon Server holds a whole
	// transaction's events in memory until it writes them: on the real server (SE 2023.2.1, its default
	// 512 MiB heap is what run.sh gives it) transactions of 4 MiB cost it more garbage collection than the
	// fewer calls save, and much smaller ones cost more in calls and confirmations than they save; about
	// 2 MiB was the fastest default import measured (README, Performance).
	DefaultTransactionBytes = 2 << 20
)

// ImportOptions of an import. The zero value imports into an empty context.
type ImportOptions struct {
	// Resume continues an interrupted import: the target's head must be an event of the archive.
	Resume bool
	// Renumber lets events take the target's next tokens (for filtered or merged archives and non-empty
	// targets); TokenMap then names the file that maps archive tokens to target tokens.
	Renumber bool
	TokenMap string
	// DryRun makes the plan and sends nothing.
	DryRun bool
	// NoVerify skips the full verification of the archives before anything is sent.
	NoVerify bool
	// MaxMessageSize is the target's axoniq.axonserver.max-message-size.
	MaxMessageSize int
	// MaxTransactionEvents bounds events per transaction (at most 32,767).
	MaxTransactionEvents int
	// MaxTransactionBytes bounds the events' bytes per transaction (0: DefaultTransactionBytes, or for
	// archives that record their source's transactions the message size); never more than the message
	// size allows. An event larger than it is a transaction of its own.
	MaxTransactionBytes int64
	// Warn receives messages a person must see.
	Warn func(string)
	// Progress, if set, is updated while the import runs.
	Progress *ImportProgress
	// Check proves, once everything is sent, that the target equals the archives (CompareArchives, as
	// `axarchive diff` does), following the import as it commits; the verdict is ImportResult.Diff.
	Check bool
	// CheckRetries is the proof's CompareOptions.MaxRetries.
	CheckRetries int
	// Sending, if set, is called once the preflight (verification, plan) has passed, just before the
	// first event is sent: where a comparison that follows the import could start
	// (CompareOptions.AfterImport), which Check does.
	Sending func(*Plan)
}

// ImportProgress is read by the CLI while an import runs.
type ImportProgress struct {
	Phase        atomic.Value // "preflight", "events", "snapshots", "checking"
	Events       atomic.Int64 // events confirmed this run
	Total        atomic.Int64 // events to import this run
	Bytes        atomic.Int64
	Snapshots    atomic.Int64
	Transactions atomic.Int64
	Token        atomic.Int64 // target head
	Checked      atomic.Int64 // events the check of import --segments compared
}

// Plan is what an import will do, computed by the preflight.
type Plan struct {
	Archives       []string
	Events         int64
	Snapshots      int64
	Transactions   int64
	Bytes          int64 // protobuf bytes to send
	FirstToken     int64 // archive tokens
	LastToken      int64
	TargetHead     int64 // the target's last token before the import (-1: empty)
	StartAt        int64 // first archive token to send (resume skips what is there)
	SnapshotsFirst int64 // snapshots already in the target (resume)
	Renumber       bool
	// TargetFirst is the target token of the archive's first event: its own token without Renumber,
	// TargetHead + 1 for a renumbered import, and for a resumed one where the first run started (from
	// the token map).
	TargetFirst int64
	Gaps        []manifest.Gap
}

// ProgressError is a failed import: how far it got, so that it can be continued.
type ProgressError struct {
	// Imported is the number of events confirmed by the server in this run.
	Imported int64
	// TargetHead is the target's last token (-1: empty); when HeadUnknown is set the server could not be
	// asked after the failure and it is the last one confirmed: the target may hold one transaction more.
	TargetHead  int64
	HeadUnknown bool
	// NextToken is the archive token that was not yet imported.
	NextToken int64
	// Phase is "events" or "snapshots".
	Phase string
	Err   error
}

func (e *ProgressError) Error() string {
	head := fmt.Sprintf("the target now ends at token %d", e.TargetHead)
	if e.HeadUnknown {
		head = fmt.Sprintf("confirmed up to target token %d; the server could not be asked for its head since", e.TargetHead)
	}
	at := fmt.Sprintf("archive token %d", e.NextToken)
	if e.Phase == "snapshots" {
		at = fmt.Sprintf("snapshot position %d", e.NextToken)
	}
	cause := e.Err.Error()
	if errors.Is(e.Err, context.Canceled) {
		cause = "interrupted"
	}
	return fmt.Sprintf("import stopped in the %s phase at %s (%d events confirmed this run; %s): %s", e.Phase, at, e.Imported, head, cause)
}

func (e *ProgressError) Unwrap() error { return e.Err }

// Preflight errors: nothing was sent.
var (
	ErrTargetNotEmpty = errors.New("target context is not empty")
	ErrNotContiguous  = errors.New("archive tokens do not start at 0 or have gaps")
	ErrChain          = archive.ErrChain // invalid input, as for verify
	ErrEventTooLarge  = writer.ErrEventTooLarge
	ErrMismatch       = writer.ErrMismatch
)

// IncrementalError is an incremental archive given first (or alone) without --renumber: its events
// continue another archive, which must be imported before it (the chain, oldest first).
type IncrementalError struct {
	Dir      string
	Previous manifest.Link
}

func (e *IncrementalError) Error() string {
	return fmt.Sprintf("%s is an incremental archive: it starts at token %d and continues the archive with fingerprint %s, which must be imported before it",
		e.Dir, e.Previous.LastToken+1, e.Previous.Fingerprint)
}

func (e *IncrementalError) Unwrap() error { return ErrNotContiguous }

// SequenceError is a transaction the server rejected for an aggregate sequence number (AXONIQ-2000),
// located by asking the server for the aggregate's highest sequence.
type SequenceError = writer.SequenceError

type importer struct {
	conn     *axonclient.Conn
	src      *reader.ArchiveSource
	sink     *writer.ServerSink // the target, once importEvents made it
	archives []*archive.Archive
	dirs     []string
	opts     ImportOptions
	progress *ImportProgress
	maxTx    int   // events per transaction
	maxBytes int64 // bytes per transaction
	// recovered are the mappings a resumed renumbered import found in the target but not in the token
	// map (the first run stopped between a confirmation and writing the map); written before anything
	// is sent.
	recovered []mapping
	// window is the archive's first snapshots, which a fresh import sends while the events are imported
	// (import_overlap.go); nil for a resumed one.
	window *snapshotWindow
}

func newImporter(conn *axonclient.Conn, archives []*archive.Archive, opts ImportOptions) *importer {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxTransactionEvents <= 0 || opts.MaxTransactionEvents > MaxTransactionEvents {
		opts.MaxTransactionEvents = MaxTransactionEvents
	}
	im := &importer{conn: conn, src: reader.NewArchiveSource(archives), archives: archives, opts: opts, progress: opts.Progress, maxTx: opts.MaxTransactionEvents}
	for _, a := range archives {
		im.dirs = append(im.dirs, a.Dir())
	}
	if im.progress == nil {
		im.progress = new(ImportProgress)
	}
	im.maxBytes = int64(opts.MaxMessageSize - transactionHeadroom)
	if im.maxBytes < int64(opts.MaxMessageSize)/2 {
		im.maxBytes = int64(opts.MaxMessageSize) / 2
	}
	switch {
	case opts.MaxTransactionBytes > 0:
		im.maxBytes = min(im.maxBytes, opts.MaxTransactionBytes)
	case !slices.ContainsFunc(archives, (*archive.Archive).HasTransactions):
		// An archive's recorded transactions are kept whole (the target's blocks are then the source's):
		// the server took them at their size once.
		im.maxBytes = min(im.maxBytes, DefaultTransactionBytes)
	}
	return im
}

// OpenArchives opens the archives in dirs, in order: what Import and Compare do with directories, for
// callers that pass the same archives to both (see ImportArchives).
func OpenArchives(dirs []string, ids ...age.Identity) ([]*archive.Archive, error) {
	return OpenArchivesAt(context.Background(), dirs, nil, ids...)
}

// OpenArchivesAt is OpenArchives of locations that may be s3:// URLs (internal/location), configured by
// o (nil: the AWS environment); ctx is the context of the object stores' requests while the archives
// are read.
func OpenArchivesAt(ctx context.Context, locs []string, o *s3store.Options, ids ...age.Identity) ([]*archive.Archive, error) {
	// Several archives are a chain: checked here, before any server is dialled, so that import and diff
	// refuse a broken one as invalid input (exit 3), the way verify does.
	chain, err := location.OpenChain(ctx, locs, o, ids...)
	if err != nil {
		return nil, err
	}
	return chain.Archives(), nil
}

func (im *importer) warn(format string, args ...any) {
	if im.opts.Warn != nil {
		im.opts.Warn(fmt.Sprintf(format, args...))
	}
}

// encodedSize is the size of one event inside an AppendEvent message stream.
func encodedSize(r *archive.Record) int64 { return int64(codec.Size(r)) }
