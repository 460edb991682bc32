package job_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// The proof compares snapshot by snapshot: an altered snapshot and one the archive does not have are
// found; an archive of the latest snapshots only equals a server that holds older ones too.
func TestCompareSnapshots(t *testing.T) {
	src, srv := generated(t, 2000, job.ExportOptions{})
	conn := dial(t, srv, "target")
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.NoError(t, err)
	snaps := srv.Snapshots("target")
	require.Greater(t, len(snaps), 3)

	var r archive.Record
	require.NoError(t, codec.Decode(snaps[2], &r))
	r.Timestamp++
	require.NoError(t, srv.ReplaceSnapshot("target", 2, codec.Encode(nil, &r)))
	r.Timestamp--
	r.MessageID = "extra"
	require.NoError(t, srv.LoadSnapshots("target", [][]byte{codec.Encode(nil, &r)}))
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.Len(t, d.Differences, 2, "%v", d.Differences)
	assert.Contains(t, d.Differences[0], fmt.Sprintf("(aggregate %q): timestamp differs", r.AggregateID))
	assert.Equal(t, fmt.Sprintf("aggregate %q: a snapshot of sequence %d is in the target, not in the archive", r.AggregateID, r.Sequence), d.Differences[1])
	assert.NotEqual(t, d.ArchiveFingerprint, d.TargetFingerprint)

	latest := filepath.Join(t.TempDir(), "latest")
	_, err = job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: latest, Snapshots: job.SnapshotsLatest})
	require.NoError(t, err)
	d, err = job.Compare(context.Background(), dial(t, srv, "source"), []string{latest}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)
}

// A check that follows the import (CompareOptions.AfterImport, started from Options.Sending) compares
// every event while the import sends, then the head and the snapshots once the import is done: the same
// verdict as a check afterwards, differences included; cancelled, it stops at once.
func TestCompareFollowingImport(t *testing.T) {
	src, srv := generated(t, 3000, job.ExportOptions{})
	ctx := context.Background()
	follow := func(t *testing.T, target string, opts job.ImportOptions, beforeDone func()) (*job.Diff, error) {
		conn := dial(t, srv, target)
		archives, err := job.OpenArchives([]string{src})
		require.NoError(t, err)
		imported := make(chan struct{})
		type result struct {
			d   *job.Diff
			err error
		}
		check := make(chan result, 1)
		opts.MaxTransactionEvents = 250 // many transactions, so that the check has something to follow
		opts.Progress = new(job.ImportProgress)
		opts.Sending = func(*job.Plan) {
			go func() {
				d, err := job.CompareArchives(ctx, conn, archives, job.CompareOptions{AfterImport: imported, Committed: opts.Progress.Token.Load})
				check <- result{d, err}
			}()
		}
		_, err = job.ImportArchives(ctx, conn, archives, opts)
		require.NoError(t, err)
		if beforeDone != nil {
			beforeDone()
		}
		close(imported)
		r := <-check
		return r.d, r.err
	}

	t.Run("equal", func(t *testing.T) {
		d, err := follow(t, "equal", job.ImportOptions{}, nil)
		require.NoError(t, err)
		require.True(t, d.Equal(), "%v", d.Differences)
		assert.Equal(t, int64(3000), d.Events)
		assert.Equal(t, int64(srv.SnapshotCount("source")), d.Snapshots)
		assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)
		assert.Equal(t, int64(2999), d.TargetHead)
	})
	t.Run("an event appended after the import", func(t *testing.T) {
		d, err := follow(t, "extra", job.ImportOptions{}, func() {
			require.NoError(t, srv.Load("extra", eventgen.New(5, eventgen.Options{NonDomainPercent: 100}).Generate(1)))
		})
		require.NoError(t, err)
		require.False(t, d.Equal())
		assert.Contains(t, d.Differences, "the target has 1 events after the archive's last token 2999")
	})
	t.Run("renumbered", func(t *testing.T) {
		require.NoError(t, srv.Load("renumbered", eventgen.New(99, eventgen.Options{NonDomainPercent: 100}).Generate(10)))
		conn := dial(t, srv, "renumbered")
		archives, err := job.OpenArchives([]string{src})
		require.NoError(t, err)
		imported := make(chan struct{})
		var d *job.Diff
		var cerr error
		done := make(chan struct{})
		progress := new(job.ImportProgress)
		opts := job.ImportOptions{Renumber: true, TokenMap: filepath.Join(t.TempDir(), "map"), Progress: progress, Sending: func(plan *job.Plan) {
			first := plan.TargetFirst
			go func() {
				defer close(done)
				d, cerr = job.CompareArchives(ctx, conn, archives, job.CompareOptions{AfterImport: imported, TargetFirst: &first, Committed: progress.Token.Load})
			}()
		}}
		_, err = job.ImportArchives(ctx, conn, archives, opts)
		require.NoError(t, err)
		close(imported)
		<-done
		require.NoError(t, cerr)
		require.True(t, d.Equal(), "%v", d.Differences)
		assert.Equal(t, int64(3000), d.Events)
	})
	t.Run("reads only what the import saw committed", func(t *testing.T) {
		var raws [][]byte
		for _, e := range srv.Events("source") {
			raws = append(raws, e.Raw)
		}
		require.NoError(t, srv.Load("committed", raws))
		require.NoError(t, srv.LoadSnapshots("committed", srv.Snapshots("source")))
		conn := dial(t, srv, "committed")
		archives, err := job.OpenArchives([]string{src})
		require.NoError(t, err)
		var committed atomic.Int64
		committed.Store(999)
		imported := make(chan struct{})
		progress := new(job.ImportProgress)
		errc := make(chan error, 1)
		var d *job.Diff
		go func() {
			var err error
			d, err = job.CompareArchives(ctx, conn, archives, job.CompareOptions{AfterImport: imported, Committed: committed.Load, Progress: progress})
			errc <- err
		}()
		require.Eventually(t, func() bool { return progress.Events.Load() == 1000 }, 10*time.Second, time.Millisecond)
		time.Sleep(100 * time.Millisecond) // the target holds 2,000 events more: none is compared yet
		assert.Equal(t, int64(1000), progress.Events.Load())
		committed.Store(2999)
		close(imported)
		require.NoError(t, <-errc)
		require.True(t, d.Equal(), "%v", d.Differences)
		assert.Equal(t, int64(3000), d.Events)
	})
	t.Run("cancelled while following", func(t *testing.T) {
		conn := dial(t, srv, "never")
		archives, err := job.OpenArchives([]string{src})
		require.NoError(t, err)
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := job.CompareArchives(cctx, conn, archives, job.CompareOptions{AfterImport: make(chan struct{})})
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond) // waiting at the empty target's head
		cancel()
		select {
		case err := <-errc:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(10 * time.Second):
			t.Fatal("the check did not stop")
		}
	})
}

// The comparison reads the target's snapshots ahead, several aggregates at a time (the phase is bound by
// round trips), and still compares them in the archive's order.
func TestCompareSnapshotsReadAhead(t *testing.T) {
	ctx := context.Background()
	src, _ := generated(t, 800, job.ExportOptions{}) // few events: the delay below holds up each
	srv := axontest.NewServer(t)
	conn := dial(t, srv, "target")
	_, err := job.Import(ctx, conn, []string{src}, job.ImportOptions{})
	require.NoError(t, err)
	require.Zero(t, srv.MaxConcurrentCalls(axontest.MethodListAggregateSnapshots), "an import does not read snapshots")
	srv.SetDelay(time.Millisecond) // each answer waits, so calls in flight together overlap
	d, err := job.Compare(ctx, conn, []string{src}, job.CompareOptions{})
	srv.SetDelay(0)
	require.NoError(t, err)
	require.Greater(t, d.Snapshots, int64(5))
	require.True(t, d.Equal(), "%v", d.Differences)
	calls := srv.MaxConcurrentCalls(axontest.MethodListAggregateSnapshots)
	assert.Greater(t, calls, 1, "aggregates read together")
	assert.LessOrEqual(t, calls, 32)
}
