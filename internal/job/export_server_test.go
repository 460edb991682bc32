package job_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
)

// edgeServer starts a double holding every edge value (eventgen.EdgeCases and EdgeSnapshots) followed by n
// generated events and their snapshots.
func edgeServer(t *testing.T, n int, opts ...axontest.Option) *axontest.Server {
	t.Helper()
	srv := axontest.NewServer(t, opts...)
	require.NoError(t, srv.Load(ctxName, eventgen.EdgeCases()))
	gen := eventgen.New(11, eventgen.Options{Aggregates: 50})
	require.NoError(t, srv.Load(ctxName, gen.Generate(n)))
	require.NoError(t, srv.LoadSnapshots(ctxName, eventgen.EdgeSnapshots()))
	require.NoError(t, srv.LoadSnapshots(ctxName, gen.Snapshots()))
	return srv
}

// servedSnapshots returns what the server serves for the snapshots of an archive's exported aggregates,
// in the order SPEC.md fixes for a live export: aggregates in the order of their first exported domain
// event, each aggregate's snapshots oldest stored first. latest keeps only the newest of each.
func servedSnapshots(t *testing.T, conn *axonclient.Conn, dir string, latest bool) [][]byte {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	var order []string
	it := a.Events(context.Background(), 0)
	defer it.Close()
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		if r.AggregateType != "" && !slices.Contains(order, r.AggregateID) {
			order = append(order, r.AggregateID)
		}
	}
	require.NoError(t, it.Err())
	var out [][]byte
	for _, id := range order {
		raws, err := conn.ListAggregateSnapshots(context.Background(), id, 0, axonclient.MaxSequence, 0)
		require.NoError(t, err)
		if latest && len(raws) > 1 {
			raws = raws[:1]
		}
		for k := len(raws) - 1; k >= 0; k-- {
			out = append(out, raws[k])
		}
	}
	return out
}

// archivedSnapshots rebuilds the protobuf bytes of every snapshot record of an archive, in position order.
func archivedSnapshots(t *testing.T, dir string) [][]byte {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	it := a.Snapshots(context.Background())
	defer it.Close()
	var out [][]byte
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.Equal(t, int64(len(out)), r.Token, "snapshot positions are 0, 1, 2, ...")
		out = append(out, codec.Encode(nil, r))
	}
	require.NoError(t, it.Err())
	return out
}

// A store with every edge value exports record by record equal to what the double holds: every event's
// bytes rebuilt from its record are the stored bytes, every snapshot's are the bytes the server serves.
func TestLiveExportEdgeCases(t *testing.T) {
	srv := edgeServer(t, 1500)
	conn := dial(t, srv, ctxName)
	dir := filepath.Join(t.TempDir(), "a")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, ChunkRecords: 300})
	require.NoError(t, err)
	assertArchiveEqualsServer(t, dir, srv, ctxName)
	want := servedSnapshots(t, conn, dir, false)
	require.Len(t, want, srv.SnapshotCount(ctxName), "every snapshot belongs to an exported aggregate")
	assert.Equal(t, want, archivedSnapshots(t, dir))
}

// --snapshots all|latest|none: which snapshots, in a stable order (aggregates in order of their first
// exported event, oldest first within one), read with bounded concurrency.
func TestLiveExportSnapshotModes(t *testing.T) {
	srv := edgeServer(t, 400)
	conn := dial(t, srv, ctxName)
	for _, mode := range []string{job.SnapshotsAll, job.SnapshotsLatest, job.SnapshotsNone} {
		t.Run(mode, func(t *testing.T) {
			srv.SetDelay(time.Millisecond) // slow calls overlap, showing the bound
			defer srv.SetDelay(0)
			dir := filepath.Join(t.TempDir(), "a")
			res, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Snapshots: mode})
			require.NoError(t, err)
			a, err := archive.Open(dir)
			require.NoError(t, err)
			assert.Equal(t, mode, a.Manifest().Snapshots.Mode)
			got := archivedSnapshots(t, dir)
			switch mode {
			case job.SnapshotsNone:
				assert.Empty(t, got)
				assert.Zero(t, res.Snapshots)
			default:
				assert.Equal(t, servedSnapshots(t, conn, dir, mode == job.SnapshotsLatest), got)
			}
			if mode == job.SnapshotsLatest {
				assert.Less(t, len(got), srv.SnapshotCount(ctxName))
			}
		})
	}
	assert.LessOrEqual(t, srv.MaxConcurrentCalls(axontest.MethodListAggregateSnapshots), reader.SnapshotReaders, "bounded concurrency")
	assert.Greater(t, srv.MaxConcurrentCalls(axontest.MethodListAggregateSnapshots), 1, "the snapshot reads overlap")

	// The same export twice gives the same snapshot lines, whatever the timing of the reads.
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: a})
	require.NoError(t, err)
	srv.SetDelay(300 * time.Microsecond)
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: b})
	srv.SetDelay(0)
	require.NoError(t, err)
	assert.Equal(t, lines(t, a, true), lines(t, b, true))

	// Snapshots of aggregates outside the exported events cannot be reached over gRPC: the manifest says so.
	m, err := archive.Open(a)
	require.NoError(t, err)
	require.NotEmpty(t, m.Manifest().Notes)
	assert.Equal(t, "snapshot-scope", m.Manifest().Notes[0].Kind)
}

// --from-time and --to-time select through the server's token index (GetTokenAt): events from the token
// the server names for from-time, up to the one before the token it names for to-time.
func TestLiveExportTimeRange(t *testing.T) {
	srv, _ := loaded(t, 3000)
	conn := dial(t, srv, ctxName)
	ctx := context.Background()
	stored := srv.Events(ctxName)
	var first, last archive.Record
	require.NoError(t, codec.Decode(stored[1000].Raw, &first))
	require.NoError(t, codec.Decode(stored[2000].Raw, &last))
	from, to := time.UnixMilli(first.Timestamp), time.UnixMilli(last.Timestamp)
	wantFirst, err := conn.TokenAt(ctx, from.UnixMilli())
	require.NoError(t, err)
	wantEnd, err := conn.TokenAt(ctx, to.UnixMilli())
	require.NoError(t, err)
	require.Less(t, wantFirst, wantEnd)

	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportServer(ctx, conn, job.ExportOptions{Dir: dir, FromTime: &from, ToTime: &to, Snapshots: job.SnapshotsNone})
	require.NoError(t, err)
	assert.Equal(t, manifest.Range{First: wantFirst, Last: wantEnd - 1}, res.Range)
	assert.Equal(t, wantEnd-wantFirst, res.Events)
	a, err := archive.Open(dir)
	require.NoError(t, err)
	it := a.Events(ctx, 0)
	defer it.Close()
	next := wantFirst
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.Equal(t, next, r.Token)
		require.Equal(t, stored[r.Token].Raw, codec.Encode(nil, r))
		next++
	}
	require.NoError(t, it.Err())
	assert.Equal(t, wantEnd, next)
}

// Filters: exactly the server's events that match, each at its token with its bytes; the filter is
// recorded and the tokens left out are counted as filtered.
func TestLiveExportFilters(t *testing.T) {
	srv, _ := loaded(t, 3000)
	conn := dial(t, srv, ctxName)
	stored := srv.Events(ctxName)
	types := map[string]int{}
	aggTypes := map[string]int{}
	for _, e := range stored {
		var r archive.Record
		require.NoError(t, codec.Decode(e.Raw, &r))
		if r.Payload != nil {
			types[r.Payload.Type]++
		}
		aggTypes[r.AggregateType]++
	}
	var someTypes []string
	for typ := range types {
		if len(someTypes) < 3 {
			someTypes = append(someTypes, typ)
		}
	}
	cases := []struct {
		name   string
		filter manifest.Filter
		keep   func(r *archive.Record) bool
	}{
		{"include-type", manifest.Filter{IncludeTypes: someTypes}, func(r *archive.Record) bool {
			return r.Payload != nil && slices.Contains(someTypes, r.Payload.Type)
		}},
		{"exclude-type", manifest.Filter{ExcludeTypes: someTypes}, func(r *archive.Record) bool {
			return r.Payload == nil || !slices.Contains(someTypes, r.Payload.Type)
		}},
		{"aggregate-type", manifest.Filter{AggregateTypes: []string{"Order", ""}}, func(r *archive.Record) bool {
			return r.AggregateType == "Order" || r.AggregateType == ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			filter := tc.filter
			res, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Filter: &filter})
			require.NoError(t, err)
			a, err := archive.Open(dir)
			require.NoError(t, err)
			m := a.Manifest()
			require.NotNil(t, m.Filter)
			assert.Equal(t, tc.filter, *m.Filter)
			it := a.Events(context.Background(), 0)
			defer it.Close()
			var got []int64
			for it.Next() {
				r, err := it.Record()
				require.NoError(t, err)
				require.Equal(t, stored[r.Token].Raw, codec.Encode(nil, r), "token %d", r.Token)
				got = append(got, r.Token)
			}
			require.NoError(t, it.Err())
			var want []int64
			for _, e := range stored {
				var r archive.Record
				require.NoError(t, codec.Decode(e.Raw, &r))
				if tc.keep(&r) {
					want = append(want, e.Token)
				}
			}
			assert.Equal(t, want, got)
			assert.Equal(t, int64(len(want)), res.Events)
			assert.Equal(t, int64(len(stored)-len(want)), m.Events.Filtered)
			assert.Equal(t, manifest.Range{First: 0, Last: int64(len(stored) - 1)}, res.Range, "the range is the captured one, not the kept tokens'")
		})
	}
}

// Permits are topped up as events are consumed: never more outstanding than the window, and never so few
// that the server's permit timeout fires (here shortened to 300 ms, against a window of 100).
func TestLiveExportPermitsToppedUp(t *testing.T) {
	srv, _ := loaded(t, 3000, axontest.WithPermitTimeout(300*time.Millisecond))
	var log logger
	dir := filepath.Join(t.TempDir(), "a")
	src := reader.NewServer(dial(t, srv, ctxName), reader.ServerOptions{Window: 100, Warn: log.warn, NoSnapshots: true})
	_, err := job.Export(context.Background(), src, job.ExportOptions{Dir: dir, Warn: log.warn, Snapshots: job.SnapshotsNone})
	require.NoError(t, err)
	assert.Empty(t, log.msgs, "the stream was never lost")
	assert.LessOrEqual(t, srv.MaxOutstandingPermits(), int64(100))
	assert.Equal(t, 1, srv.Calls(axontest.MethodListEvents), "one stream, kept alive by top-ups")
	assertArchiveEqualsServer(t, dir, srv, ctxName)
}

// A chain of three incremental archives verifies in order; leaving one out (a gap) or repeating one (an
// overlap) does not.
func TestIncrementalChainOfThree(t *testing.T) {
	srv, gen := loaded(t, 1000)
	conn := dial(t, srv, ctxName)
	dirs := make([]string, 3)
	for i := range dirs {
		if i > 0 {
			require.NoError(t, conn.AppendEvents(context.Background(), gen.Generate(200)))
		}
		dirs[i] = filepath.Join(t.TempDir(), string(rune('a'+i)))
		opts := job.ExportOptions{Dir: dirs[i], Snapshots: job.SnapshotsNone}
		if i > 0 {
			opts.Since = dirs[i-1]
		}
		_, err := job.ExportServer(context.Background(), conn, opts)
		require.NoError(t, err)
	}
	open := func(names ...int) []*archive.Archive {
		var out []*archive.Archive
		for _, i := range names {
			a, err := archive.Open(dirs[i])
			require.NoError(t, err)
			out = append(out, a)
		}
		return out
	}
	require.NoError(t, archive.NewChain(open(0, 1, 2)...).Check())
	assert.Equal(t, int64(1200), open(2)[0].Manifest().Events.Range.First)
	require.ErrorIs(t, archive.NewChain(open(0, 2)...).Check(), archive.ErrChain, "gap")
	require.ErrorIs(t, archive.NewChain(open(0, 1, 1)...).Check(), archive.ErrChain, "overlap")
	require.ErrorIs(t, archive.NewChain(open(1, 0, 2)...).Check(), archive.ErrChain, "order")

	// The events of the chain are the server's, each once.
	var n int
	for _, a := range open(0, 1, 2) {
		it := a.Events(context.Background(), 0)
		for it.Next() {
			r, err := it.Record()
			require.NoError(t, err)
			require.Equal(t, int64(n), r.Token)
			require.Equal(t, srv.Events(ctxName)[n].Raw, codec.Encode(nil, r))
			n++
		}
		require.NoError(t, it.Err())
		it.Close()
	}
	assert.Equal(t, srv.EventCount(ctxName), n)
}

// After retention removed old segments the export starts at the server's first token.
func TestLiveExportAfterRetention(t *testing.T) {
	srv, _ := loaded(t, 1000)
	require.NoError(t, srv.RemoveBefore(ctxName, 300))
	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportServer(context.Background(), dial(t, srv, ctxName), job.ExportOptions{Dir: dir, Snapshots: job.SnapshotsNone})
	require.NoError(t, err)
	assert.Equal(t, manifest.Range{First: 300, Last: 999}, res.Range)
	assertArchiveEqualsServer(t, dir, srv, ctxName)
}

// A stream lost again and again without progress is retried a bounded number of times, each reported;
// then the export stops, resumable, and --resume completes it as if nothing had happened.
func TestLiveExportRetriesBounded(t *testing.T) {
	srv, _ := loaded(t, 2000)
	conn := dial(t, srv, ctxName)
	clean := filepath.Join(t.TempDir(), "clean")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: clean, ChunkRecords: 300})
	require.NoError(t, err)

	srv.DropListEventsAfter(700)
	srv.DropListEventsAfter(0) // no progress: retry 2
	srv.DropListEventsAfter(0) // no progress again: over the bound
	var log logger
	dir := filepath.Join(t.TempDir(), "a")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, ChunkRecords: 300, MaxRetries: 2, Warn: log.warn})
	var ie *job.InterruptedError
	require.ErrorAs(t, err, &ie)
	require.ErrorIs(t, err, axonclient.ErrUnavailable)
	assert.Contains(t, err.Error(), "event stream lost 3 times at token 700")
	require.Len(t, log.msgs, 2, "%v", log.msgs)
	assert.Contains(t, log.msgs[0], "event stream lost at token 700")
	assert.Contains(t, log.msgs[0], "(attempt 1 of 2)")
	assert.Contains(t, log.msgs[1], "(attempt 2 of 2)")

	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, ChunkRecords: 300, Resume: true})
	require.NoError(t, err)
	assert.Equal(t, lines(t, clean, false), lines(t, dir, false))
	assert.Equal(t, lines(t, clean, true), lines(t, dir, true))
}

// The snapshot phase of a live export holds the snapshots of a bounded number of aggregates: while the
// archive writer is held up at one, reader.SnapshotReaders more are read ahead, and no more are asked for.
func TestServerSnapshotsHeldBounded(t *testing.T) {
	srv := edgeServer(t, 0)
	ids := []string{"edge-order-1"}
	for i := range 4 * reader.SnapshotReaders {
		ids = append(ids, fmt.Sprintf("no-snapshots-%d", i))
	}
	src := reader.NewServer(dial(t, srv, ctxName), reader.ServerOptions{})
	w := &heldWriter{first: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- src.Snapshots(context.Background(), reader.SnapshotRequest{Aggregates: ids}, w) }()
	<-w.first
	ahead := 1 + reader.SnapshotReaders
	require.Eventually(t, func() bool { return srv.Calls(axontest.MethodListAggregateSnapshots) == ahead },
		10*time.Second, time.Millisecond)
	time.Sleep(200 * time.Millisecond) // time to ask for more, if it would
	assert.Equal(t, ahead, srv.Calls(axontest.MethodListAggregateSnapshots))
	close(w.release)
	require.NoError(t, <-done)
	assert.Equal(t, len(ids), srv.Calls(axontest.MethodListAggregateSnapshots))
	assert.Equal(t, 4, w.n, "the aggregate's snapshots")
}

// heldWriter takes snapshots, holding the first until release is closed.
type heldWriter struct {
	first, release chan struct{}
	n              int
}

func (w *heldWriter) WriteSnapshot(*archive.Record) error {
	if w.n == 0 {
		close(w.first)
		<-w.release
	}
	w.n++
	return nil
}

func (w *heldWriter) AddNote(manifest.Note) error { return nil }
