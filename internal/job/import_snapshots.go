package job

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/writer"
)

// importSnapshots appends the archive's snapshots that are left once all events are imported (AXON.md
// 2.4: a snapshot beyond the aggregate's highest event sequence is refused), one AppendSnapshot call
// each, several in flight (see writer.ServerSink.WriteSnapshot). A fresh import sent the ready ones of
// its window beside the events (import_overlap.go): what is left of the window goes first, in the
// archive's order, then the snapshots after it. A resumed import sends them all here, and first asks the
// target which of them it already holds, so none is stored twice.
func (im *importer) importSnapshots(ctx context.Context, plan *Plan) error {
	im.progress.Phase.Store("snapshots")
	var have *targetSnapshots
	if im.opts.Resume {
		have = &targetSnapshots{conn: im.conn, byAggregate: map[string]map[string]int{}}
	}
	snd := im.sink
	fail := func(position int64, err error) error {
		var se *writer.SnapshotError
		if errors.As(snd.Close(), &se) {
			position, err = se.Position, se.Err // the first failure in the archive's order says most
		}
		return im.snapshotFailure(plan, snd.SnapshotsSent(), position, err)
	}
	skip := 0 // the snapshots at the start of the stream that the window held
	if w := im.window; w != nil {
		im.window = nil // let them go once sent
		for _, s := range w.held {
			if s.handed {
				continue
			}
			if err := snd.WriteEncodedSnapshot(s.position, s.aggregate, s.sequence, s.event); err != nil {
				if errors.Is(err, writer.ErrStopped) {
					return fail(-1, nil)
				}
				return fail(s.position, err)
			}
		}
		if !w.full { // it held them all
			if err := snd.Close(); err != nil {
				return fail(-1, err)
			}
			return nil
		}
		skip = len(w.held)
	}
	err := im.eachSnapshot(ctx, func(_ *archive.Archive, r *archive.Record) error {
		if skip > 0 {
			skip--
			return nil
		}
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
		if err := snd.WriteSnapshot(r); err != nil && !errors.Is(err, writer.ErrStopped) {
			return err
		}
		return nil // after a failure, which fail reports, nothing more is sent
	})
	var se *snapshotError
	if errors.As(err, &se) {
		return fail(se.position, se.err)
	}
	if cerr := snd.Close(); err != nil || cerr != nil {
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
