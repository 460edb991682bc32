package writer_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/export"
	"github.com/axarchive/axarchive/internal/writer"
)

// export -> import -> export of a store holding every edge value (eventgen.EdgeCases, EdgeSnapshots) and
// generated events: byte-identical JSON Lines, the same fingerprint, the same stored bytes, and the proof
// finds the target equal with both fingerprints the same.
func TestRoundTripEdgeCases(t *testing.T) {
	srv := axontest.NewServer(t)
	gen := eventgen.New(5, eventgen.Options{Aggregates: 30})
	require.NoError(t, srv.Load("source", eventgen.EdgeCases()))
	require.NoError(t, srv.Load("source", gen.Generate(1500)))
	require.NoError(t, srv.LoadSnapshots("source", eventgen.EdgeSnapshots()))
	require.NoError(t, srv.LoadSnapshots("source", gen.Snapshots()))
	src := filepath.Join(t.TempDir(), "src")
	_, err := export.Live(context.Background(), dial(t, srv, "source"), export.Options{Dir: src, ChunkRecords: 400})
	require.NoError(t, err)

	conn := dial(t, srv, "target")
	_, err = writer.Import(context.Background(), conn, []string{src}, writer.Options{MaxTransactionEvents: 300})
	require.NoError(t, err)
	d, err := writer.Compare(context.Background(), conn, []string{src}, writer.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)

	again := filepath.Join(t.TempDir(), "again")
	_, err = export.Live(context.Background(), conn, export.Options{Dir: again, ChunkRecords: 400})
	require.NoError(t, err)
	assert.Equal(t, lines(t, src, false), lines(t, again, false))
	assert.Equal(t, lines(t, src, true), lines(t, again, true))
	assert.Equal(t, fingerprint(t, src), fingerprint(t, again))

	source, target := srv.Events("source"), srv.Events("target")
	require.Equal(t, len(source), len(target))
	for i := range source {
		require.True(t, bytes.Equal(source[i].Raw, target[i].Raw), "token %d", i)
	}
	assert.Equal(t, srv.SnapshotCount("source"), srv.SnapshotCount("target"))
}

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
		_, err := export.Live(context.Background(), dial(t, srv, "source"), export.Options{Dir: src})
		require.NoError(t, err)
		plan, err := writer.Import(context.Background(), dial(t, srv, "target"), []string{src},
			writer.Options{MaxTransactionEvents: 100000}) // more than Axon Server takes: capped
		require.NoError(t, err)
		assert.Equal(t, []axontest.Transaction{{First: 0, Events: 32767, Bytes: sizes(tiny[:32767])},
			{First: 32767, Events: 233, Bytes: sizes(tiny[32767:])}}, srv.Transactions("target"))
		assert.Equal(t, int64(2), plan.Transactions)
	})
	t.Run("bytes", func(t *testing.T) {
		src, srv := generated(t, 2000, export.Options{})
		const maxMessage = 64 << 10
		plan, err := writer.Import(context.Background(), dial(t, srv, "target"), []string{src},
			writer.Options{MaxMessageSize: maxMessage})
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
		assert.Equal(t, 1, srv.MaxConcurrentCalls(axontest.MethodAppendEvent), "never two transactions in flight")
		assert.Equal(t, len(txs), srv.Calls(axontest.MethodAppendEvent))
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
	src, srv := generated(t, 2000, export.Options{Snapshots: export.SnapshotsNone})
	appends := 0
	srv.AfterAppend(func(context string) {
		if appends++; appends == 2 {
			require.NoError(t, srv.Load(context, [][]byte{eventgen.Encode(&eventgen.Event{PayloadType: "intruder"})}))
		}
	})
	_, err := writer.Import(context.Background(), dial(t, srv, "target"), []string{src}, writer.Options{MaxTransactionEvents: 500})
	require.ErrorIs(t, err, writer.ErrMismatch)
	var pe *writer.ProgressError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, int64(500), pe.Imported, "the transaction before the intruder")
	assert.Equal(t, int64(1000), pe.TargetHead)
	assert.Equal(t, int64(500), pe.NextToken)
	assert.Contains(t, err.Error(), "after the transaction of tokens 500-999 the target ends at token 1000, expected 999")
	assert.Equal(t, 1, appends-1, "nothing was sent after the mismatch")
}

// A refused token stops the import in the preflight, before anything is sent.
func TestImportTokenRefused(t *testing.T) {
	srv := axontest.NewServer(t, axontest.WithAccessToken("right"))
	require.NoError(t, srv.Load("source", eventgen.New(1, eventgen.Options{}).Generate(100)))
	src := filepath.Join(t.TempDir(), "src")
	good, err := axonclient.Dial(context.Background(), axonclient.Config{Address: srv.Addr(), Context: "source", Token: "right"})
	require.NoError(t, err)
	defer good.Close()
	_, err = export.Live(context.Background(), good, export.Options{Dir: src})
	require.NoError(t, err)

	for _, token := range []string{"", "wrong"} {
		conn, err := axonclient.Dial(context.Background(), axonclient.Config{Address: srv.Addr(), Context: "target", Token: token})
		require.NoError(t, err)
		defer conn.Close()
		_, err = writer.Import(context.Background(), conn, []string{src}, writer.Options{})
		require.ErrorIs(t, err, axonclient.ErrUnauthorized)
		assert.NotErrorAs(t, err, new(*writer.ProgressError), "nothing was sent: nothing to continue")
	}
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}

// An event over the max message size stops the preflight, naming its token, its size and the server
// property to raise; nothing is sent.
func TestImportEventTooLargeNamesEvent(t *testing.T) {
	srv := axontest.NewServer(t)
	events := eventgen.New(3, eventgen.Options{}).Generate(50)
	events = append(events, eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{1}, 70000)}))
	require.NoError(t, srv.Load("source", events))
	src := filepath.Join(t.TempDir(), "src")
	_, err := export.Live(context.Background(), dial(t, srv, "source"), export.Options{Dir: src})
	require.NoError(t, err)
	_, err = writer.Import(context.Background(), dial(t, srv, "target"), []string{src}, writer.Options{MaxMessageSize: 65536})
	require.ErrorIs(t, err, writer.ErrEventTooLarge)
	assert.Regexp(t, regexp.MustCompile(`the event at token 50 is 700\d\d bytes, the server accepts 65536 .*axoniq\.axonserver\.max-message-size`), err.Error())
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}
