package job_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// Transactions hold at most 32,767 events and stay under the max message size (less 10,000 bytes of
// headroom); one is in flight at a time; the plan counts them exactly.
func TestImportTransactionBounds(t *testing.T) {
	t.Run("events", func(t *testing.T) {
		srv := axontest.NewServer(t)
		tiny := make([][]byte, 33000)
		for i := range tiny {
			tiny[i] = eventgen.Encode(&eventgen.Event{PayloadType: "t", Timestamp: int64(i + 1)})
		}
		require.NoError(t, srv.Load("source", tiny))
		src := filepath.Join(t.TempDir(), "src")
		_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src})
		require.NoError(t, err)
		plan, err := job.Import(context.Background(), dial(t, srv, "target"), []string{src},
			job.ImportOptions{MaxTransactionEvents: 100000}) // more than Axon Server takes: capped
		require.NoError(t, err)
		assert.Equal(t, []axontest.Transaction{{First: 0, Events: 32767, Bytes: sizes(tiny[:32767])},
			{First: 32767, Events: 233, Bytes: sizes(tiny[32767:])}}, srv.Transactions("target"))
		assert.Equal(t, int64(2), plan.Transactions)
	})
	t.Run("bytes", func(t *testing.T) {
		src, srv := generated(t, 2000, job.ExportOptions{})
		const maxMessage = 64 << 10
		plan, err := job.Import(context.Background(), dial(t, srv, "target"), []string{src},
			job.ImportOptions{MaxMessageSize: maxMessage})
		require.NoError(t, err)
		txs := srv.Transactions("target")
		require.Equal(t, int(plan.Transactions), len(txs))
		require.Greater(t, len(txs), 20, "the byte bound cut the transactions")
		next := int64(0)
		for _, tx := range txs {
			assert.Equal(t, next, tx.First)
			assert.LessOrEqual(t, tx.Bytes, maxMessage-10000)
			next += int64(tx.Events)
		}
		assert.Equal(t, int64(2000), next)
		assert.Equal(t, 1, srv.MaxConcurrentCalls(axontest.MethodAppendEvent), "never two transactions committing")
		assert.Equal(t, len(txs), srv.Calls(axontest.MethodAppendEvent))
	})
	// By default a transaction aims at DefaultTransactionBytes, well under the 4 MiB message size;
	// MaxTransactionBytes sets another aim, and the message size still caps it.
	t.Run("transaction bytes", func(t *testing.T) {
		src, srv := generated(t, 6000, job.ExportOptions{})
		for _, tc := range []struct {
			target string
			opts   job.ImportOptions
			most   int
		}{
			{"default", job.ImportOptions{}, job.DefaultTransactionBytes},
			{"set", job.ImportOptions{MaxTransactionBytes: 100 << 10}, 100 << 10},
			{"capped", job.ImportOptions{MaxTransactionBytes: 1 << 30, MaxMessageSize: 64 << 10}, 64<<10 - 10000},
		} {
			plan, err := job.Import(context.Background(), dial(t, srv, tc.target), []string{src}, tc.opts)
			require.NoError(t, err, tc.target)
			txs := srv.Transactions(tc.target)
			require.Equal(t, int(plan.Transactions), len(txs), tc.target)
			total := 0
			for _, tx := range txs {
				assert.LessOrEqual(t, tx.Bytes, tc.most, tc.target)
				total += tx.Bytes
			}
			// Cut where the next event would not fit, not earlier: all but the last are nearly full.
			assert.Greater(t, len(txs), 1, tc.target)
			assert.Less(t, len(txs), total/(tc.most*9/10)+2, tc.target)
		}
	})
}

func sizes(events [][]byte) int {
	n := 0
	for _, e := range events {
		n += len(e)
	}
	return n
}

// After each transaction the target's head must be where the import put it: another writer appending to
// the context stops the import with the exact position.
func TestImportHeadCheck(t *testing.T) {
	src, srv := generated(t, 2000, job.ExportOptions{Snapshots: job.SnapshotsNone})
	appends := 0
	srv.AfterAppend(func(context string) {
		if appends++; appends == 2 {
			require.NoError(t, srv.Load(context, [][]byte{eventgen.Encode(&eventgen.Event{PayloadType: "intruder"})}))
		}
	})
	_, err := job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxTransactionEvents: 500})
	require.ErrorIs(t, err, job.ErrMismatch)
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, int64(500), pe.Imported, "the transaction before the intruder")
	assert.Equal(t, int64(1000), pe.TargetHead)
	assert.Equal(t, int64(500), pe.NextToken)
	assert.Contains(t, err.Error(), "after the transaction of tokens 500-999 the target ends at token 1000, expected 999")
	assert.Equal(t, 1, appends-1, "nothing was committed after the mismatch")
	assert.Equal(t, 1001, srv.EventCount("target"), "the transaction sent while the mismatched one committed was abandoned, not stored")
}

// The next transaction's events are sent while the current one commits, but a transaction is committed
// (its call half-closed) only once the one before it is confirmed: never two committing, never more than
// two open, and the target holds the archive's events in order, one transaction per bound.
func TestImportOverlapsSendingNotCommitting(t *testing.T) {
	src, srv := generated(t, 3000, job.ExportOptions{Snapshots: job.SnapshotsNone})
	// Each confirmation takes a moment, as a real server's write does, so that the next transaction is
	// ready to be sent while one commits.
	srv.SetDelay(2 * time.Millisecond)
	plan, err := job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxTransactionEvents: 100})
	require.NoError(t, err)
	srv.SetDelay(0)
	assert.Equal(t, int64(30), plan.Transactions)
	assert.Equal(t, 1, srv.MaxConcurrentCalls(axontest.MethodAppendEvent), "never two transactions committing")
	assert.Equal(t, 2, srv.MaxOpenAppendCalls(), "the next transaction is sent while one commits, and no more")
	txs := srv.Transactions("target")
	require.Len(t, txs, 30)
	for i, tx := range txs {
		assert.Equal(t, int64(i*100), tx.First, "transaction %d", i)
		assert.Equal(t, 100, tx.Events)
	}
	assert.Equal(t, srv.Events("source"), srv.Events("target"))
}

// A refused token stops the import in the preflight, before anything is sent.
func TestImportTokenRefused(t *testing.T) {
	srv := axontest.NewServer(t, axontest.WithAccessToken("right"))
	require.NoError(t, srv.Load("source", eventgen.New(1, eventgen.Options{}).Generate(100)))
	src := filepath.Join(t.TempDir(), "src")
	good, err := axonclient.Dial(context.Background(), axonclient.Config{Address: srv.Addr(), Context: "source", Token: "right"})
	require.NoError(t, err)
	defer good.Close()
	_, err = job.ExportServer(context.Background(), good, job.ExportOptions{Dir: src})
	require.NoError(t, err)

	for _, token := range []string{"", "wrong"} {
		conn, err := axonclient.Dial(context.Background(), axonclient.Config{Address: srv.Addr(), Context: "target", Token: token})
		require.NoError(t, err)
		defer conn.Close()
		_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
		require.ErrorIs(t, err, axonclient.ErrUnauthorized)
		assert.NotErrorAs(t, err, new(*job.ProgressError), "nothing was sent: nothing to continue")
	}
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}

// largeEventArchive exports from srv's context "source" 50 generated events and, at token 50, one of
// 70,000 bytes of payload: over a message size of 65,536.
func largeEventArchive(t *testing.T, srv *axontest.Server) string {
	t.Helper()
	events := eventgen.New(3, eventgen.Options{}).Generate(50)
	events = append(events, eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{1}, 70000)}))
	require.NoError(t, srv.Load("source", events))
	src := filepath.Join(t.TempDir(), "src")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src})
	require.NoError(t, err)
	return src
}

// An event over the max message size stops the preflight, naming its token, its size and the server
// property to raise; nothing is sent.
func TestImportEventTooLargeNamesEvent(t *testing.T) {
	srv := axontest.NewServer(t)
	src := largeEventArchive(t, srv)
	_, err := job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxMessageSize: 65536})
	require.ErrorIs(t, err, job.ErrEventTooLarge)
	assert.Regexp(t, regexp.MustCompile(`the event at token 50 is 700\d\d bytes, the server accepts 65536 .*axoniq\.axonserver\.max-message-size`), err.Error())
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}

// A --max-message-size above the server's lets a large event through the preflight; the server cancels its
// transaction (as Axon Server does) and the import names the transaction's largest event and what to set.
func TestImportServerRefusesLargeEvent(t *testing.T) {
	srv := axontest.NewServer(t, axontest.WithMaxMessageSize(65536))
	src := largeEventArchive(t, srv)
	_, err := job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxMessageSize: 1 << 20})
	require.ErrorIs(t, err, job.ErrEventTooLarge)
	require.ErrorIs(t, err, axonclient.ErrTooLarge)
	assert.Regexp(t, regexp.MustCompile(`the largest event of the refused transaction \(tokens 0-50\) is at token 50, 700\d\d bytes; pass the server's axoniq\.axonserver\.max-message-size as --max-message-size`), err.Error())
	assert.Equal(t, 0, srv.EventCount("target"))
}

// A snapshot over the max message size stops the preflight too (most snapshots go while or after the events are imported: too late),
// counted as sent, with the snapshot flag.
func TestImportSnapshotTooLargeNamesSnapshot(t *testing.T) {
	srv := axontest.NewServer(t)
	require.NoError(t, srv.Load("source", [][]byte{eventgen.Encode(&eventgen.Event{AggregateID: "a", AggregateType: "A", PayloadType: "t"})}))
	require.NoError(t, srv.LoadSnapshots("source", [][]byte{eventgen.Encode(&eventgen.Event{AggregateID: "a", AggregateType: "A",
		PayloadType: "blob", PayloadData: bytes.Repeat([]byte{1}, 65536-20)})}))
	src := filepath.Join(t.TempDir(), "src")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src})
	require.NoError(t, err)
	_, err = job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxMessageSize: 65536})
	require.ErrorIs(t, err, job.ErrEventTooLarge)
	assert.Regexp(t, regexp.MustCompile(`the snapshot at position 0 \(aggregate "a", sequence 0\) is 6553[7-9] bytes, the server accepts 65536 .*axoniq\.axonserver\.max-message-size`), err.Error())
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}

// Snapshots are appended several at a time (the phase is bound by round trips), never two of one
// aggregate together, so that each aggregate's land in the archive's order; a failure part way stops the
// import with the first failed position, and --resume stores each missing snapshot once.
func TestImportSnapshotsInFlight(t *testing.T) {
	src, srv := generated(t, 3000, job.ExportOptions{})
	ctx := context.Background()
	n := srv.SnapshotCount("source")
	a, err := archive.Open(src)
	require.NoError(t, err)
	perAggregate := map[string]int{}
	it := a.Snapshots(ctx)
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		perAggregate[r.AggregateID]++
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	require.Greater(t, slices.Max(slices.Collect(maps.Values(perAggregate))), 1, "aggregates with several snapshots")

	conn := dial(t, srv, "slow")
	srv.SetDelay(2 * time.Millisecond) // every call overlaps the next ones
	_, err = job.Import(ctx, conn, []string{src}, job.ImportOptions{})
	srv.SetDelay(0)
	require.NoError(t, err)
	calls := srv.MaxConcurrentCalls(axontest.MethodAppendSnapshot)
	assert.Greater(t, calls, 1, "snapshots in flight together")
	assert.LessOrEqual(t, calls, 64) // writer's maxSnapshotsInFlight
	d, err := job.Compare(ctx, conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences) // each aggregate's snapshots in order
	assert.Equal(t, n, srv.SnapshotCount("slow"))

	conn = dial(t, srv, "failing")
	srv.FailNthCall(axontest.MethodAppendSnapshot, 10)
	_, err = job.Import(ctx, conn, []string{src}, job.ImportOptions{})
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "snapshots", pe.Phase)
	assert.GreaterOrEqual(t, pe.NextToken, int64(0))
	assert.Contains(t, err.Error(), fmt.Sprintf("snapshot at position %d", pe.NextToken))
	assert.Less(t, srv.SnapshotCount("failing"), n)
	_, err = job.Import(ctx, conn, []string{src}, job.ImportOptions{Resume: true})
	require.NoError(t, err)
	assert.Equal(t, n, srv.SnapshotCount("failing"), "each snapshot once")
	d, err = job.Compare(ctx, conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
}
