package job_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// generated exports a generated store of n events (with snapshots) from a double and returns the
// archive directory and the server.
func generated(t *testing.T, n int, opts job.ExportOptions) (string, *axontest.Server) {
	t.Helper()
	srv := axontest.NewServer(t)
	gen := eventgen.New(7, eventgen.Options{Aggregates: 40})
	require.NoError(t, srv.Load("source", gen.Generate(n)))
	require.NoError(t, srv.LoadSnapshots("source", gen.Snapshots()))
	opts.Dir = filepath.Join(t.TempDir(), "archive")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), opts)
	require.NoError(t, err)
	return opts.Dir, srv
}

func fingerprint(t *testing.T, dir string) string {
	a, err := archive.Open(dir)
	require.NoError(t, err)
	return a.Manifest().Fingerprint
}

// export -> import -> export gives byte-identical JSON Lines and the same fingerprint.
func TestRoundTripGenerated(t *testing.T) {
	src, srv := generated(t, 5000, job.ExportOptions{ChunkRecords: 1000})
	conn := dial(t, srv, "target")
	plan, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 700})
	require.NoError(t, err)
	assert.Equal(t, int64(5000), plan.Events)
	assert.Equal(t, int64(8), plan.Transactions)

	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)

	again := filepath.Join(t.TempDir(), "again")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: again, ChunkRecords: 1000})
	require.NoError(t, err)
	assert.Equal(t, lines(t, src, false), lines(t, again, false))
	assert.Equal(t, lines(t, src, true), lines(t, again, true))
	assert.Equal(t, fingerprint(t, src), fingerprint(t, again))

	// Stored bytes equal source bytes, token by token.
	source, target := srv.Events("source"), srv.Events("target")
	require.Equal(t, len(source), len(target))
	for i := range source {
		require.Equal(t, source[i], target[i])
	}
}

// The bundled fixtures: offline export -> import -> live export gives the same event lines; snapshot
// records differ only by the flag the server sets when serving them.
func TestRoundTripFixtures(t *testing.T) {
	for _, fixture := range []string{"three-segments", "legacy-v0"} {
		t.Run(fixture, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "offline")
			_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: filepath.Join("..", "..", "testdata", "segments", fixture, "default")}, job.ExportOptions{Dir: src})
			require.NoError(t, err)
			srv := axontest.NewServer(t)
			conn := dial(t, srv, "default")
			_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
			require.NoError(t, err)
			d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
			require.NoError(t, err)
			require.True(t, d.Equal(), "%v", d.Differences)
			live := filepath.Join(t.TempDir(), "live")
			_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: live})
			require.NoError(t, err)
			assert.Equal(t, lines(t, src, false), lines(t, live, false))
			// Without snapshots (whose records from segment files lack the flag a server sets when
			// serving them) the fingerprints are equal too, and the proof reports them equal.
			assert.Empty(t, lines(t, src, true))
			assert.Equal(t, fingerprint(t, src), fingerprint(t, live))
			assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)
		})
	}
}

func TestImportRefusesNonEmptyTarget(t *testing.T) {
	src, srv := generated(t, 100, job.ExportOptions{})
	conn := dial(t, srv, "source")
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.ErrorIs(t, err, job.ErrTargetNotEmpty)
	assert.Contains(t, err.Error(), "ends at token 99")
}

func TestImportDryRunSendsNothing(t *testing.T) {
	src, srv := generated(t, 1000, job.ExportOptions{})
	conn := dial(t, srv, "target")
	plan, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, int64(1000), plan.Events)
	assert.Positive(t, plan.Transactions)
	assert.Equal(t, int64(-1), plan.TargetHead)
	assert.Equal(t, 0, srv.EventCount("target"))
	assert.Equal(t, 0, srv.Calls(axontest.MethodAppendEvent))
}

func TestImportEventTooLarge(t *testing.T) {
	src, srv := generated(t, 300, job.ExportOptions{})
	conn := dial(t, srv, "target")
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxMessageSize: 700})
	require.ErrorIs(t, err, job.ErrEventTooLarge)
	assert.Contains(t, err.Error(), "axoniq.axonserver.max-message-size")
	assert.Equal(t, 0, srv.EventCount("target"))
}

func TestImportFilteredNeedsRenumber(t *testing.T) {
	src, srv := generated(t, 2000, job.ExportOptions{Filter: &manifest.Filter{ExcludeTypes: []string{"com.example.notification.EmailSentEvent"}}, Snapshots: job.SnapshotsNone})
	conn := dial(t, srv, "target")
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.ErrorIs(t, err, job.ErrNotContiguous)

	// With --renumber the events take the target's next tokens and the map says where each went.
	require.NoError(t, srv.Load("target", eventgen.New(99, eventgen.Options{NonDomainPercent: 100}).Generate(10)))
	tokenMap := filepath.Join(t.TempDir(), "map")
	plan, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Renumber: true, TokenMap: tokenMap})
	require.NoError(t, err)
	first := plan.TargetHead + 1
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{TargetFirst: &first})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)

	f, err := os.Open(tokenMap)
	require.NoError(t, err)
	defer f.Close()
	target := srv.Events("target")
	a, err := archive.Open(src)
	require.NoError(t, err)
	it := a.Events(context.Background(), 0)
	defer it.Close()
	sc := bufio.NewScanner(f)
	require.True(t, sc.Scan())
	assert.Equal(t, "# axarchive token map: archive-token target-token", sc.Text())
	require.True(t, sc.Scan())
	assert.Equal(t, "# target head before the import: 9", sc.Text())
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.True(t, sc.Scan())
		var from, to int64
		_, err = fmtSscan(sc.Text(), &from, &to)
		require.NoError(t, err)
		require.Equal(t, r.Token, from)
		require.Equal(t, codec.Encode(nil, r), target[to].Raw)
	}
	require.False(t, sc.Scan())
}

// A sequence the server refuses stops the import naming the aggregate, sequence and token.
func TestImportSequenceRejected(t *testing.T) {
	src, srv := generated(t, 500, job.ExportOptions{Snapshots: job.SnapshotsNone})
	conn := dial(t, srv, "target")
	// Pre-load the target with the archive's first event under a different context to make the
	// aggregate's first event a duplicate: simplest is to import once, then resume a renumbered copy.
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.NoError(t, err)
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Renumber: true, TokenMap: filepath.Join(t.TempDir(), "m"), NoVerify: true})
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	var se *job.SequenceError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, axonclient.ErrSequence)
	assert.NotEmpty(t, se.AggregateID)
	// Every aggregate of the transaction fails; the line names the one the server's text names.
	var ae *axonclient.Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, fmt.Sprintf("Invalid sequence number %d for aggregate %s, expected %d", se.Sequence, se.AggregateID, se.Expected), ae.Detail)
	assert.Equal(t, int64(499), pe.TargetHead, "nothing of the refused transaction was stored")
}

// An import interrupted between transactions is resumed: no duplicate, no gap.
func TestImportResume(t *testing.T) {
	src, srv := generated(t, 4000, job.ExportOptions{})
	conn := dial(t, srv, "target")
	srv.FailNthCall(axontest.MethodAppendEvent, 3)
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 500})
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	// The third call the double counts is the second, third or fourth transaction: the next one's call is
	// open while one commits, and the double counts two open calls in whichever order its handlers run.
	assert.Contains(t, []int64{500, 1000, 1500}, pe.Imported)
	assert.Equal(t, pe.Imported-1, pe.TargetHead)
	assert.Equal(t, pe.Imported, pe.NextToken)
	assert.Equal(t, int(pe.Imported), srv.EventCount("target"), "nothing after the failed transaction was stored")

	// Without --resume the target is not empty any more.
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.ErrorIs(t, err, job.ErrTargetNotEmpty)

	plan, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Resume: true, MaxTransactionEvents: 500})
	require.NoError(t, err)
	assert.Equal(t, pe.NextToken, plan.StartAt)
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)

	// Resuming a finished import sends nothing more, snapshots included.
	before := srv.SnapshotCount("target")
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Resume: true})
	require.NoError(t, err)
	assert.Equal(t, before, srv.SnapshotCount("target"))
}

// A resume against a target whose head is not the archive's event is refused.
func TestImportResumeMismatch(t *testing.T) {
	src, srv := generated(t, 300, job.ExportOptions{Snapshots: job.SnapshotsNone})
	require.NoError(t, srv.Load("target", eventgen.New(1234, eventgen.Options{}).Generate(10)))
	conn := dial(t, srv, "target")
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Resume: true})
	require.ErrorIs(t, err, job.ErrMismatch)
	assert.Contains(t, err.Error(), "token 9")
}

// The proof catches an event altered in the target.
func TestCompareFindsAlteredEvent(t *testing.T) {
	src, srv := generated(t, 1000, job.ExportOptions{})
	conn := dial(t, srv, "target")
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.NoError(t, err)
	stored := srv.Events("target")
	var r archive.Record
	r.Token = 500
	require.NoError(t, codec.Decode(stored[500].Raw, &r))
	r.Timestamp++
	require.NoError(t, srv.ReplaceEvent("target", 500, codec.Encode(nil, &r)))

	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.False(t, d.Equal())
	require.Len(t, d.Differences, 1)
	assert.Contains(t, d.Differences[0], "token 500")
	assert.Contains(t, d.Differences[0], "timestamp")
	assert.NotEqual(t, d.ArchiveFingerprint, d.TargetFingerprint)
}

// Incremental chain: import A then B as one chain.
func TestImportChain(t *testing.T) {
	srv := axontest.NewServer(t)
	gen := eventgen.New(3, eventgen.Options{Aggregates: 20})
	require.NoError(t, srv.Load("source", gen.Generate(1500)))
	conn := dial(t, srv, "source")
	a := filepath.Join(t.TempDir(), "a")
	_, err := job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: a, Snapshots: job.SnapshotsNone})
	require.NoError(t, err)
	require.NoError(t, conn.AppendEvents(context.Background(), gen.Generate(700)))
	b := filepath.Join(t.TempDir(), "b")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: b, Since: a, Snapshots: job.SnapshotsNone})
	require.NoError(t, err)

	target := dial(t, srv, "target")
	_, err = job.Import(context.Background(), target, []string{b, a}, job.ImportOptions{})
	require.ErrorIs(t, err, job.ErrChain)
	_, err = job.Import(context.Background(), target, []string{b}, job.ImportOptions{})
	require.ErrorIs(t, err, job.ErrNotContiguous, "an incremental archive alone does not start at 0")
	_, err = job.Import(context.Background(), target, []string{a, b}, job.ImportOptions{})
	require.NoError(t, err)
	d, err := job.Compare(context.Background(), target, []string{a, b}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, 2200, srv.EventCount("target"))
}

// Server gone mid-import: the error says how far it got.
func TestImportServerGone(t *testing.T) {
	src, srv := generated(t, 3000, job.ExportOptions{Snapshots: job.SnapshotsNone})
	conn := dial(t, srv, "target")
	srv.SetDelay(2 * time.Millisecond)
	go func() {
		for srv.EventCount("target") < 1000 {
			time.Sleep(time.Millisecond)
		}
		srv.Stop()
	}()
	_, err := job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 500})
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, axonclient.ErrUnavailable)
	assert.GreaterOrEqual(t, pe.Imported, int64(500))
	assert.True(t, strings.Contains(err.Error(), "events confirmed"))

	require.NoError(t, srv.Restart())
	srv.SetDelay(0)
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{Resume: true, MaxTransactionEvents: 500})
	require.NoError(t, err)
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
}

func fmtSscan(s string, a, b *int64) (int, error) { return fmt.Sscan(s, a, b) }

// TestEventsToSend: a resumed import's percentage is of what this run sends.
func TestEventsToSend(t *testing.T) {
	p := &job.Plan{Events: 997, FirstToken: 0, LastToken: 999, StartAt: 0, Gaps: []manifest.Gap{{From: 10, To: 11}, {From: 600, To: 600}}}
	assert.EqualValues(t, 997, p.ToSend())
	p.StartAt = 500
	assert.EqualValues(t, 499, p.ToSend())
	p.StartAt = 1000 // nothing left
	assert.EqualValues(t, 0, p.ToSend())
	p.StartAt, p.Renumber = 500, true
	assert.EqualValues(t, 997, p.ToSend())
}
