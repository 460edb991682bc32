package writer

import (
	"context"
	"fmt"
	"math"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
)

// importSnapshots appends the archive's snapshots after all events (AXON.md 2.4: a snapshot beyond the
// aggregate's highest event sequence is refused), one AppendSnapshot call each. A resumed import first
// asks the target which of them it already holds, so none is stored twice.
func (im *importer) importSnapshots(ctx context.Context, plan *Plan) error {
	im.progress.Phase.Store("snapshots")
	var have *targetSnapshots
	if im.opts.Resume {
		have = &targetSnapshots{conn: im.conn, byAggregate: map[string]map[string]int{}}
	}
	var sent int64
	for i, a := range im.archives {
		it := a.Snapshots(ctx)
		for it.Next() {
			r, err := it.Record()
			if err != nil {
				it.Close()
				return im.snapshotFailure(plan, sent, -1, fmt.Errorf("%s: %w", im.dirs[i], err))
			}
			if have != nil {
				held, err := have.take(ctx, r)
				if err != nil {
					it.Close()
					return im.snapshotFailure(plan, sent, r.Token, err)
				}
				if held {
					plan.SnapshotsFirst++
					continue
				}
			}
			if err := im.conn.AppendSnapshot(ctx, codec.Encode(nil, r)); err != nil {
				it.Close()
				return im.snapshotFailure(plan, sent, r.Token, fmt.Errorf("snapshot at position %d (aggregate %q, sequence %d): %w", r.Token, r.AggregateID, r.Sequence, err))
			}
			sent++
			im.progress.Snapshots.Add(1)
		}
		err := it.Err()
		it.Close()
		if err != nil {
			return im.snapshotFailure(plan, sent, -1, err)
		}
	}
	return nil
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
