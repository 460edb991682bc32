package export

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/reader"
)

// Segments exports from a copy of Axon Server's segment files, without a server.
func Segments(ctx context.Context, segOpts reader.SegmentsOptions, opts Options) (*Result, error) {
	s, err := reader.OpenSegments(segOpts)
	if err != nil {
		return nil, err
	}
	for _, n := range s.Notes() {
		opts.warn("%s", n)
	}
	return run(ctx, &segmentSource{s: s, opts: &opts}, opts)
}

type segmentSource struct {
	s    *reader.Segments
	opts *Options
	cut  []*reader.TailCut
}

func (src *segmentSource) describe() archive.Source {
	dir := src.s.EventsDir()
	if dir == "" {
		dir = src.s.SnapshotsDir()
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return archive.Source{Kind: "segments", Path: dir, Context: cmp.Or(src.opts.Context, filepath.Base(dir))}
}

func (src *segmentSource) wantsAggregates() bool { return false }

func (src *segmentSource) notes() []archive.Note {
	var notes []archive.Note
	for _, c := range src.cut {
		notes = append(notes, archive.Note{Kind: "tail-cut", Token: c.Token, Detail: c.String()})
	}
	return notes
}

// bounds reads the newest events file to its end to learn the last token: a copy of the active segment
// may end in a cut block, and the range recorded in the manifest must be what the files really hold.
func (src *segmentSource) bounds(ctx context.Context) (int64, int64, error) {
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
		src.opts.warn("%s: the events from token %d on are not in this copy; the archive ends before them", c, c.Token)
	}
	return first, it.NextToken() - 1, nil
}

func (src *segmentSource) tokenAt(context.Context, time.Time) (int64, error) {
	return 0, fmt.Errorf("segment files have no time index: select by token")
}

// transactions: each block of an events file is one transaction (or a 32,767-event part of one, which
// nothing tells apart).
func (src *segmentSource) transactions() bool { return true }

func (src *segmentSource) events(ctx context.Context, from, to int64, emit func(int64, []byte, bool) error) error {
	it := src.s.Events(ctx, from)
	defer it.Close()
	for it.Next() {
		token := it.Token()
		if token > to {
			return nil
		}
		_, index, count := it.Block()
		if err := emit(token, it.Event(), index == count-1); err != nil {
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

// snapshots writes the snapshot store in store order with store positions: every snapshot, also those of
// aggregates whose events the selection left out, which only an offline export can reach.
func (src *segmentSource) snapshots(ctx context.Context, j *job, skip int64) error {
	if len(src.s.SnapshotFiles()) == 0 {
		return nil
	}
	var latest map[string]int64
	if j.opts.Snapshots == SnapshotsLatest {
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
		if err := j.w.WriteSnapshot(&rec); err != nil {
			return err
		}
		j.progress.Snapshots.Add(1)
	}
	if err := it.Err(); err != nil {
		return err
	}
	if c := it.TailCut(); c != nil {
		j.opts.warn("%s: the snapshots from position %d on are not in this copy", c, c.Token)
		return j.w.AddNote(archive.Note{Kind: "tail-cut", Token: c.Token, Detail: c.String()})
	}
	return nil
}

// latestPositions finds each aggregate's newest snapshot: the last one in store order.
func (src *segmentSource) latestPositions(ctx context.Context) (map[string]int64, error) {
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
