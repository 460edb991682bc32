package reader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
)

// Source is where records come from: events in token order, then snapshots. The job (internal/job) plans
// the range, moves the events through its pipeline into a sink, and asks for the snapshots last.
type Source interface {
	// Describe names the source in the manifest of an archive made from it.
	Describe() manifest.Source
	// Bounds returns the first token and the last token available now (last = first-1 when empty).
	Bounds(ctx context.Context) (first, last int64, err error)
	// TokenAt returns the token of the first event at or after t, for a selection by time.
	TokenAt(ctx context.Context, t time.Time) (int64, error)
	// Events emits every event from token from through to, in token order. The bytes of an Event are
	// valid only during the call.
	Events(ctx context.Context, from, to int64, emit func(Event) error) error
	// Transactions says whether the source shows its transactions (Event.TxEnd), which an unfiltered
	// archive records.
	Transactions() bool
	// WantsAggregates says whether Snapshots needs the aggregate ids of the events read
	// (SnapshotRequest.Aggregates).
	WantsAggregates() bool
	// Snapshots writes the snapshot records to out, in the source's order.
	Snapshots(ctx context.Context, req SnapshotRequest, out SnapshotWriter) error
	// Notes are recorded in the manifest of every archive made from this source.
	Notes() []manifest.Note
}

// Event is one event on its way out of a source: its token and either its protobuf Event bytes as the
// source holds them (a server, segment files) or its canonical JSON line (an archive).
type Event struct {
	Token int64
	Raw   []byte
	Line  []byte
	// TxEnd says that the event ends a transaction of the source (see Source.Transactions).
	TxEnd bool
	// Path and LineNo say where a line is (the chunk, and the line's number in it), for errors.
	Path   string
	LineNo int64
}

// SnapshotRequest says which snapshots a job wants.
type SnapshotRequest struct {
	// Latest keeps each aggregate's newest snapshot only.
	Latest bool
	// Skip leaves out the first Skip snapshots (written by an earlier, interrupted run).
	Skip int64
	// Aggregates are the ids of the aggregates of the events read, in order of first appearance, for a
	// source that WantsAggregates.
	Aggregates []string
	// AggregateDone, if set, is called after each of Aggregates is done (progress).
	AggregateDone func()
}

// SnapshotWriter takes a source's snapshots: an *archive.Writer is one.
type SnapshotWriter interface {
	WriteSnapshot(r *archive.Record) error
	// AddNote records something the reader of the output must know (a cut snapshot store).
	AddNote(n manifest.Note) error
}

// TokenError names the event a source or a job stopped at.
type TokenError struct {
	Token int64
	Err   error
}

func (e *TokenError) Error() string { return fmt.Sprintf("event at token %d: %v", e.Token, e.Err) }
func (e *TokenError) Unwrap() error { return e.Err }

// ErrRange is returned for a requested range that the source cannot serve.
var ErrRange = errors.New("requested range not available")
