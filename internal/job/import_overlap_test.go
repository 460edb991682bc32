package job_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// overlapEvents and overlapSnapshots make the source of the overlap tests: four aggregates taking turns,
// and snapshots whose events lie all over the stream, aggregate "a" with several, one of them older than
// the one before it in the archive (the server takes older snapshots).
const overlapEvents = 2000

var overlapSnapshots = []struct {
	aggregate string
	sequence  int64
}{{"a", 5}, {"b", 10}, {"a", 300}, {"a", 3}, {"c", 490}, {"b", 2}, {"d", 100}, {"a", 450}, {"d", 499}, {"c", 0}}

// overlapSource exports the source to an archive and returns it with the server.
func overlapSource(t *testing.T) (string, *axontest.Server) {
	t.Helper()
	srv := axontest.NewServer(t)
	aggs := []string{"a", "b", "c", "d"}
	events := make([][]byte, overlapEvents)
	for i := range events {
		events[i] = eventgen.Encode(&eventgen.Event{MessageID: fmt.Sprint(i), AggregateID: aggs[i%4], AggregateType: "T",
			AggregateSequence: int64(i / 4), PayloadType: "e", Timestamp: int64(i + 1)})
	}
	require.NoError(t, srv.Load("source", events))
	var snaps [][]byte
	for i, s := range overlapSnapshots {
		snaps = append(snaps, eventgen.Encode(&eventgen.Event{MessageID: fmt.Sprint("s", i), AggregateID: s.aggregate, AggregateType: "T",
			AggregateSequence: s.sequence, PayloadType: "state", Timestamp: int64(i + 1)}))
	}
	require.NoError(t, srv.LoadSnapshots("source", snaps))
	dir := filepath.Join(t.TempDir(), "archive")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: dir})
	require.NoError(t, err)
	return dir, srv
}

// commitLog records, at each committed transaction, the snapshots the target held: what was stored
// while the events were imported, and whether each had its event stored already.
type commitLog struct {
	mu      sync.Mutex
	commits int
	held    []int // snapshots held at each commit
	early   []string
}

func watchCommits(t *testing.T, srv *axontest.Server, target string) *commitLog {
	l := &commitLog{}
	srv.AfterAppend(func(ctx string) {
		if ctx != target {
			return
		}
		snaps := srv.Snapshots(target)
		highest := map[string]int64{}
		for _, ev := range srv.Events(target) {
			var r archive.Record
			if codec.Decode(ev.Raw, &r) == nil && r.AggregateType != "" {
				highest[r.AggregateID] = max(highest[r.AggregateID], r.Sequence)
			}
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.commits++
		l.held = append(l.held, len(snaps))
		for _, raw := range snaps {
			var r archive.Record
			require.NoError(t, codec.Decode(raw, &r))
			if h, ok := highest[r.AggregateID]; !ok || h < r.Sequence {
				l.early = append(l.early, fmt.Sprintf("%s@%d", r.AggregateID, r.Sequence))
			}
		}
	})
	t.Cleanup(func() { srv.AfterAppend(nil) })
	return l
}

// snapshotOrder is the aggregate@sequence of a context's snapshots in the order they were stored.
func snapshotOrder(t *testing.T, srv *axontest.Server, ctx string) []string {
	var out []string
	for _, raw := range srv.Snapshots(ctx) {
		var r archive.Record
		require.NoError(t, codec.Decode(raw, &r))
		out = append(out, fmt.Sprintf("%s@%d", r.AggregateID, r.Sequence))
	}
	return out
}

// archiveSnapshotOrder is the aggregate@sequence of an archive's snapshots in the archive's order.
func archiveSnapshotOrder(t *testing.T, dir string) []string {
	var out []string
	it := openArchive(t, dir).Snapshots(context.Background())
	defer it.Close()
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s@%d", r.AggregateID, r.Sequence))
	}
	require.NoError(t, it.Err())
	return out
}

// perAggregate keeps, of aggregate@sequence items, each aggregate's in their order.
func perAggregate(items []string) map[string][]string {
	m := map[string][]string{}
	for _, it := range items {
		agg, _, _ := strings.Cut(it, "@")
		m[agg] = append(m[agg], it)
	}
	return m
}

// noOverlapGoroutines fails if a goroutine of the import's snapshot sending outlived the import.
func noOverlapGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, fn := range []string{"job.(*overlap).run", "writer.(*snapshotSender).send"} {
		assert.NotContains(t, string(buf), fn, "a goroutine outlived the import")
	}
}

// A fresh import sends each snapshot while the events are imported, as soon as the transaction holding
// its aggregate's event at its sequence is confirmed: snapshots are stored before the last transaction
// commits, none before its event, and each aggregate's in the archive's order, the older one too.
func TestImportSnapshotsBesideEvents(t *testing.T) {
	src, srv := overlapSource(t)
	want := archiveSnapshotOrder(t, src)
	log := watchCommits(t, srv, "target")
	srv.SetDelay(time.Millisecond) // a commit takes a moment, as a real server's write does
	archives, err := job.OpenArchives([]string{src})
	require.NoError(t, err)
	res, err := job.ImportArchives(context.Background(), dial(t, srv, "target"), archives, job.ImportOptions{MaxTransactionEvents: 50, Check: true})
	srv.SetDelay(0)
	require.NoError(t, err)
	require.True(t, res.Diff.Equal(), "%v", res.Diff.Differences)
	require.Equal(t, 40, log.commits)
	assert.Positive(t, log.held[len(log.held)-1], "snapshots stored before the last transaction was committed")
	assert.Empty(t, log.early, "snapshots stored before their event")
	got := snapshotOrder(t, srv, "target")
	assert.ElementsMatch(t, want, got, "each snapshot once")
	assert.Equal(t, perAggregate(want), perAggregate(got), "each aggregate's snapshots in the archive's order")
	require.Equal(t, []string{"a@5", "a@300", "a@3", "a@450"}, perAggregate(want)["a"], "the archive has an older snapshot after a newer one")
	noOverlapGoroutines(t)
}

// The snapshots beyond the window (by count or by bytes) are sent after the events, each once, and
// after the window's.
func TestImportSnapshotWindowBounds(t *testing.T) {
	src, srv := overlapSource(t)
	want := archiveSnapshotOrder(t, src)
	size := len(srv.Snapshots("source")[0]) + 2 // as sent: with the snapshot flag
	for _, tc := range []struct {
		name      string
		snapshots int
		bytes     int64
		window    int
	}{
		{"count", 3, 64 << 20, 3},
		{"bytes", 1000, int64(size*2 + size/2), 2},
		{"none", 0, 64 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer job.SetSnapshotWindow(tc.snapshots, tc.bytes)()
			target := "target-" + tc.name
			log := watchCommits(t, srv, target)
			srv.SetDelay(time.Millisecond)
			_, err := job.Import(context.Background(), dial(t, srv, target), []string{src}, job.ImportOptions{MaxTransactionEvents: 50})
			srv.SetDelay(0)
			require.NoError(t, err)
			require.Equal(t, 40, log.commits)
			assert.LessOrEqual(t, slices.Max(log.held), tc.window, "only the window's snapshots beside the events")
			assert.Empty(t, log.early)
			got := snapshotOrder(t, srv, target)
			assert.ElementsMatch(t, want, got, "each snapshot once")
			assert.Equal(t, perAggregate(want), perAggregate(got), "each aggregate's snapshots in the archive's order")
			noOverlapGoroutines(t)
		})
	}
}

// A snapshot that fails while the events are imported stops the import, naming the snapshot; a resumed
// import stores the missing events and each snapshot once.
func TestImportSnapshotFailsBesideEvents(t *testing.T) {
	src, srv := overlapSource(t)
	conn := dial(t, srv, "target")
	srv.SetDelay(time.Millisecond)
	srv.FailNthCall(axontest.MethodAppendSnapshot, 1)
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 50})
	srv.SetDelay(0)
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "events", pe.Phase, "the events stopped too")
	// The snapshots of the first transaction go together: whichever the server saw first failed.
	m := regexp.MustCompile(`snapshot at position (\d+) \(aggregate "(\w+)", sequence (\d+)\): `).FindStringSubmatch(err.Error())
	require.NotNil(t, m, "the error names the snapshot: %v", err)
	position, _ := strconv.Atoi(m[1])
	assert.Equal(t, archiveSnapshotOrder(t, src)[position], m[2]+"@"+m[3])
	assert.Less(t, srv.EventCount("target"), overlapEvents, "the import stopped")
	assert.Equal(t, pe.TargetHead, int64(srv.EventCount("target")-1))
	noOverlapGoroutines(t)

	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Resume: true})
	require.NoError(t, err)
	assert.ElementsMatch(t, archiveSnapshotOrder(t, src), snapshotOrder(t, srv, "target"), "each snapshot once")
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
}

// An import whose events fail, or that is interrupted, after snapshots were stored beside them stops
// the snapshots with it; a resumed import stores the rest, each snapshot once.
func TestImportEventsFailBesideSnapshots(t *testing.T) {
	src, srv := overlapSource(t)
	for _, tc := range []string{"transaction", "interrupted"} {
		t.Run(tc, func(t *testing.T) {
			target := "target-" + tc
			conn := dial(t, srv, target)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			commits := 0
			srv.AfterAppend(func(c string) {
				if c != target {
					return
				}
				if commits++; commits == 30 && tc == "interrupted" {
					cancel()
				}
			})
			defer srv.AfterAppend(nil)
			if tc == "transaction" {
				srv.FailNthCall(axontest.MethodAppendEvent, 31)
			}
			srv.SetDelay(time.Millisecond)
			_, err := job.Import(ctx, conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 50})
			srv.SetDelay(0)
			var pe *job.ProgressError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "events", pe.Phase)
			if tc == "interrupted" {
				assert.True(t, errors.Is(err, context.Canceled), "%v", err)
			}
			assert.Less(t, srv.EventCount(target), overlapEvents)
			assert.Positive(t, srv.SnapshotCount(target), "snapshots stored beside the events")
			noOverlapGoroutines(t)

			_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Resume: true})
			require.NoError(t, err)
			assert.ElementsMatch(t, archiveSnapshotOrder(t, src), snapshotOrder(t, srv, target), "each snapshot once")
			d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
			require.NoError(t, err)
			require.True(t, d.Equal(), "%v", d.Differences)
		})
	}
}
