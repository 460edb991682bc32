package job_test

import (
	"context"
	"path/filepath"
	"sync"
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
	"github.com/axarchive/axarchive/internal/testkit"
)

const ctxName = "default"

// loaded starts a test double holding n generated events and their snapshots.
func loaded(t *testing.T, n int, opts ...axontest.Option) (*axontest.Server, *eventgen.Generator) {
	t.Helper()
	srv := axontest.NewServer(t, opts...)
	gen := eventgen.New(42, eventgen.Options{Aggregates: 60})
	require.NoError(t, srv.Load(ctxName, gen.Generate(n)))
	require.NoError(t, srv.LoadSnapshots(ctxName, gen.Snapshots()))
	return srv, gen
}

func dial(t *testing.T, srv *axontest.Server, ctx string) *axonclient.Conn {
	t.Helper()
	return testkit.Dial(t, srv.Addr(), ctx)
}

type logger struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logger) warn(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, s)
}

// lines returns every line of a stream of an archive, concatenated (testkit.Lines).
func lines(t *testing.T, dir string, snapshots bool) []byte {
	t.Helper()
	return testkit.Lines(t, dir, snapshots)
}

// records rebuild, from the archive, exactly the bytes the server holds.
func assertArchiveEqualsServer(t *testing.T, dir string, srv *axontest.Server, ctx string) {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	stored := srv.Events(ctx)
	it := a.Events(context.Background(), 0)
	defer it.Close()
	i := 0
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.Less(t, i, len(stored), "archive has more events than the server")
		require.Equal(t, stored[i].Token, r.Token)
		require.Equal(t, stored[i].Raw, codec.Encode(nil, r), "token %d", r.Token)
		i++
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(stored), i)
	rep, err := a.Verify(context.Background(), archive.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Err())
}

func TestLiveExportEqualsServer(t *testing.T) {
	srv, _ := loaded(t, 5000)
	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportServer(context.Background(), dial(t, srv, ctxName), job.ExportOptions{Dir: dir, ChunkRecords: 700})
	require.NoError(t, err)
	assert.Equal(t, int64(5000), res.Events)
	assert.Equal(t, manifest.Range{First: 0, Last: 4999}, res.Range)
	assertArchiveEqualsServer(t, dir, srv, ctxName)

	a, err := archive.Open(dir)
	require.NoError(t, err)
	assert.Equal(t, int64(srv.SnapshotCount(ctxName)), a.Manifest().Snapshots.Count, "every snapshot of the exported aggregates")
	assert.Greater(t, len(a.Manifest().Chunks), 7, "chunks rotate at the record count")
}

func TestLiveExportEmptyContext(t *testing.T) {
	srv := axontest.NewServer(t)
	dir := filepath.Join(t.TempDir(), "a")
	// Without AllowEmpty: refused, nothing written (a mistyped context looks like this).
	_, err := job.ExportServer(context.Background(), dial(t, srv, "empty"), job.ExportOptions{Dir: dir})
	require.ErrorIs(t, err, job.ErrEmpty)
	assert.Contains(t, err.Error(), `context "empty"`)
	assert.NoDirExists(t, dir)
	res, err := job.ExportServer(context.Background(), dial(t, srv, "empty"), job.ExportOptions{Dir: dir, AllowEmpty: true})
	require.NoError(t, err)
	assert.Equal(t, int64(0), res.Events)
	assert.Equal(t, manifest.Range{First: 0, Last: -1}, res.Range)
	a, err := archive.Open(dir)
	require.NoError(t, err)
	rep, err := a.Verify(context.Background(), archive.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.OK())
}

// Events appended after the export started are not in it: the head is captured at the start.
func TestLiveExportCapturesHead(t *testing.T) {
	srv, gen := loaded(t, 2000)
	srv.SetDelay(time.Millisecond)
	conn := dial(t, srv, ctxName)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(20 * time.Millisecond)
		_ = conn.AppendEvents(context.Background(), gen.Generate(10))
	}()
	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Snapshots: job.SnapshotsNone})
	<-done
	require.NoError(t, err)
	assert.Equal(t, int64(1999), res.Range.Last)
}

func TestLiveExportRanges(t *testing.T) {
	srv, _ := loaded(t, 3000)
	conn := dial(t, srv, ctxName)
	from, to := int64(1000), int64(1999)
	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, FromToken: &from, ToToken: &to})
	require.NoError(t, err)
	assert.Equal(t, int64(1000), res.Events)
	a, err := archive.Open(dir)
	require.NoError(t, err)
	stored := srv.Events(ctxName)
	it := a.Events(context.Background(), 0)
	defer it.Close()
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.Equal(t, stored[r.Token].Raw, codec.Encode(nil, r))
	}
	require.NoError(t, it.Err())

	// --from-token before the first token is refused.
	before := int64(-5)
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: filepath.Join(t.TempDir(), "b"), FromToken: &before})
	require.ErrorIs(t, err, job.ErrRange)
}

func TestLiveExportFilter(t *testing.T) {
	srv, _ := loaded(t, 3000)
	conn := dial(t, srv, ctxName)
	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Filter: &manifest.Filter{ExcludeTypes: []string{"com.example.notification.EmailSentEvent"}}})
	require.NoError(t, err)
	a, err := archive.Open(dir)
	require.NoError(t, err)
	m := a.Manifest()
	require.NotNil(t, m.Filter)
	assert.Positive(t, m.Events.Filtered)
	assert.Equal(t, int64(3000), res.Events+m.Events.Filtered)
	it := a.Events(context.Background(), 0)
	defer it.Close()
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.NotEqual(t, "com.example.notification.EmailSentEvent", r.Payload.Type)
	}
	require.NoError(t, it.Err())
}

// A dropped stream is re-opened after the last token received; the archive is the same as without.
func TestLiveExportRetriesDroppedStream(t *testing.T) {
	srv, _ := loaded(t, 4000)
	conn := dial(t, srv, ctxName)
	clean := filepath.Join(t.TempDir(), "clean")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: clean})
	require.NoError(t, err)

	srv.DropListEventsAfter(1234)
	var log logger
	dir := filepath.Join(t.TempDir(), "a")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Warn: log.warn})
	require.NoError(t, err)
	require.NotEmpty(t, log.msgs, "each retry is reported")
	assert.Contains(t, log.msgs[0], "retrying")
	assert.Equal(t, lines(t, clean, false), lines(t, dir, false))
	assertArchiveEqualsServer(t, dir, srv, ctxName)
}

// An export cancelled part way is continued by Resume; the result equals an uninterrupted export.
func TestLiveExportResume(t *testing.T) {
	srv, _ := loaded(t, 6000)
	conn := dial(t, srv, ctxName)
	clean := filepath.Join(t.TempDir(), "clean")
	cres, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: clean, ChunkRecords: 500})
	require.NoError(t, err)

	interrupted := 0
	for _, stopAfter := range []int64{1, 1700, 5999} {
		dir := filepath.Join(t.TempDir(), "a")
		ctx, cancel := context.WithCancel(context.Background())
		progress := new(job.ExportProgress)
		go func() {
			for progress.Events.Load() < stopAfter && ctx.Err() == nil {
				time.Sleep(100 * time.Microsecond)
			}
			cancel()
		}()
		srv.SetDelay(50 * time.Microsecond)
		_, err := job.ExportServer(ctx, conn, job.ExportOptions{Dir: dir, ChunkRecords: 500, Progress: progress})
		cancel()
		srv.SetDelay(0)
		if err == nil {
			continue // finished before the cancel landed: nothing to resume
		}
		var ie *job.InterruptedError
		require.ErrorAs(t, err, &ie)
		interrupted++
		_, err = archive.Open(dir)
		require.ErrorIs(t, err, archive.ErrIncomplete)

		res, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, ChunkRecords: 500, Resume: true})
		require.NoError(t, err)
		assertArchiveEqualsServer(t, dir, srv, ctxName)
		assert.Equal(t, cres.Fingerprint, res.Fingerprint)
		assert.Equal(t, lines(t, clean, false), lines(t, dir, false))
		assert.Equal(t, lines(t, clean, true), lines(t, dir, true))
	}
	require.Positive(t, interrupted, "no run was interrupted")
}

// Resume refuses a directory exported from another source or with another selection.
func TestResumeRefusesOtherSelection(t *testing.T) {
	srv, _ := loaded(t, 3000)
	conn := dial(t, srv, ctxName)
	dir := filepath.Join(t.TempDir(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	progress := new(job.ExportProgress)
	go func() {
		for progress.Events.Load() < 10 && ctx.Err() == nil {
			time.Sleep(100 * time.Microsecond)
		}
		cancel()
	}()
	srv.SetDelay(100 * time.Microsecond)
	_, err := job.ExportServer(ctx, conn, job.ExportOptions{Dir: dir, Progress: progress})
	srv.SetDelay(0)
	require.Error(t, err)
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Resume: true, Filter: &manifest.Filter{IncludeTypes: []string{"x"}}})
	require.ErrorIs(t, err, archive.ErrMismatch)
	_, err = job.ExportServer(context.Background(), dial(t, srv, "other"), job.ExportOptions{Dir: dir, Resume: true})
	require.ErrorIs(t, err, archive.ErrMismatch)
	// And a plain export never overwrites it.
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir})
	require.ErrorIs(t, err, archive.ErrNotEmpty)
}

// Incremental: a second archive continues after the first and links to it.
func TestIncremental(t *testing.T) {
	srv, gen := loaded(t, 2000)
	conn := dial(t, srv, ctxName)
	first := filepath.Join(t.TempDir(), "a")
	r1, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: first})
	require.NoError(t, err)
	require.NoError(t, conn.AppendEvents(context.Background(), gen.Generate(500)))
	second := filepath.Join(t.TempDir(), "b")
	r2, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: second, Since: first})
	require.NoError(t, err)
	assert.Equal(t, manifest.Range{First: 2000, Last: 2499}, r2.Range)
	a1, err := archive.Open(first)
	require.NoError(t, err)
	a2, err := archive.Open(second)
	require.NoError(t, err)
	require.NotNil(t, a2.Manifest().Previous)
	assert.Equal(t, r1.Fingerprint, a2.Manifest().Previous.Fingerprint)
	require.NoError(t, archive.NewChain(a1, a2).Check())
	require.Error(t, archive.NewChain(a2, a1).Check())
}

func TestSegmentsExportFixtures(t *testing.T) {
	for _, tc := range []struct {
		dir               string
		events, snapshots int64
	}{
		{"legacy-v0", 28, 0},
		{"three-segments", 1386, 0},
		{"snapshots", 0, 924},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			src := filepath.Join("..", "..", "testdata", "segments", tc.dir, "default")
			dir := filepath.Join(t.TempDir(), "a")
			res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: dir})
			require.NoError(t, err)
			assert.Equal(t, tc.events, res.Events)
			assert.Equal(t, tc.snapshots, res.Snapshots)

			// Every record converts back to the bytes in the segment files.
			s, err := reader.OpenSegments(reader.SegmentsOptions{Dir: src})
			require.NoError(t, err)
			a, err := archive.Open(dir)
			require.NoError(t, err)
			it := a.Events(context.Background(), 0)
			seg := s.Events(context.Background(), 0)
			for seg.Next() {
				require.True(t, it.Next())
				r, err := it.Record()
				require.NoError(t, err)
				require.Equal(t, seg.Token(), r.Token)
				require.Equal(t, seg.Event(), codec.Encode(nil, r))
			}
			require.False(t, it.Next())
			require.NoError(t, it.Err())
			it.Close()
			seg.Close()
			sit := a.Snapshots(context.Background())
			ss := s.Snapshots(context.Background())
			for ss.Next() {
				require.True(t, sit.Next())
				r, err := sit.Record()
				require.NoError(t, err)
				require.Equal(t, ss.Position(), r.Token)
				require.Equal(t, ss.Event(), codec.Encode(nil, r))
			}
			require.False(t, sit.Next())
			sit.Close()
			ss.Close()
			rep, err := a.Verify(context.Background(), archive.VerifyOptions{})
			require.NoError(t, err)
			require.True(t, rep.OK(), "%v", rep.Err())
		})
	}
}

// Interrupted in the snapshot phase: the resumed export asks for the same aggregates in the same order
// and skips the snapshots already committed.
func TestLiveExportResumeInSnapshotPhase(t *testing.T) {
	srv, _ := loaded(t, 3000)
	conn := dial(t, srv, ctxName)
	clean := filepath.Join(t.TempDir(), "clean")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: clean, ChunkRecords: 10})
	require.NoError(t, err)
	require.Greater(t, len(lines(t, clean, true)), 0)

	dir := filepath.Join(t.TempDir(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	progress := new(job.ExportProgress)
	go func() {
		for ph, _ := progress.Phase.Load().(string); ph != "snapshots" && ctx.Err() == nil; ph, _ = progress.Phase.Load().(string) {
			time.Sleep(50 * time.Microsecond)
		}
		srv.SetDelay(2 * time.Millisecond) // each snapshot list call is slow: the cancel lands mid-phase
		for progress.Snapshots.Load() < 25 && ctx.Err() == nil {
			time.Sleep(50 * time.Microsecond)
		}
		cancel()
	}()
	_, err = job.ExportServer(ctx, conn, job.ExportOptions{Dir: dir, ChunkRecords: 10, Progress: progress})
	cancel()
	srv.SetDelay(0)
	require.Error(t, err)
	require.GreaterOrEqual(t, progress.Snapshots.Load(), int64(25))

	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, ChunkRecords: 10, Resume: true})
	require.NoError(t, err)
	assert.Equal(t, lines(t, clean, false), lines(t, dir, false))
	assert.Equal(t, lines(t, clean, true), lines(t, dir, true))
}

// The server restarts in the middle of an export: the stream is re-opened once it is back.
func TestLiveExportSurvivesServerRestart(t *testing.T) {
	srv, _ := loaded(t, 4000)
	conn := dial(t, srv, ctxName)
	clean := filepath.Join(t.TempDir(), "clean")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: clean})
	require.NoError(t, err)

	progress := new(job.ExportProgress)
	srv.SetDelay(200 * time.Microsecond)
	go func() {
		for progress.Events.Load() < 1000 {
			time.Sleep(100 * time.Microsecond)
		}
		srv.Stop()
		time.Sleep(300 * time.Millisecond)
		srv.SetDelay(0)
		_ = srv.Restart()
	}()
	var log logger
	dir := filepath.Join(t.TempDir(), "a")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: dir, Progress: progress, Warn: log.warn, MaxRetries: 10})
	require.NoError(t, err)
	require.NotEmpty(t, log.msgs)
	assert.Equal(t, lines(t, clean, false), lines(t, dir, false))
}

// The compression level changes the chunks' compressed bytes only: the records, their JSON Lines and the
// fingerprint are the same at every level, and each archive verifies.
func TestLevelChangesOnlyCompression(t *testing.T) {
	srv, _ := loaded(t, 3000)
	var fingerprints []string
	var sizes []int64
	var first []byte
	for _, level := range []int{0, 1, 3, 19} {
		dir := filepath.Join(t.TempDir(), "a")
		_, err := job.ExportServer(context.Background(), dial(t, srv, ctxName), job.ExportOptions{Dir: dir, Level: level})
		require.NoError(t, err)
		a, err := archive.Open(dir)
		require.NoError(t, err)
		rep, err := a.Verify(context.Background(), archive.VerifyOptions{})
		require.NoError(t, err)
		require.True(t, rep.OK())
		got := append(lines(t, dir, false), lines(t, dir, true)...)
		if first == nil {
			first = got
		}
		require.Equal(t, first, got, "level %d", level)
		m := a.Manifest()
		fingerprints = append(fingerprints, m.Fingerprint)
		var size int64
		for _, c := range m.Chunks {
			size += c.Size
		}
		sizes = append(sizes, size)
	}
	assert.Equal(t, []string{fingerprints[0], fingerprints[0], fingerprints[0], fingerprints[0]}, fingerprints)
	assert.Equal(t, sizes[0], sizes[1], "0 means the default level, 1")
	assert.NotEqual(t, sizes[1], sizes[2], "level 3 compresses otherwise")
	assert.Less(t, sizes[3], sizes[1], "level 19 compresses better than 1")
}
