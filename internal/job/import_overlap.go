package job

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/axarchive/axarchive/internal/writer"
)

// A fresh import sends the archive's first snapshots while the events are still being imported: each
// as soon as the transaction holding its aggregate's event at the snapshot's sequence is confirmed (the
// server refuses a snapshot beyond the aggregate's highest event sequence, AXON.md 2.4). Against the
// real server the snapshots are bound by the round trip of one call each, so sending them after all
// events made them a serial tail of seconds; sent beside the events they mostly hide behind the commits.
//
// The snapshots waited for are a window of the archive's first ones, held in memory (encoded), so that
// memory stays bounded whatever the archive's size; those after the window are sent after the events,
// as a resumed import sends them all.

// The window's bounds: variables so that a test can make the window tiny.
var (
	overlapSnapshots           = 1 << 16
	overlapSnapshotBytes int64 = 64 << 20
)

// heldSnapshot is a snapshot of the window, encoded as it is sent.
type heldSnapshot struct {
	position  int64 // in the snapshot stream
	aggregate string
	sequence  int64
	event     []byte
	readyAt   int64 // the source token of the event it waits for, once seen
	handed    bool  // given to the sink; written by the sending goroutine, read once it has ended
}

// snapshotWindow is the archive's first snapshots, in the archive's order, and per aggregate those still
// waiting for their event.
type snapshotWindow struct {
	held    []*heldSnapshot
	bytes   int64
	full    bool                       // the archive has snapshots after the window
	waiting map[string][]*heldSnapshot // aggregate id -> its snapshots not yet ready, in the archive's order
}

func newSnapshotWindow() *snapshotWindow {
	return &snapshotWindow{waiting: map[string][]*heldSnapshot{}}
}

// add takes the snapshot into the window if it still has room: the window is a prefix of the archive's
// snapshots, so once one does not fit, none after it is taken.
func (w *snapshotWindow) add(position int64, aggregate string, sequence int64, event []byte) {
	if w.full || len(w.held) >= overlapSnapshots || w.bytes+int64(len(event)) > overlapSnapshotBytes {
		w.full = true
		return
	}
	s := &heldSnapshot{position: position, aggregate: strings.Clone(aggregate), sequence: sequence, event: append([]byte(nil), event...)}
	w.held = append(w.held, s)
	w.bytes += int64(len(event))
	w.waiting[s.aggregate] = append(w.waiting[s.aggregate], s)
}

// overlap sends the window's snapshots while the events are imported. The events' loop notes, per event,
// the snapshots it makes ready (seen); the confirmations move the confirmed token (confirm); one
// goroutine hands the ready snapshots whose event is confirmed to the sink, which alone may call its
// snapshot methods until the overlap ends (end).
type overlap struct {
	w         *snapshotWindow
	sink      *writer.ServerSink
	ready     chan *heldSnapshot // in the order of their events: per aggregate, the archive's order
	confirmed atomic.Int64       // the source token of the last event confirmed
	moved     chan struct{}      // a confirmation since the goroutine last looked
	stop      chan struct{}      // the events failed: nothing more is handed on
	ended     chan struct{}      // closed when the goroutine has returned
}

func startOverlap(ctx context.Context, w *snapshotWindow, sink *writer.ServerSink, lastConfirmed int64) *overlap {
	o := &overlap{w: w, sink: sink, ready: make(chan *heldSnapshot, len(w.held)), moved: make(chan struct{}, 1),
		stop: make(chan struct{}), ended: make(chan struct{})}
	o.confirmed.Store(lastConfirmed)
	go o.run(ctx)
	return o
}

// seen notes the event at token: its aggregate's waiting snapshots up to its sequence are ready once it
// is confirmed. It never blocks: ready has room for the whole window.
func (o *overlap) seen(token int64, agg eventAggregate) {
	if !agg.domain || len(o.w.waiting) == 0 {
		return
	}
	q, ok := o.w.waiting[string(agg.id)]
	if !ok || q[0].sequence > agg.sequence {
		return // most events: nothing to do, and no string made of the id
	}
	for len(q) > 0 && q[0].sequence <= agg.sequence {
		q[0].readyAt = token
		o.ready <- q[0]
		q = q[1:]
	}
	if len(q) == 0 {
		delete(o.w.waiting, string(agg.id))
	} else {
		o.w.waiting[string(agg.id)] = q
	}
}

// confirm moves the confirmed token on; called by the sink's sender, it never blocks.
func (o *overlap) confirm(last int64) {
	o.confirmed.Store(last)
	select {
	case o.moved <- struct{}{}:
	default:
	}
}

func (o *overlap) run(ctx context.Context) {
	defer close(o.ended)
	for {
		var s *heldSnapshot
		select {
		case s = <-o.ready:
		case <-o.stop:
			return
		case <-ctx.Done():
			return
		}
		if s == nil {
			return // closed: every event was seen
		}
		for s.readyAt > o.confirmed.Load() {
			select {
			case <-o.moved:
			case <-o.stop:
				return
			case <-ctx.Done():
				return
			}
		}
		if err := o.sink.WriteEncodedSnapshot(s.position, s.aggregate, s.sequence, s.event); err != nil {
			return // a failed snapshot, which Close reports, or the end of ctx
		}
		s.handed = true
	}
}

// end waits for the goroutine: after the events were all confirmed (eventsErr nil) it hands on every
// ready snapshot first; otherwise it stops at once. Then the sink's snapshots are the caller's again.
func (o *overlap) end(eventsErr error) {
	close(o.ready)
	if eventsErr != nil {
		close(o.stop)
	}
	<-o.ended
}

// errSnapshotStopped stops the events after a snapshot failed: the import stops there, and the failed
// snapshot is what it reports.
var errSnapshotStopped = errors.New("a snapshot append failed")
