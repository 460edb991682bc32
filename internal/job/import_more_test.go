package job_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
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
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src, ChunkRecords: 400})
	require.NoError(t, err)

	conn := dial(t, srv, "target")
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 300})
	require.NoError(t, err)
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)

	again := filepath.Join(t.TempDir(), "again")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: again, ChunkRecords: 400})
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

// An event over the max message size stops the preflight, naming its token, its size and the server
// property to raise; nothing is sent.
func TestImportEventTooLargeNamesEvent(t *testing.T) {
	srv := axontest.NewServer(t)
	events := eventgen.New(3, eventgen.Options{}).Generate(50)
	events = append(events, eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{1}, 70000)}))
	require.NoError(t, srv.Load("source", events))
	src := filepath.Join(t.TempDir(), "src")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src})
	require.NoError(t, err)
	_, err = job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxMessageSize: 65536})
	require.ErrorIs(t, err, job.ErrEventTooLarge)
	assert.Regexp(t, regexp.MustCompile(`the event at token 50 is 700\d\d bytes, the server accepts 65536 .*axoniq\.axonserver\.max-message-size`), err.Error())
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}

// A --max-message-size above the server's lets a large event through the preflight; the server cancels its
// transaction (as Axon Server does) and the import names the transaction's largest event and what to set.
func TestImportServerRefusesLargeEvent(t *testing.T) {
	srv := axontest.NewServer(t, axontest.WithMaxMessageSize(65536))
	events := eventgen.New(3, eventgen.Options{}).Generate(50)
	events = append(events, eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{1}, 70000)}))
	require.NoError(t, srv.Load("source", events))
	src := filepath.Join(t.TempDir(), "src")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src})
	require.NoError(t, err)
	_, err = job.Import(context.Background(), dial(t, srv, "target"), []string{src}, job.ImportOptions{MaxMessageSize: 1 << 20})
	require.ErrorIs(t, err, job.ErrEventTooLarge)
	require.ErrorIs(t, err, axonclient.ErrTooLarge)
	assert.Regexp(t, regexp.MustCompile(`the largest event of the refused transaction \(tokens 0-50\) is at token 50, 700\d\d bytes; pass the server's axoniq\.axonserver\.max-message-size as --max-message-size`), err.Error())
	assert.Equal(t, 0, srv.EventCount("target"))
}

// A snapshot over the max message size stops the preflight too (snapshots go after all events: too late),
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

// readMap returns the mappings of a token map, archive token -> target token, in file order.
func readMap(t *testing.T, path string) [][2]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [][2]int64
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		var m [2]int64
		_, err := fmt.Sscan(line, &m[0], &m[1])
		require.NoError(t, err, "line %q", line)
		out = append(out, m)
	}
	return out
}

// requireMapMatches checks that a complete token map sends every archive event to a target event with
// the same bytes, target tokens consecutive from first.
func requireMapMatches(t *testing.T, src string, srv *axontest.Server, ctx string, m [][2]int64, first int64) {
	t.Helper()
	a, err := archive.Open(src)
	require.NoError(t, err)
	it := a.Events(context.Background(), 0)
	defer it.Close()
	target := srv.Events(ctx)
	i := 0
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.Less(t, i, len(m), "the map lacks archive token %d", r.Token)
		require.Equal(t, [2]int64{r.Token, first + int64(i)}, m[i])
		require.Equal(t, codec.Encode(nil, r), target[m[i][1]].Raw)
		i++
	}
	require.NoError(t, it.Err())
	require.Len(t, m, i)
	require.Equal(t, first+int64(i), int64(len(target)))
}

// A renumbered import that fails part way is continued with --resume --renumber: the token map says what
// was confirmed and where; the result has every event once, and the map is complete.
func TestImportRenumberResume(t *testing.T) {
	src, srv := generated(t, 3000, job.ExportOptions{Filter: &archive.Filter{ExcludeTypes: []string{"com.example.notification.EmailSentEvent"}}})
	require.NoError(t, srv.Load("target", eventgen.New(99, eventgen.Options{NonDomainPercent: 100}).Generate(10)))
	conn := dial(t, srv, "target")
	tokenMap := filepath.Join(t.TempDir(), "map")
	opts := job.ImportOptions{Renumber: true, TokenMap: tokenMap, MaxTransactionEvents: 300}
	srv.FailNthCall(axontest.MethodAppendEvent, 3)
	_, err := job.Import(context.Background(), conn, []string{src}, opts)
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	// The second, third or fourth transaction failed (see TestImportResume).
	assert.Contains(t, []int64{300, 600, 900}, pe.Imported)
	assert.Equal(t, pe.Imported+9, pe.TargetHead)
	require.Len(t, readMap(t, tokenMap), int(pe.Imported))

	// Without --resume the map (and the target) are not touched.
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "add --resume")
	require.Equal(t, 10+int(pe.Imported), srv.EventCount("target"))

	opts.Resume = true
	plan, err := job.Import(context.Background(), conn, []string{src}, opts)
	require.NoError(t, err)
	assert.Equal(t, int64(10), plan.TargetFirst)
	requireMapMatches(t, src, srv, "target", readMap(t, tokenMap), 10)
	first := plan.TargetFirst
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{TargetFirst: &first})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, srv.SnapshotCount("source"), srv.SnapshotCount("target"), "snapshots sent once")

	// Resuming a finished import changes nothing.
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.NoError(t, err)
	requireMapMatches(t, src, srv, "target", readMap(t, tokenMap), 10)
	assert.Equal(t, srv.SnapshotCount("source"), srv.SnapshotCount("target"))
}

// The run stopped after the server confirmed transactions and before the map recorded them (and in the
// middle of a line): the resumed import finds those events in the target, checks them against the
// archive and adds them to the map. A target that holds something else there is refused.
func TestImportRenumberResumeRecoversUnmapped(t *testing.T) {
	src, srv := generated(t, 1000, job.ExportOptions{Snapshots: job.SnapshotsNone})
	conn := dial(t, srv, "target")
	tokenMap := filepath.Join(t.TempDir(), "map")
	opts := job.ImportOptions{Renumber: true, TokenMap: tokenMap, MaxTransactionEvents: 200}
	_, err := job.Import(context.Background(), conn, []string{src}, opts)
	require.NoError(t, err)
	full, err := os.ReadFile(tokenMap)
	require.NoError(t, err)

	cut := func(keep int, tail string) {
		lines := strings.SplitAfter(string(full), "\n")
		require.NoError(t, os.WriteFile(tokenMap, []byte(strings.Join(lines[:2+keep], "")+tail), 0o644))
	}
	opts.Resume = true
	var log []string
	opts.Warn = func(s string) { log = append(log, s) }
	for _, tc := range []struct {
		keep int
		tail string
	}{{800, ""}, {650, "812 "}, {0, ""}} {
		cut(tc.keep, tc.tail)
		_, err = job.Import(context.Background(), conn, []string{src}, opts)
		require.NoError(t, err)
		got, err := os.ReadFile(tokenMap)
		require.NoError(t, err)
		require.Equal(t, string(full), string(got), "kept %d lines", tc.keep)
		require.Equal(t, 1000, srv.EventCount("target"), "nothing sent twice")
	}
	require.Len(t, log, 3)
	assert.Contains(t, log[0], "the target holds 200 events after the token map's end")

	// The target's event after the map's end is not the archive's next one: refused, naming it.
	cut(500, "")
	var r archive.Record
	r.Token = 700
	require.NoError(t, codec.Decode(srv.Events("target")[700].Raw, &r))
	r.MessageID = "someone else"
	require.NoError(t, srv.ReplaceEvent("target", 700, codec.Encode(nil, &r)))
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.ErrorIs(t, err, job.ErrMismatch)
	assert.Contains(t, err.Error(), "the target's event at token 700, which the token map does not list, is not archive token 700 (message id differs)")

	// No map: nothing to resume.
	require.NoError(t, os.Remove(tokenMap))
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.ErrorIs(t, err, job.ErrMismatch)
	assert.Contains(t, err.Error(), "no token map at")
}

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

// An invalid or incomplete archive, or a chain with a gap or an overlap, is refused before anything is
// sent.
func TestImportRefusesBadInput(t *testing.T) {
	srv := axontest.NewServer(t)
	conn := dial(t, srv, "target")
	v1 := filepath.Join("..", "..", "testdata", "archives", "v1")
	for _, tc := range []struct {
		dirs []string
		want error
	}{
		{[]string{filepath.Join(v1, "incomplete")}, archive.ErrIncomplete},
		{[]string{filepath.Join(v1, "bad-flipped-bit")}, archive.ErrVerify},
		{[]string{filepath.Join(v1, "bad-truncated-chunk")}, archive.ErrVerify},
		{[]string{filepath.Join(v1, "bad-missing-chunk")}, archive.ErrVerify},
	} {
		_, err := job.Import(context.Background(), conn, tc.dirs, job.ImportOptions{})
		require.ErrorIs(t, err, tc.want, "%v", tc.dirs)
		assert.NotErrorAs(t, err, new(*job.ProgressError))
	}

	// A chain of three from one source: leaving out the middle one or repeating one is refused.
	source := axontest.NewServer(t)
	gen := eventgen.New(8, eventgen.Options{NonDomainPercent: 100})
	sconn := dial(t, source, "default")
	var dirs []string
	for i := range 3 {
		require.NoError(t, source.Load("default", gen.Generate(100)))
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		opts := job.ExportOptions{Dir: dir, Snapshots: job.SnapshotsNone}
		if i > 0 {
			opts.Since = dirs[i-1]
		}
		_, err := job.ExportServer(context.Background(), sconn, opts)
		require.NoError(t, err)
		dirs = append(dirs, dir)
	}
	for _, chain := range [][]string{{dirs[0], dirs[2]}, {dirs[0], dirs[1], dirs[1], dirs[2]}, {dirs[1], dirs[0], dirs[2]}} {
		_, err := job.Import(context.Background(), conn, chain, job.ImportOptions{})
		require.ErrorIs(t, err, job.ErrChain)
	}
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent), "nothing was sent")
	assert.Zero(t, srv.EventCount("target"))

	_, err := job.Import(context.Background(), conn, dirs, job.ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, 300, srv.EventCount("target"))
}

// --no-verify skips the full verification before sending, not the checks of what is read: an archive
// damaged in its last chunk is refused by the reader's chunk checks instead (today in the preflight's
// size scan, which reads every event, so before anything is sent).
func TestImportNoVerify(t *testing.T) {
	src, srv := generated(t, 1000, job.ExportOptions{ChunkRecords: 250, Snapshots: job.SnapshotsNone})
	chunks, err := filepath.Glob(filepath.Join(src, "data", "events", "*.zst"))
	require.NoError(t, err)
	require.Len(t, chunks, 4)
	last := chunks[len(chunks)-1]
	b, err := os.ReadFile(last)
	require.NoError(t, err)
	b[len(b)/2] ^= 1
	require.NoError(t, os.WriteFile(last, b, 0o644))

	conn := dial(t, srv, "target")
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.ErrorIs(t, err, archive.ErrVerify)
	assert.Contains(t, err.Error(), "problems")

	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{NoVerify: true})
	// The reader stops at the first thing wrong in what it decompresses: the frame's checksum, or a line
	// the flipped bit broke before the checksum at the frame's end is reached.
	if !errors.Is(err, archive.ErrCorrupt) {
		require.ErrorIs(t, err, archive.ErrRecord)
	}
	assert.NotErrorIs(t, err, archive.ErrVerify, "no verification ran")
	assert.Contains(t, err.Error(), "00000000000000000750.jsonl.zst")
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent), "nothing was sent")
}

// The verification measures the events for the plan while it reads them; the plan is the one a size
// scan of the archive makes (--no-verify), for one archive and for a chain, and so is the refusal of an
// event too large.
func TestImportPlanMeasuredWhileVerifying(t *testing.T) {
	source := axontest.NewServer(t)
	gen := eventgen.New(9, eventgen.Options{})
	sconn := dial(t, source, "default")
	var dirs []string
	for i := range 3 {
		require.NoError(t, source.Load("default", gen.Generate(700)))
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		opts := job.ExportOptions{Dir: dir, Snapshots: job.SnapshotsNone, ChunkRecords: 150}
		if i > 0 {
			opts.Since = dirs[i-1]
		}
		_, err := job.ExportServer(context.Background(), sconn, opts)
		require.NoError(t, err)
		dirs = append(dirs, dir)
	}
	srv := axontest.NewServer(t)
	conn := dial(t, srv, "target")
	for _, chain := range [][]string{dirs[:1], dirs} {
		tooLarge := false
		for _, size := range []int{0, 20000, 700} {
			scanned, serr := job.Import(context.Background(), conn, chain, job.ImportOptions{DryRun: true, NoVerify: true, MaxMessageSize: size})
			measured, merr := job.Import(context.Background(), conn, chain, job.ImportOptions{DryRun: true, MaxMessageSize: size})
			assert.Equal(t, scanned, measured, "chain of %d, max message size %d", len(chain), size)
			if serr == nil {
				require.NoError(t, merr)
				assert.Equal(t, int64(700*len(chain)), measured.Events)
				continue
			}
			require.ErrorIs(t, serr, job.ErrEventTooLarge)
			assert.Equal(t, serr.Error(), merr.Error())
			tooLarge = true
		}
		assert.True(t, tooLarge)
	}
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}

// A token map that is not one, or has a line of unbounded length, is refused as such, naming the line:
// readTokenMap never holds more than a line's bound.
func TestTokenMapRefusesForeignFiles(t *testing.T) {
	const header = "# axarchive token map: archive-token target-token\n"
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"foreign", "hello\n", "line 1: not an axarchive token map"},
		{"long-line", header + strings.Repeat("1", 1<<20) + " 2\n", "line 2: longer than 4096 bytes"},
		{"malformed", header + "1 2 3\n", "line 2: want two tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			_, err := job.TokenMapTargetFirst(path)
			require.ErrorIs(t, err, job.ErrMismatch)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
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
	assert.LessOrEqual(t, calls, 16)
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
