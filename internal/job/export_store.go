package job

import (
	"context"
	"errors"
	"fmt"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
)

// An export into an object store: the checks before anything is written, and the retention put on the
// archive once it is complete.

// ErrRetentionLocal is returned for an export that asks for retention into a directory.
var ErrRetentionLocal = errors.New("retention (Object Lock) needs an archive in an object store (s3://bucket/prefix)")

// checkStore refuses, before anything is written, retention that the target cannot keep, and warns of a
// bucket default retention (which would retain every version of the journal as the export rewrites it).
func checkStore(ctx context.Context, store *s3store.Store, opts *ExportOptions) error {
	if store == nil {
		if opts.Retention != nil {
			return ErrRetentionLocal
		}
		return nil
	}
	if opts.Retention != nil {
		if err := store.CheckRetention(ctx, *opts.Retention); err != nil {
			return err
		}
	}
	lc, err := store.ObjectLock(ctx)
	if err != nil {
		if opts.Retention != nil {
			return err
		}
		return nil // a bucket without Object Lock may not let us ask
	}
	if lc.DefaultMode != "" {
		opts.warn("bucket of %s has a default retention (%s, %d days, %d years): every object version the export writes is retained, each journal version included",
			store, lc.DefaultMode, lc.DefaultDays, lc.DefaultYears)
	}
	return nil
}

// finishRetention puts opts.Retention on every object of the complete archive in store (again, after an
// interrupted run: Retain is idempotent) and returns the export's result.
func finishRetention(ctx context.Context, store *s3store.Store, opts ExportOptions) (*ExportResult, error) {
	a, err := archive.OpenIn(store)
	if err != nil {
		return nil, fmt.Errorf("reopen finished archive: %w", err)
	}
	names, err := location.Names(store)
	if err != nil {
		return nil, err
	}
	if err := store.Retain(ctx, names, *opts.Retention); err != nil {
		return nil, fmt.Errorf("the archive is complete, but not all of it is retained: %w (run the export again with --resume to finish)", err)
	}
	m := a.Manifest()
	return &ExportResult{Events: m.Events.Count, Snapshots: m.Snapshots.Count, Range: m.Events.Range, Fingerprint: m.Fingerprint, Dir: opts.Dir, Retained: len(names)}, nil
}
