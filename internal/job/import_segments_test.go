package job_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/segmenttest"
	"github.com/axarchive/axarchive/internal/testkit"
	"github.com/axarchive/axarchive/internal/writer"
)

// offlineExport exports the segment files in dir into a new archive and returns its directory.
func offlineExport(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "archive")
	_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: dir}, job.ExportOptions{Dir: out})
	require.NoError(t, err)
	return out
}

// usedLength returns where the data of a segment file ends: the offset of its end marker.
func usedLength(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	off := int64(5)
	for {
		size := int32(binary.BigEndian.Uint32(b[off:]))
		if size == 0 || size == -1 {
			return off
		}
		off += 7 + int64(size) + 4
	}
}

// requireSameSegments compares the *.events files of two directories byte for byte over their used
// length (header and blocks) and their names; the markers after the data may differ only in the newest
// file (0 for the active segment axarchive writes).
func requireSameSegments(t *testing.T, want, got, suffix string) {
	t.Helper()
	list := func(dir string) []string {
		m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
		require.NoError(t, err)
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	names := list(want)
	require.NotEmpty(t, names)
	require.Equal(t, names, list(got))
	for i, n := range names {
		w, err := os.ReadFile(filepath.Join(want, n))
		require.NoError(t, err)
		g, err := os.ReadFile(filepath.Join(got, n))
		require.NoError(t, err)
		used := usedLength(t, filepath.Join(want, n))
		require.Equal(t, used, usedLength(t, filepath.Join(got, n)), n)
		require.True(t, bytes.Equal(w[:used], g[:used]), "%s differs in its first %d bytes", n, used)
		if i < len(names)-1 {
			assert.Equal(t, int32(-1), int32(binary.BigEndian.Uint32(g[used:])), "%s: closed with -1", n)
		} else {
			assert.Equal(t, int32(0), int32(binary.BigEndian.Uint32(g[used:])), "%s: the active segment ends with 0", n)
		}
	}
}

// TestSegmentImportRoundTrip: offline export of Axon Server's own files, segment import at their segment
// size, offline export again: the same records, fingerprint and grouping, and the .events files the same
// bytes over their used length.
func TestSegmentImportRoundTrip(t *testing.T) {
	// Axon Server SE keeps events and snapshots side by side in data/default.
	src := filepath.Join(t.TempDir(), "default")
	require.NoError(t, os.Mkdir(src, 0o755))
	for _, fixture := range []string{"three-segments", "snapshots"} {
		testkit.CopyDir(t, src, segFixture(fixture))
	}
	a1 := offlineExport(t, src)
	dir := filepath.Join(t.TempDir(), "data", "default")
	progress := new(job.ImportProgress)
	plan, err := job.ImportSegments(context.Background(), []string{a1}, job.SegmentOptions{Dir: dir, SegmentSize: 100000, NoSync: true, Compare: true, Progress: progress})
	require.NoError(t, err)
	assert.True(t, plan.Grouped)
	assert.Equal(t, int64(1386), plan.Events)
	assert.Equal(t, int64(924), plan.Snapshots)
	require.NotNil(t, plan.Diff, "checked")
	assert.True(t, plan.Diff.Equal(), "%v", plan.Diff.Differences)
	assert.Equal(t, [2]int64{1386, 924}, [2]int64{plan.Diff.Events, plan.Diff.Snapshots})
	assert.Equal(t, int64(1386), progress.Checked.Load())
	requireSameSegments(t, src, dir, ".events")
	_, err = os.Stat(filepath.Join(dir, writer.SegmentJournal))
	assert.ErrorIs(t, err, os.ErrNotExist, "the journal is gone once the store is complete")

	a2 := offlineExport(t, dir)
	m1, m2 := openArchive(t, a1).Manifest(), openArchive(t, a2).Manifest()
	assert.Equal(t, m1.Fingerprint, m2.Fingerprint)
	assert.Equal(t, *m1.Transactions, *m2.Transactions)

	rep, err := reader.CheckSegments(reader.SegmentsOptions{Dir: dir})
	require.NoError(t, err)
	assert.Equal(t, reader.VerdictIntact, rep.Verdict)
}

func openArchive(t *testing.T, dir string) *archive.Archive {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	return a
}

// TestImportKeepsRecordedTransactions: the gRPC import sends an archive that records its source's
// transactions one AppendEvent per recorded transaction, cut further only by --max-transaction-events;
// the dry-run plan counts them so.
func TestImportKeepsRecordedTransactions(t *testing.T) {
	arch := offlineExport(t, segFixture("three-segments")) // 693 blocks of 2 events
	for _, tc := range []struct {
		max, txs int
	}{{0, 693}, {1, 1386}} {
		srv := axontest.NewServer(t)
		conn := dial(t, srv, "default")
		plan, err := job.Import(context.Background(), conn, []string{arch}, job.ImportOptions{MaxTransactionEvents: tc.max})
		require.NoError(t, err)
		assert.Equal(t, int64(tc.txs), plan.Transactions, "planned")
		txs := srv.Transactions("default")
		require.Len(t, txs, tc.txs)
		for i, tx := range txs {
			require.Equal(t, int64(i*(1386/tc.txs)), tx.First)
		}
	}
}

// A recorded transaction larger than job.DefaultTransactionBytes (which cuts the transactions of an
// archive that records none) is kept whole; an explicit --max-transaction-bytes cuts it.
func TestImportKeepsLargeRecordedTransactions(t *testing.T) {
	src := filepath.Join(t.TempDir(), "default")
	require.NoError(t, os.Mkdir(src, 0o755))
	_, err := segmenttest.WriteStore(src, segmenttest.StoreOptions{Entries: 6000, PerBlock: 3000, PayloadSize: 1000})
	require.NoError(t, err)
	arch := offlineExport(t, src)
	for _, tc := range []struct {
		maxBytes int64
		txs      int
	}{{0, 2}, {1 << 20, 8}} { // 1 MiB: each recorded transaction of ~3 MiB in four
		srv := axontest.NewServer(t)
		_, err := job.Import(context.Background(), dial(t, srv, "default"), []string{arch}, job.ImportOptions{MaxTransactionBytes: tc.maxBytes})
		require.NoError(t, err)
		txs := srv.Transactions("default")
		require.Len(t, txs, tc.txs, "max bytes %d", tc.maxBytes)
		if tc.maxBytes == 0 {
			assert.Greater(t, txs[0].Bytes, job.DefaultTransactionBytes)
			assert.Equal(t, 3000, txs[0].Events)
		}
	}
}

// TestCompareSegments: the check of import --segments reads the files back and names what differs from
// the archives: events missing or extra at the end, snapshots only one side holds, a record that differs.
func TestCompareSegments(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "default")
	require.NoError(t, os.Mkdir(src, 0o755))
	for _, fixture := range []string{"three-segments", "snapshots"} {
		testkit.CopyDir(t, src, segFixture(fixture))
	}
	full := offlineExport(t, src)
	dir := filepath.Join(t.TempDir(), "default")
	_, err := job.ImportSegments(ctx, []string{full}, job.SegmentOptions{Dir: dir, SegmentSize: 100000, NoSync: true})
	require.NoError(t, err)
	compare := func(archives ...string) *job.Diff {
		t.Helper()
		opened, err := job.OpenArchives(archives)
		require.NoError(t, err)
		d, err := job.CompareSegments(ctx, dir, opened, job.CompareOptions{MaxDifferences: 3})
		require.NoError(t, err)
		return d
	}

	d := compare(full)
	assert.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, openArchive(t, full).Manifest().Fingerprint, d.TargetFingerprint, "the records read back are the archive's")

	// An archive of the first 100 events only: the files hold more.
	head := filepath.Join(t.TempDir(), "head")
	to := int64(99)
	_, err = job.ExportSegments(ctx, reader.SegmentsOptions{EventsDir: segFixture("three-segments")}, job.ExportOptions{Dir: head, ToToken: &to})
	require.NoError(t, err)
	d = compare(head)
	require.False(t, d.Equal())
	assert.Equal(t, int64(100), d.Events)
	assert.Contains(t, d.Differences, "the files hold 1286 events after the archive's last token 99")
	assert.Contains(t, d.Differences[len(d.Differences)-1], "in the files, not in the archive", "the snapshots the archive lacks")
	assert.Equal(t, int64(924-2), d.More, "differences beyond MaxDifferences are counted")

	// The files of another store: every record differs, each named by token or position.
	other := filepath.Join(t.TempDir(), "other")
	g := t.TempDir()
	_, err = segmenttest.WriteStore(g, segmenttest.StoreOptions{Entries: 1386, PerBlock: 2, PayloadSize: 50})
	require.NoError(t, err)
	_, err = job.ExportSegments(ctx, reader.SegmentsOptions{Dir: g}, job.ExportOptions{Dir: other})
	require.NoError(t, err)
	d = compare(other)
	require.False(t, d.Equal())
	assert.Regexp(t, `^token 0: `, d.Differences[0])
}
