package reader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
)

// ArchiveSource reads archives: one, or an incremental chain in order, as one stream of records. Its
// events are canonical lines (Event.Line), each with where it is, for errors.
type ArchiveSource struct {
	archives []*archive.Archive
}

// NewArchiveSource returns the source of the archives, which must be a chain (archive.Chain.Check).
func NewArchiveSource(archives []*archive.Archive) *ArchiveSource {
	return &ArchiveSource{archives: archives}
}

func (s *ArchiveSource) Describe() manifest.Source { return s.archives[0].Manifest().Source }

func (s *ArchiveSource) Bounds(context.Context) (int64, int64, error) {
	return s.archives[0].Manifest().Events.Range.First, s.archives[len(s.archives)-1].Manifest().Events.Range.Last, nil
}

func (s *ArchiveSource) TokenAt(context.Context, time.Time) (int64, error) {
	return 0, errors.New("an archive has no time index: select by token")
}

// Transactions: the recorded transactions of an archive are read beside its events (archive.TxCursor),
// not through Event.TxEnd.
func (s *ArchiveSource) Transactions() bool { return false }

func (s *ArchiveSource) WantsAggregates() bool { return false }

func (s *ArchiveSource) Notes() []manifest.Note { return nil }

// Events emits the lines of the events from token from through to, across the chain, in token order.
func (s *ArchiveSource) Events(ctx context.Context, from, to int64, emit func(Event) error) error {
	errEnd := errors.New("end")
	err := s.Walk(ctx, from, func(it *archive.Iterator) error {
		if it.Token() > to {
			return errEnd
		}
		path, line := it.Path()
		return emit(Event{Token: it.Token(), Line: it.Line(), Path: path, LineNo: line})
	})
	if errors.Is(err, errEnd) {
		return nil
	}
	return err
}

// Walk calls fn with the iterator at each event from token from on, across the chain, until fn or the
// reading fails.
func (s *ArchiveSource) Walk(ctx context.Context, from int64, fn func(*archive.Iterator) error) error {
	it := archive.NewChain(s.archives...).Events(ctx, from)
	defer it.Close()
	for it.Next() {
		if err := fn(it); err != nil {
			return err
		}
	}
	return it.Err()
}

// Snapshots writes every snapshot of the chain, in order (the archives hold what their export selected).
func (s *ArchiveSource) Snapshots(ctx context.Context, req SnapshotRequest, out SnapshotWriter) error {
	var pos int64
	return s.EachSnapshot(ctx, func(_ *archive.Archive, r *archive.Record) error {
		if pos++; pos <= req.Skip {
			return nil
		}
		return out.WriteSnapshot(r)
	})
}

// EachSnapshot calls fn with every snapshot of the archives, in order, with its archive, until fn or the
// reading fails. The record is valid only during the call.
func (s *ArchiveSource) EachSnapshot(ctx context.Context, fn func(*archive.Archive, *archive.Record) error) error {
	for _, a := range s.archives {
		err := func() error {
			it := a.Snapshots(ctx)
			defer it.Close()
			for it.Next() {
				r, err := it.Record()
				if err != nil {
					return fmt.Errorf("%s: %w", a.Dir(), err)
				}
				if err := fn(a, r); err != nil {
					return err
				}
			}
			return it.Err()
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

var _ Source = (*ArchiveSource)(nil)
