package job_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/realserver"
)

func TestMain(m *testing.M) { os.Exit(realserver.Main(m)) }

// smallSegments spreads a few thousand events over several files.
const smallSegments = 64 << 10

// generatedArchive writes an archive that records transactions of 1 to 4 events: 3,000 generated events,
// then every edge case, then the generated and edge snapshots. It returns the archive and, per aggregate,
// its last sequence.
func generatedArchive(t *testing.T) (string, map[string]int64) {
	t.Helper()
	g := eventgen.New(17, eventgen.Options{Aggregates: 50})
	events := append(g.Generate(3000), eventgen.EdgeCases()...)
	snapshots := append(g.Snapshots(), eventgen.EdgeSnapshots()...)
	dir := filepath.Join(t.TempDir(), "generated")
	w, err := archive.Create(dir, archive.Options{
		Source:       manifest.Source{Kind: manifest.SourceSegments, Path: "/generated", Context: "default"},
		Range:        manifest.Range{First: 0, Last: int64(len(events)) - 1},
		Transactions: true, NoSync: true,
	})
	require.NoError(t, err)
	last := map[string]int64{}
	inTx, k := 0, 0
	for i, raw := range events {
		var r archive.Record
		require.NoError(t, codec.Decode(raw, &r))
		r.Token = int64(i)
		require.NoError(t, w.WriteEvent(&r))
		if r.AggregateType != "" {
			last[r.AggregateID] = r.Sequence
		}
		if inTx++; inTx == 1+k%4 || i == len(events)-1 {
			require.NoError(t, w.EndTransaction())
			inTx, k = 0, k+1
		}
	}
	require.NoError(t, w.FinishEvents())
	for i, raw := range snapshots {
		var r archive.Record
		require.NoError(t, codec.Decode(raw, &r))
		r.Token = int64(i)
		require.NoError(t, w.WriteSnapshot(&r))
	}
	require.NoError(t, w.Close())
	return dir, last
}

func dialReal(t *testing.T, s *realserver.Server) *axonclient.Conn {
	t.Helper()
	conn, err := axonclient.Dial(context.Background(), axonclient.Config{Address: s.Addr(), Context: "default"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func streamLines(t *testing.T, dir, stream string) []string {
	a := openArchive(t, dir)
	it := a.Events(context.Background(), 0)
	if stream == manifest.StreamSnapshots {
		it = a.Snapshots(context.Background())
	}
	defer it.Close()
	var out []string
	for it.Next() {
		out = append(out, string(it.Line()))
	}
	require.NoError(t, it.Err())
	return out
}

// withoutPositions cuts the position off snapshot lines.
func withoutPositions(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[strings.IndexByte(l, ','):]
	}
	return out
}

// txEndsOf lists the tokens that end a recorded transaction of the archive in dir.
func txEndsOf(t *testing.T, dir string) []int64 {
	t.Helper()
	return txEndsIn(t, openArchive(t, dir))
}

// txEndsIn lists the tokens that end a recorded transaction of a, by its cursor.
func txEndsIn(t *testing.T, a *archive.Archive) []int64 {
	t.Helper()
	c := a.TxCursor(context.Background())
	require.NotNil(t, c, "%s records no transactions", a.Dir())
	defer c.Close()
	var ends []int64
	it := a.Events(context.Background(), 0)
	defer it.Close()
	for it.Next() {
		end, err := c.Ends(it.Token())
		require.NoError(t, err)
		if end {
			ends = append(ends, it.Token())
		}
	}
	require.NoError(t, it.Err())
	return ends
}

// TestSegmentImportRealServer proves the segment files with the real Axon Server.
func TestSegmentImportRealServer(t *testing.T) {
	realserver.Require(t)
	ctx := context.Background()
	arch, lastSeq := generatedArchive(t)
	m := openArchive(t, arch).Manifest()

	// Files the server wrote itself (the gRPC import keeps the archive's transactions), exported
	// offline and written again: the same grouping, and the same bytes.
	t.Run("server-written files", func(t *testing.T) {
		s := realserver.Fresh(t, "axoniq.axonserver.event.segment-size=65536", "axoniq.axonserver.snapshot.segment-size=65536")
		_, err := job.Import(ctx, dialReal(t, s), []string{arch}, job.ImportOptions{})
		require.NoError(t, err)
		offline := offlineExport(t, s.ContextDir("default"))
		om := openArchive(t, offline).Manifest()
		assert.Equal(t, m.Events.SHA256, om.Events.SHA256, "the server stores the events as sent")
		// The import appends snapshots of different aggregates concurrently, so the server's store order
		// is its own: the same snapshots, in another order.
		assert.ElementsMatch(t, withoutPositions(streamLines(t, arch, manifest.StreamSnapshots)), withoutPositions(streamLines(t, offline, manifest.StreamSnapshots)))
		assert.Equal(t, txEndsOf(t, arch), txEndsOf(t, offline), "one block per transaction sent")
		again := filepath.Join(t.TempDir(), "default")
		_, err = job.ImportSegments(ctx, []string{offline}, job.SegmentOptions{Dir: again, SegmentSize: smallSegments, NoSync: true})
		require.NoError(t, err)
		requireSameSegments(t, s.ContextDir("default"), again, ".events")
		requireSameSegments(t, s.ContextDir("default"), again, ".snapshots")
	})

	// The archive written as segment files, several of them, and the server started on them.
	t.Run("server started on written files", func(t *testing.T) {
		base := t.TempDir()
		dir := filepath.Join(base, "data", "default")
		_, err := job.ImportSegments(ctx, []string{arch}, job.SegmentOptions{Dir: dir, SegmentSize: smallSegments})
		require.NoError(t, err)
		files, err := filepath.Glob(filepath.Join(dir, "*.events"))
		require.NoError(t, err)
		require.Greater(t, len(files), 3, "spread over several files")
		rep, err := reader.CheckSegments(reader.SegmentsOptions{Dir: dir})
		require.NoError(t, err)
		require.Equal(t, reader.VerdictIntact, rep.Verdict)

		// The server's own segment size (256 MiB) is not the files': it reads them as they are.
		s, err := realserver.StartIn(base)
		require.NoError(t, err)
		t.Cleanup(func() { s.Stop() })
		conn := dialReal(t, s)
		requireServerHolds(t, conn, arch)

		// It knows every aggregate's last sequence (its index, rebuilt at start-up), takes the next event
		// of an aggregate at the next token, and refuses a sequence already taken.
		agg := "edge-order-1"
		h, err := conn.HighestSequence(ctx, agg)
		require.NoError(t, err)
		require.Equal(t, lastSeq[agg], h)
		require.Error(t, conn.AppendEvents(ctx, [][]byte{eventgen.Encode(&eventgen.Event{MessageID: "dup", AggregateID: agg, AggregateType: "Order", AggregateSequence: h, Timestamp: 1})}))
		require.NoError(t, conn.AppendEvents(ctx, [][]byte{eventgen.Encode(&eventgen.Event{MessageID: "after-restore", AggregateID: agg, AggregateType: "Order", AggregateSequence: h + 1, Timestamp: 1})}))
		head, err := conn.LastToken(ctx)
		require.NoError(t, err)
		assert.Equal(t, m.Events.LastToken+1, head)
		for a, seq := range lastSeq {
			if a == agg || a == "" {
				continue
			}
			h, err := conn.HighestSequence(ctx, a)
			require.NoError(t, err)
			require.Equal(t, seq, h, "aggregate %s", a)
		}
		indexes, _ := filepath.Glob(filepath.Join(dir, "*.index"))
		blooms, _ := filepath.Glob(filepath.Join(dir, "*.bloom"))
		t.Logf("after start-up: %d events files, %d index files, %d bloom files", len(files), len(indexes), len(blooms))
		require.GreaterOrEqual(t, len(indexes), len(files)-1, "an index for every closed segment")
		logNewest(t, dir)
	})

	// Axon Server's own fixture files, through an archive and back, at their segment size.
	t.Run("fixtures", func(t *testing.T) {
		fixture := offlineExport(t, segFixture("three-segments"))
		base := t.TempDir()
		dir := filepath.Join(base, "data", "default")
		_, err := job.ImportSegments(ctx, []string{fixture}, job.SegmentOptions{Dir: dir, SegmentSize: 100000})
		require.NoError(t, err)
		s, err := realserver.StartIn(base, "axoniq.axonserver.event.segment-size=100000")
		require.NoError(t, err)
		t.Cleanup(func() { s.Stop() })
		conn := dialReal(t, s)
		requireServerHolds(t, conn, fixture)
		h, err := conn.HighestSequence(ctx, "Aggregate-1")
		require.NoError(t, err)
		require.NoError(t, conn.AppendEvents(ctx, [][]byte{eventgen.Encode(&eventgen.Event{MessageID: "after-restore", AggregateID: "Aggregate-1", AggregateType: "MyAggregateType", AggregateSequence: h + 1, Timestamp: 1})}))
		head, err := conn.LastToken(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1386), head)
		logNewest(t, dir)
	})
}

// logNewest logs the newest events files and their sizes: where the server put the event appended after
// the restore, and how large it made the file.
func logNewest(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.events"))
	for _, f := range files[max(0, len(files)-2):] {
		if fi, err := os.Stat(f); err == nil {
			t.Logf("%s: %d bytes", filepath.Base(f), fi.Size())
		}
	}
}

// requireServerHolds shows that the server serves exactly the archive: a live export has its records
// (the snapshots as the server serves them, with their flag), and the proof (diff) finds no difference.
func requireServerHolds(t *testing.T, conn *axonclient.Conn, arch string) {
	t.Helper()
	ctx := context.Background()
	a := openArchive(t, arch)
	d, err := job.CompareArchives(ctx, conn, []*archive.Archive{a}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	live := filepath.Join(t.TempDir(), "live")
	_, err = job.ExportServer(ctx, conn, job.ExportOptions{Dir: live})
	require.NoError(t, err)
	lm := openArchive(t, live).Manifest()
	assert.Equal(t, a.Manifest().Events.SHA256, lm.Events.SHA256, "live export: the same events")
	assert.Equal(t, a.Manifest().Events.Count, lm.Events.Count)
	assert.Equal(t, a.Manifest().Snapshots.Count, lm.Snapshots.Count, "live export: every snapshot")
	t.Logf("live export: %d events, %d snapshots (archive %d); notes %v", lm.Events.Count, lm.Snapshots.Count, a.Manifest().Snapshots.Count, lm.Notes)
}
