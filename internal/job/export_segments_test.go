package job_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/segmenttest"
)

// Offline export (issue 4): the options the live export has, where they make sense for segment files,
// the tail cut recorded in the manifest, and the copy left untouched.

func segFixture(name string) string {
	return filepath.Join("..", "..", "testdata", "segments", name, "default")
}

// verified opens dir and verifies it fully.
func verified(t *testing.T, dir string) *archive.Archive {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	rep, err := a.Verify(context.Background(), archive.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Err())
	return a
}

// digestTree hashes names, sizes, modes and contents of every file under dir.
func digestTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		io.WriteString(h, p+"\x00"+fi.Mode().String()+"\x00")
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	}))
	return hex.EncodeToString(h.Sum(nil))
}

// mixedStore is a context directory as Axon Server SE leaves it: events and snapshots side by side, with
// index and bloom files (which the export ignores).
func mixedStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "default")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, src := range []string{segFixture("three-segments"), segFixture("snapshots")} {
		entries, err := os.ReadDir(src)
		require.NoError(t, err)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
		}
	}
	for _, name := range []string{"00000000000000000000.index", "00000000000000000000.bloom", "00000000000000000462.sindex",
		"00000000000000000462.sbloom", "00000000000000000000.nindex", "00000000000000000000.xref", "axonserver-controldb.mv.db"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("not a segment file"), 0o644))
	}
	return dir
}

// TestSegmentsExportLeavesCopyUntouched: the files are only read (read-only files are enough), index and
// bloom files are ignored, and every event and snapshot arrives with its token or store position.
func TestSegmentsExportLeavesCopyUntouched(t *testing.T) {
	src := mixedStore(t)
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.Chmod(filepath.Join(src, e.Name()), 0o444))
	}
	require.NoError(t, os.Chmod(src, 0o555))
	t.Cleanup(func() { os.Chmod(src, 0o755) })
	before := digestTree(t, src)

	dir := filepath.Join(t.TempDir(), "a")
	progress := new(job.ExportProgress)
	var log logger
	res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: dir, Progress: progress, Warn: log.warn})
	require.NoError(t, err)
	assert.Equal(t, before, digestTree(t, src), "the segment files or their directory changed")
	assert.Empty(t, log.msgs, "index, bloom and control DB files are ignored without a warning")
	assert.Equal(t, int64(1386), res.Events)
	assert.Equal(t, int64(924), res.Snapshots)
	assert.Equal(t, int64(1386), progress.Events.Load(), "progress counts the events")
	assert.Equal(t, int64(924), progress.Snapshots.Load(), "progress counts the snapshots")

	a := verified(t, dir)
	m := a.Manifest()
	assert.Equal(t, manifest.SourceSegments, m.Source.Kind)
	assert.Equal(t, "default", m.Source.Context)
	assert.True(t, filepath.IsAbs(m.Source.Path), m.Source.Path)
	assert.Empty(t, m.Notes)
	assert.Empty(t, m.Gaps)
	assert.Nil(t, m.Filter)

	// The snapshots are the store's, in store order, at their store positions, byte for byte.
	s, err := reader.OpenSegments(reader.SegmentsOptions{Dir: src})
	require.NoError(t, err)
	ss := s.Snapshots(context.Background())
	defer ss.Close()
	it := a.Snapshots(context.Background())
	defer it.Close()
	for ss.Next() {
		require.True(t, it.Next())
		r, err := it.Record()
		require.NoError(t, err)
		require.Equal(t, ss.Position(), r.Token)
		require.Equal(t, ss.Event(), codec.Encode(nil, r))
	}
	require.NoError(t, ss.Err())
	require.False(t, it.Next())
	require.NoError(t, it.Err())
}

// TestSegmentsExportSeparateDirs: --events-dir and --snapshots-dir where the files live apart give the
// archive of one directory holding both.
func TestSegmentsExportSeparateDirs(t *testing.T) {
	both := filepath.Join(t.TempDir(), "both")
	_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: mixedStore(t)}, job.ExportOptions{Dir: both})
	require.NoError(t, err)
	apart := filepath.Join(t.TempDir(), "apart")
	_, err = job.ExportSegments(context.Background(),
		reader.SegmentsOptions{EventsDir: segFixture("three-segments"), SnapshotsDir: segFixture("snapshots")}, job.ExportOptions{Dir: apart})
	require.NoError(t, err)
	verified(t, apart)
	assert.Equal(t, lines(t, both, false), lines(t, apart, false))
	assert.Equal(t, lines(t, both, true), lines(t, apart, true))
	assert.Equal(t, verified(t, both).Manifest().Fingerprint, verified(t, apart).Manifest().Fingerprint)
}

// TestSegmentsExportSelection: --from-token/--to-token, --include-type, --exclude-type and --snapshots
// on segment files.
func TestSegmentsExportSelection(t *testing.T) {
	src := mixedStore(t)
	full := filepath.Join(t.TempDir(), "full")
	_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: full})
	require.NoError(t, err)
	allEvents := strings.SplitAfter(string(lines(t, full, false)), "\n")
	allEvents = allEvents[:len(allEvents)-1]
	require.Len(t, allEvents, 1386)

	// Every aggregate's newest snapshot, at its store position: the last one of its id in store order.
	s, err := reader.OpenSegments(reader.SegmentsOptions{Dir: src})
	require.NoError(t, err)
	newest := map[string]int64{}
	ss := s.Snapshots(context.Background())
	var rec archive.Record
	for ss.Next() {
		require.NoError(t, codec.Decode(ss.Event(), &rec))
		newest[rec.AggregateID] = ss.Position()
	}
	require.NoError(t, ss.Err())
	ss.Close()
	require.NotEmpty(t, newest)

	from, to := int64(100), int64(1000)
	tests := []struct {
		name       string
		opts       job.ExportOptions
		first      int64
		last       int64
		events     []string // expected event lines
		filtered   int64
		snapshots  int64
		mode       string
		wantFilter *manifest.Filter
	}{
		{name: "token range", opts: job.ExportOptions{FromToken: &from, ToToken: &to},
			first: 100, last: 1000, events: allEvents[100:1001], snapshots: 924, mode: "all"},
		{name: "include type", opts: job.ExportOptions{Filter: &manifest.Filter{IncludeTypes: []string{"MyPayloadType"}}},
			first: 0, last: 1385, events: allEvents, snapshots: 924, mode: "all",
			wantFilter: &manifest.Filter{IncludeTypes: []string{"MyPayloadType"}}},
		{name: "exclude type", opts: job.ExportOptions{Filter: &manifest.Filter{ExcludeTypes: []string{"MyPayloadType"}}},
			first: 0, last: 1385, filtered: 1386, snapshots: 924, mode: "all",
			wantFilter: &manifest.Filter{ExcludeTypes: []string{"MyPayloadType"}}},
		{name: "exclude type in a range, no snapshots", opts: job.ExportOptions{FromToken: &from, ToToken: &to, Snapshots: job.SnapshotsNone,
			Filter: &manifest.Filter{ExcludeTypes: []string{"SomethingElse"}}},
			first: 100, last: 1000, events: allEvents[100:1001], snapshots: 0, mode: "none",
			wantFilter: &manifest.Filter{ExcludeTypes: []string{"SomethingElse"}}},
		{name: "latest snapshots", opts: job.ExportOptions{Snapshots: job.SnapshotsLatest},
			first: 0, last: 1385, events: allEvents, snapshots: int64(len(newest)), mode: "latest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			opts := tc.opts
			opts.Dir = dir
			res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, opts)
			require.NoError(t, err)
			assert.Equal(t, int64(len(tc.events)), res.Events)
			assert.Equal(t, tc.snapshots, res.Snapshots)
			m := verified(t, dir).Manifest()
			assert.Equal(t, tc.first, m.Events.FirstToken)
			assert.Equal(t, tc.last, m.Events.LastToken)
			assert.Equal(t, tc.filtered, m.Events.Filtered)
			assert.Equal(t, tc.mode, m.Snapshots.Mode)
			assert.Equal(t, tc.snapshots, m.Snapshots.Count)
			assert.Equal(t, tc.wantFilter, m.Filter)
			assert.Equal(t, strings.Join(tc.events, ""), string(lines(t, dir, false)))
			if tc.mode == "latest" {
				a := verified(t, dir)
				it := a.Snapshots(context.Background())
				defer it.Close()
				for it.Next() {
					r, err := it.Record()
					require.NoError(t, err)
					assert.Equal(t, newest[r.AggregateID], r.Token, "snapshot of %s", r.AggregateID)
				}
				require.NoError(t, it.Err())
			}
		})
	}
}

// TestSegmentsExportSince: an incremental offline export continues after the previous archive and links
// to it; the two archives form a chain holding exactly the events of one full export.
func TestSegmentsExportSince(t *testing.T) {
	src := segFixture("three-segments")
	full := filepath.Join(t.TempDir(), "full")
	_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: full})
	require.NoError(t, err)

	first := filepath.Join(t.TempDir(), "first")
	to := int64(461)
	r1, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: first, ToToken: &to})
	require.NoError(t, err)
	second := filepath.Join(t.TempDir(), "second")
	r2, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: second, Since: first})
	require.NoError(t, err)
	assert.Equal(t, manifest.Range{First: 462, Last: 1385}, r2.Range)
	a1, a2 := verified(t, first), verified(t, second)
	require.NotNil(t, a2.Manifest().Previous)
	assert.Equal(t, manifest.Link{Fingerprint: r1.Fingerprint, LastToken: 461}, *a2.Manifest().Previous)
	require.NoError(t, archive.NewChain(a1, a2).Check())
	assert.Equal(t, string(lines(t, full, false)), string(lines(t, first, false))+string(lines(t, second, false)))
}

// TestSegmentsExportTailCut: a copy of the active segment cut in its final block (taken while the server
// wrote) ends the data: the export succeeds up to the cut, warns, and records where and why in the
// manifest. The same damage in an older file fails, naming file, offset and token, and writes no manifest.
func TestSegmentsExportTailCut(t *testing.T) {
	events := segmenttest.CopyDir(t, segFixture("three-segments"))
	newest := filepath.Join(events, segmenttest.Name(924, segmenttest.Events))
	require.NoError(t, os.Truncate(newest, 99900)) // inside the block of tokens 1384 and 1385
	snaps := segmenttest.CopyDir(t, segFixture("snapshots"))
	newestSnaps := filepath.Join(snaps, segmenttest.Name(462, segmenttest.Snapshots))
	require.NoError(t, os.Truncate(newestSnaps, 99800)) // inside the final block of the snapshot store

	want, err := reader.CheckSegments(reader.SegmentsOptions{EventsDir: events, SnapshotsDir: snaps})
	require.NoError(t, err)
	require.NotNil(t, want.Events.TailCut)
	require.NotNil(t, want.Snapshots.TailCut)
	evCut, snCut := want.Events.TailCut, want.Snapshots.TailCut
	require.Equal(t, int64(1384), evCut.Token)

	dir := filepath.Join(t.TempDir(), "a")
	var log logger
	res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{EventsDir: events, SnapshotsDir: snaps}, job.ExportOptions{Dir: dir, Warn: log.warn})
	require.NoError(t, err)
	assert.Equal(t, int64(1384), res.Events)
	assert.Equal(t, snCut.Token, res.Snapshots)
	assert.Equal(t, manifest.Range{First: 0, Last: 1383}, res.Range)

	// Loudly: one warning per cut stream, naming the file, the offset and the first token lost.
	require.Len(t, log.msgs, 2, "%q", log.msgs)
	assert.Contains(t, log.msgs[0], newest)
	assert.Contains(t, log.msgs[0], "offset 99535")
	assert.Contains(t, log.msgs[0], "token 1384")
	assert.Contains(t, log.msgs[1], newestSnaps)
	assert.Contains(t, log.msgs[1], "position")

	// And in the manifest, for every later reader of the archive.
	m := verified(t, dir).Manifest()
	require.Len(t, m.Notes, 2)
	assert.Equal(t, manifest.Note{Kind: "tail-cut", Token: 1384, Detail: evCut.String()}, m.Notes[0])
	assert.Equal(t, manifest.Note{Kind: "tail-cut", Token: snCut.Token, Detail: snCut.String()}, m.Notes[1])
	assert.Contains(t, m.Notes[0].Detail, "offset 99535")
	// SPEC.md 4.5 shows this very note, for a copy in /backup/default.
	spec, err := os.ReadFile("../../SPEC.md")
	require.NoError(t, err)
	assert.Contains(t, strings.Join(strings.Fields(string(spec)), " "),
		"`"+strings.Replace(m.Notes[0].Detail, events, "/backup/default", 1)+"`", "SPEC.md 4.5's example detail")
	assert.Equal(t, int64(1383), m.Events.LastToken)
	assert.Empty(t, m.Gaps)

	t.Run("the same in an older file is corruption", func(t *testing.T) {
		events := segmenttest.CopyDir(t, segFixture("three-segments"))
		older := filepath.Join(events, segmenttest.Name(462, segmenttest.Events))
		require.NoError(t, os.Truncate(older, 99900))
		dir := filepath.Join(t.TempDir(), "a")
		_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: events}, job.ExportOptions{Dir: dir})
		require.ErrorIs(t, err, reader.ErrTruncated)
		var se *reader.SegmentError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, older, se.File)
		assert.Equal(t, int64(922), se.Token)
		assert.Positive(t, se.Offset)
		assert.Contains(t, err.Error(), older)
		assert.Contains(t, err.Error(), "token 922")
		assert.NoFileExists(t, filepath.Join(dir, "data", "manifest.json"))
	})
}

// TestSegmentsExportBeforeDamage: what is readable before damage can still be archived with --to-token,
// wherever the damage is (the hint of the CLI says so); a range reaching the damage fails naming it.
func TestSegmentsExportBeforeDamage(t *testing.T) {
	damaged := func(t *testing.T, where string) string {
		dir := segmenttest.CopyDir(t, segFixture("three-segments"))
		switch where {
		case "newest file":
			require.NoError(t, segmenttest.FlipBit(filepath.Join(dir, segmenttest.Name(924, segmenttest.Events)), 5000, 3))
		case "missing middle file":
			require.NoError(t, os.Remove(filepath.Join(dir, segmenttest.Name(462, segmenttest.Events))))
		}
		return dir
	}
	for _, tc := range []struct {
		where      string
		damagedAt  int64 // first token not readable
		sentinel   error
		goodBefore int64
	}{
		{"newest file", 946, reader.ErrChecksum, 930},
		{"missing middle file", 462, reader.ErrGap, 461},
	} {
		t.Run(tc.where, func(t *testing.T) {
			src := damaged(t, tc.where)
			to := tc.goodBefore
			dir := filepath.Join(t.TempDir(), "a")
			res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: dir, ToToken: &to})
			require.NoError(t, err)
			assert.Equal(t, manifest.Range{First: 0, Last: to}, res.Range)
			verified(t, dir)

			for _, to := range []*int64{nil, &tc.damagedAt} {
				dir := filepath.Join(t.TempDir(), "b")
				_, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: dir, ToToken: to})
				require.ErrorIs(t, err, tc.sentinel)
				var se *reader.SegmentError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tc.damagedAt, se.Token)
				assert.NoFileExists(t, filepath.Join(dir, "data", "manifest.json"))
			}
		})
	}
}

// TestSegmentsExportSnapshotRetention: a snapshot store whose oldest file is gone keeps the positions of
// the files that remain (SPEC.md 5.5: file number plus ordinal).
func TestSegmentsExportSnapshotRetention(t *testing.T) {
	snaps := segmenttest.CopyDir(t, segFixture("snapshots"))
	require.NoError(t, os.Remove(filepath.Join(snaps, segmenttest.Name(0, segmenttest.Snapshots))))
	dir := filepath.Join(t.TempDir(), "a")
	res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: snaps}, job.ExportOptions{Dir: dir})
	require.NoError(t, err)
	assert.Equal(t, int64(462), res.Snapshots)
	a := verified(t, dir)
	it := a.Snapshots(context.Background())
	defer it.Close()
	want := int64(462)
	for it.Next() {
		require.Equal(t, want, it.Token())
		want++
	}
	require.NoError(t, it.Err())
	assert.Equal(t, int64(924), want)
}

// TestSegmentsExportTransactions: an offline export records the blocks of the events files as the
// source's transactions (format version 2), also across a resume and from a token inside a block; a
// filtered export and a live one cannot, and stay version 1.
func TestSegmentsExportTransactions(t *testing.T) {
	src := segmenttest.CopyDir(t, segFixture("three-segments"))
	blocks := func(s *reader.Segments, from int64) []int64 {
		var ends []int64
		it := s.Events(context.Background(), from)
		defer it.Close()
		for it.Next() {
			if _, i, n := it.Block(); i == n-1 {
				ends = append(ends, it.Token())
			}
		}
		require.NoError(t, it.Err())
		return ends
	}
	s, err := reader.OpenSegments(reader.SegmentsOptions{Dir: src})
	require.NoError(t, err)
	ends := func(dir string) []int64 {
		a := verified(t, dir)
		require.Equal(t, archive.VersionTransactions, a.Manifest().Version)
		return txEndsIn(t, a)
	}

	full := filepath.Join(t.TempDir(), "full")
	_, err = job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: full, ChunkRecords: 100})
	require.NoError(t, err)
	assert.Equal(t, blocks(s, 0), ends(full))
	m := verified(t, full).Manifest()
	assert.Equal(t, int64(693), m.Transactions.Count, "1386 events, 2 per block")
	assert.Equal(t, int64(1), m.Transactions.Runs, "one run: a run goes on across chunks")

	// From token 5, inside the block of tokens 4 and 5: the first transaction is its part in the range.
	from := int64(5)
	part := filepath.Join(t.TempDir(), "part")
	_, err = job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: part, FromToken: &from})
	require.NoError(t, err)
	assert.Equal(t, blocks(s, 5), ends(part))

	// A filter drops events of a transaction: no grouping, version 1.
	filtered := filepath.Join(t.TempDir(), "filtered")
	_, err = job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: filtered,
		Filter: &manifest.Filter{ExcludeTypes: []string{"none"}}})
	require.NoError(t, err)
	a := verified(t, filtered)
	assert.Nil(t, a.Manifest().Transactions)
	assert.Equal(t, archive.Version, a.Manifest().Version)
	assert.Equal(t, m.Fingerprint, a.Manifest().Fingerprint)
}
