package job

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
)

// importSnapshots appends the archive's snapshots after all events (AXON.md 2.4: a snapshot beyond the
// aggregate's highest event sequence is refused), one AppendSnapshot call each, several in flight (see
// snapshotSender). A resumed import first asks the target which of them it already holds, so none is
// stored twice.
func (im *importer) importSnapshots(ctx context.Context, plan *Plan) error {
	im.progress.Phase.Store("snapshots")
	var have *targetSnapshots
	if im.opts.Resume {
		have = &targetSnapshots{conn: im.conn, byAggregate: map[string]map[string]int{}}
	}
	snd := newSnapshotSender(im)
	fail := func(position int64, err error) error {
		snd.wait()
		if f := snd.failed; f != nil {
			position, err = f.position, f.err // the first failure in the archive's order says most
		}
		return im.snapshotFailure(plan, snd.sent, position, err)
	}
	err := im.eachSnapshot(ctx, func(_ *archive.Archive, r *archive.Record) error {
		if have != nil {
			held, err := have.take(ctx, r)
			if err != nil {
				return &snapshotError{position: r.Token, err: err}
			}
			if held {
				plan.SnapshotsFirst++
				return nil
			}
		}
		if !snd.send(ctx, r) {
			return ctx.Err() // nil after a failure, which fail reports
		}
		return nil
	})
	var se *snapshotError
	if errors.As(err, &se) {
		return fail(se.position, se.err)
	}
	snd.wait()
	if err != nil || snd.failed != nil {
		return fail(-1, err)
	}
	return nil
}

// snapshotError is a failure at a snapshot's position.
type snapshotError struct {
	position int64
	err      error
}

func (e *snapshotError) Error() string { return e.err.Error() }

// eachSnapshot calls fn with every snapshot of the archives, in order, with its archive, until fn or the
// reading fails. The record is valid only during the call.
func (im *importer) eachSnapshot(ctx context.Context, fn func(*archive.Archive, *archive.Record) error) error {
	return im.src.EachSnapshot(ctx, fn)
}

// Each AppendSnapshot is a round trip for one snapshot, so the phase is bound by latency, not by the
// cores or the wire: snapshotSender keeps up to maxSnapshotsInFlight calls (and maxSnapshotBytesInFlight
// bytes) going. Two snapshots of one aggregate are never in flight together, so that each aggregate's
// snapshots are stored in the archive's order. After a failure nothing more is sent; snapshots after the
// failed one may have been stored, which a resumed import finds in the target.
const (
	maxSnapshotsInFlight     = 16
	maxSnapshotBytesInFlight = 8 << 20
)

type snapshotSender struct {
	im       *importer
	done     chan snapshotResult
	inFlight map[string]int64 // aggregate id -> bytes of its snapshot in flight
	bytes    int64
	sent     int64
	failed   *snapshotResult // the failure at the lowest position
}

type snapshotResult struct {
	aggregate string
	size      int64
	position  int64
	err       error
}

func newSnapshotSender(im *importer) *snapshotSender {
	return &snapshotSender{im: im, done: make(chan snapshotResult, maxSnapshotsInFlight), inFlight: map[string]int64{}}
}

// send starts the call for r once there is room and no snapshot of its aggregate is in flight. It
// returns false when it sends nothing more: after a failure, or when ctx ends.
func (s *snapshotSender) send(ctx context.Context, r *archive.Record) bool {
	event := codec.Encode(nil, r)
	size := int64(len(event))
	for s.failed == nil {
		_, busy := s.inFlight[r.AggregateID]
		full := len(s.inFlight) >= maxSnapshotsInFlight || (len(s.inFlight) > 0 && s.bytes+size > maxSnapshotBytesInFlight)
		if !busy && !full {
			break
		}
		select {
		case res := <-s.done:
			s.finish(res)
		case <-ctx.Done():
			return false
		}
	}
	if s.failed != nil {
		return false
	}
	s.inFlight[r.AggregateID] = size
	s.bytes += size
	position, agg, seq := r.Token, r.AggregateID, r.Sequence
	go func() {
		err := s.im.conn.AppendSnapshot(ctx, event)
		switch {
		case errors.Is(err, axonclient.ErrTooLarge):
			err = fmt.Errorf("%w: the snapshot at position %d (aggregate %q, sequence %d) is %d bytes; pass the server's axoniq.axonserver.max-message-size as --max-message-size, or raise it on the server: %w",
				ErrEventTooLarge, position, agg, seq, len(event), err)
		case err != nil:
			err = fmt.Errorf("snapshot at position %d (aggregate %q, sequence %d): %w", position, agg, seq, err)
		}
		s.done <- snapshotResult{aggregate: agg, size: size, position: position, err: err}
	}()
	return true
}

func (s *snapshotSender) finish(res snapshotResult) {
	delete(s.inFlight, res.aggregate)
	s.bytes -= res.size
	if res.err != nil {
		if s.failed == nil || res.position < s.failed.position {
			s.failed = &res
		}
		return
	}
	s.sent++
	s.im.progress.Snapshots.Add(1)
}

// wait returns once no call is in flight.
func (s *snapshotSender) wait() {
	for len(s.inFlight) > 0 {
		s.finish(<-s.done)
	}
}

func (im *importer) snapshotFailure(plan *Plan, sent, position int64, err error) error {
	return &ProgressError{Imported: im.progress.Events.Load(), TargetHead: im.progress.Token.Load(), NextToken: position, Phase: "snapshots", Err: fmt.Errorf("%d snapshots sent this run: %w", sent, err)}
}

// targetSnapshots is what the target holds, per aggregate, as multisets of snapshot bytes with the
// snapshot flag cleared (the server sets it when serving, AXON.md 2.6).
type targetSnapshots struct {
	conn        *axonclient.Conn
	byAggregate map[string]map[string]int
}

func snapshotKey(r *archive.Record) string {
	c := *r
	c.Snapshot = false
	return string(codec.Encode(nil, &c))
}

// take reports whether the target holds r, and if so counts that copy as used.
func (t *targetSnapshots) take(ctx context.Context, r *archive.Record) (bool, error) {
	set, ok := t.byAggregate[r.AggregateID]
	if !ok {
		set = map[string]int{}
		if r.AggregateType != "" {
			raws, err := t.conn.ListAggregateSnapshots(ctx, r.AggregateID, 0, math.MaxInt64, 0)
			if err != nil {
				return false, fmt.Errorf("read the target's snapshots of aggregate %q: %w", r.AggregateID, err)
			}
			for _, raw := range raws {
				var s archive.Record
				if err := codec.Decode(raw, &s); err != nil {
					return false, fmt.Errorf("target snapshot of aggregate %q: %w", r.AggregateID, err)
				}
				set[snapshotKey(&s)]++
			}
		}
		t.byAggregate[r.AggregateID] = set
	}
	k := snapshotKey(r)
	if set[k] > 0 {
		set[k]--
		return true, nil
	}
	return false, nil
}
