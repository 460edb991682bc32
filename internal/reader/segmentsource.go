package reader

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
)

// SegmentSourceOptions tune a SegmentSource.
type SegmentSourceOptions struct {
	// Context names the context in the manifest; "" means the name of the directory the segment files
	// are in (data/<context>/ in Axon Server's layout).
	Context string
	// ToToken, if set, is the last token the job asks for: damage in the newest file after it does not
	// stop Bounds.
	ToToken *int64
	// Warn receives messages a person must see: a cut tail.
	Warn func(msg string)
}

// SegmentSource reads a copy of Axon Server's segment files, without a server.
type SegmentSource struct {
	s    *Segments
	opts SegmentSourceOptions
	cut  []*TailCut
}

// NewSegmentSource returns the source of the segment files s reads.
func NewSegmentSource(s *Segments, opts SegmentSourceOptions) *SegmentSource {
	return &SegmentSource{s: s, opts: opts}
}

// HoldsSnapshots says whether the copy has a snapshot store: something to archive even without events.
func (src *SegmentSource) HoldsSnapshots() bool { return len(src.s.SnapshotFiles()) > 0 }

func (src *SegmentSource) warn(format string, args ...any) {
	if src.opts.Warn != nil {
		src.opts.Warn(fmt.Sprintf(format, args...))
	}
}

func (src *SegmentSource) Describe() manifest.Source {
	dir := src.s.EventsDir()
	if dir == "" {
		dir = src.s.SnapshotsDir()
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return manifest.Source{Kind: "segments", Path: dir, Context: cmp.Or(src.opts.Context, filepath.Base(dir))}
}

// WantsAggregates: the snapshot store is read whole.
func (src *SegmentSource) WantsAggregates() bool { return false }

func (src *SegmentSource) Notes() []manifest.Note {
	var notes []manifest.Note
	for _, c := range src.cut {
		notes = append(notes, manifest.Note{Kind: "tail-cut", Token: c.Token, Detail: c.String()})
	}
	return notes
}

// Bounds reads the newest events file to its end to learn the last token: a copy of the active segment
// may end in a cut block, and the range recorded in the manifest must be what the files really hold.
func (src *SegmentSource) Bounds(ctx context.Context) (int64, int64, error) {
	files := src.s.EventFiles()
	if len(files) == 0 {
		return 0, -1, nil
	}
	first := files[0].First
	it := src.s.Events(ctx, files[len(files)-1].First)
	defer it.Close()
	for it.Next() {
	}
	if err := it.Err(); err != nil {
		if to := src.opts.ToToken; to != nil && *to < it.NextToken() {
			// Damage in the newest file after the requested range does not stop an export that
			// ends before it: what it needs was read intact.
			return first, it.NextToken() - 1, nil
		}
		return 0, 0, err
	}
	if c := it.TailCut(); c != nil {
		src.cut = append(src.cut, c)
		src.warn("%s: the events from token %d on are not in this copy; the archive ends before them", c, c.Token)
	}
	return first, it.NextToken() - 1, nil
}

func (src *SegmentSource) TokenAt(context.Context, time.Time) (int64, error) {
	return 0, fmt.Errorf("segment files have no time index: select by token")
}

// Transactions: each block of an events file is one transaction (or a 32,767-event part of one, which
// nothing tells apart).
func (src *SegmentSource) Transactions() bool { return true }

// Events emits the events of [from, to] in token order, each block's last ending a transaction.
func (src *SegmentSource) Events(ctx context.Context, from, to int64, emit func(Event) error) error {
	it := src.s.Events(ctx, from)
	defer it.Close()
	for it.Next() {
		token := it.Token()
		if token > to {
			return nil
		}
		_, index, count := it.Block()
		if err := emit(Event{Token: token, Raw: it.Event(), TxEnd: index == count-1}); err != nil {
			return err
		}
		if token == to {
			return nil // done: reading on could only find damage after the range
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if it.NextToken() <= to {
		return fmt.Errorf("%w: the segment files end at token %d, before the planned last token %d (did they change since the export started?)", ErrRange, it.NextToken()-1, to)
	}
	return nil
}

// Snapshots writes the snapshot store in store order with store positions: every snapshot, also those of
// aggregates whose events the selection left out, which only an offline export can reach.
func (src *SegmentSource) Snapshots(ctx context.Context, req SnapshotRequest, out SnapshotWriter) error {
	skip := req.Skip
	if len(src.s.SnapshotFiles()) == 0 {
		return nil
	}
	var latest map[string]int64
	if req.Latest {
		var err error
		if latest, err = src.latestPositions(ctx); err != nil {
			return err
		}
	}
	it := src.s.Snapshots(ctx)
	defer it.Close()
	var rec archive.Record
	var written int64
	for it.Next() {
		rec.Token = it.Position()
		if err := codec.Decode(it.Event(), &rec); err != nil {
			return fmt.Errorf("%s: snapshot at position %d (offset %d): %w", it.File(), it.Position(), it.Offset(), err)
		}
		if latest != nil && latest[rec.AggregateID] != rec.Token {
			continue
		}
		if written++; written <= skip {
			continue
		}
		if err := out.WriteSnapshot(&rec); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if c := it.TailCut(); c != nil {
		src.warn("%s: the snapshots from position %d on are not in this copy", c, c.Token)
		return out.AddNote(manifest.Note{Kind: "tail-cut", Token: c.Token, Detail: c.String()})
	}
	return nil
}

// latestPositions finds each aggregate's newest snapshot: the last one in store order.
func (src *SegmentSource) latestPositions(ctx context.Context) (map[string]int64, error) {
	latest := map[string]int64{}
	it := src.s.Snapshots(ctx)
	defer it.Close()
	var rec archive.Record
	for it.Next() {
		if err := codec.Decode(it.Event(), &rec); err != nil {
			return nil, fmt.Errorf("%s: snapshot at position %d: %w", it.File(), it.Position(), err)
		}
		latest[rec.AggregateID] = it.Position()
	}
	return latest, it.Err()
}
