package reader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/segmenttest"
)

// fixtures is the root of the real Axon Server files; their figures are in its README.md.
const fixtures = "../../testdata/segments"

func fixture(name string) string { return filepath.Join(fixtures, name, "default") }

// entry is one event or snapshot as an iterator yields it.
type entry struct {
	token, offset    int64
	file             string
	data             []byte
	blockOff         int64
	blockIdx, blockN int
}

// readAll drains an iterator, copying what it yields.
type drained struct {
	entries []entry
	err     error
	cut     *TailCut
	next    int64
	end     EndState
}

func readEvents(t *testing.T, s *Segments, from int64) drained {
	t.Helper()
	it := s.Events(context.Background(), from)
	defer it.Close()
	var d drained
	for it.Next() {
		off, idx, n := it.Block()
		d.entries = append(d.entries, entry{token: it.Token(), offset: it.Offset(), file: filepath.Base(it.File()),
			data: bytes.Clone(it.Event()), blockOff: off, blockIdx: idx, blockN: n})
	}
	d.err, d.cut, d.next, d.end = it.Err(), it.TailCut(), it.NextToken(), it.End()
	return d
}

func readSnapshots(t *testing.T, s *Segments) drained {
	t.Helper()
	it := s.Snapshots(context.Background())
	defer it.Close()
	var d drained
	for it.Next() {
		off, idx, n := it.Block()
		d.entries = append(d.entries, entry{token: it.Position(), offset: it.Offset(), file: filepath.Base(it.File()),
			data: bytes.Clone(it.Event()), blockOff: off, blockIdx: idx, blockN: n})
	}
	d.err, d.cut, d.next, d.end = it.Err(), it.TailCut(), it.NextPosition(), it.End()
	return d
}

func open(t *testing.T, opts SegmentsOptions) *Segments {
	t.Helper()
	s, err := OpenSegments(opts)
	require.NoError(t, err)
	return s
}

func decode(t *testing.T, b []byte) *axonpb.Event {
	t.Helper()
	var ev axonpb.Event
	require.NoError(t, proto.Unmarshal(b, &ev))
	// The stored bytes are Axon Server's own serialisation; Go's deterministic encoding reproduces them
	// exactly (AXON.md 3.8), which proves the reader hands out exactly one event's bytes.
	again, err := proto.MarshalOptions{Deterministic: true}.Marshal(&ev)
	require.NoError(t, err)
	require.Equal(t, b, again)
	return &ev
}

// fileFigures are the per-file figures of the fixture README.
type fileFigures struct {
	name          string
	size          int64
	version       int
	flags         uint32
	blocks        int64
	entries       int64
	first, last   int64
	end           EndState
	endOffset     int64
	eventsInBlock int
}

func TestSegmentsFixtureFigures(t *testing.T) {
	tests := []struct {
		name  string
		dir   string
		kind  SegmentKind
		files []fileFigures
	}{
		{"legacy-v0", fixture("legacy-v0"), EventSegments, []fileFigures{
			{"00000000000000000000.events", 1033, 0, 0x7c42abad, 14, 14, 0, 13, EndClosed, 985, 1},
			{"00000000000000000014.events", 1024, 0, 0xbdbc0146, 14, 14, 14, 27, EndClosed, 985, 1},
		}},
		{"three-segments", fixture("three-segments"), EventSegments, []fileFigures{
			{"00000000000000000000.events", 100000, 2, 0, 231, 462, 0, 461, EndClosed, 99788, 2},
			{"00000000000000000462.events", 100000, 2, 0, 231, 462, 462, 923, EndClosed, 99988, 2},
			{"00000000000000000924.events", 100000, 2, 0, 231, 462, 924, 1385, EndClosed, 99968, 2},
		}},
		{"snapshots", fixture("snapshots"), SnapshotSegments, []fileFigures{
			{"00000000000000000000.snapshots", 100000, 2, 0, 231, 462, 0, 461, EndClosed, 99990, 2},
			{"00000000000000000462.snapshots", 100000, 2, 0, 231, 462, 462, 923, EndClosed, 99848, 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The checker's view: every figure of the README, per file.
			rep, err := CheckSegments(SegmentsOptions{Dir: tc.dir})
			require.NoError(t, err)
			assert.Equal(t, VerdictIntact, rep.Verdict, rep.Summary)
			st := rep.Events
			if tc.kind == SnapshotSegments {
				st = rep.Snapshots
			}
			require.Len(t, st.Files, len(tc.files))
			assert.Empty(t, st.Problems)
			assert.Nil(t, st.TailCut)
			for i, want := range tc.files {
				got := st.Files[i]
				assert.Equal(t, want.name, got.Name)
				assert.Equal(t, want.size, got.Size, got.Name)
				assert.Equal(t, want.version, got.Version, got.Name)
				assert.Equal(t, want.flags, got.Flags, got.Name)
				assert.Equal(t, want.blocks, got.Blocks, got.Name)
				assert.Equal(t, want.entries, got.Entries, got.Name)
				assert.Equal(t, want.first, got.First, got.Name)
				assert.Equal(t, want.last, got.Last, got.Name)
				assert.Equal(t, ChecksumsOK, got.Checksums, got.Name)
				assert.Equal(t, want.end, got.End, got.Name)
				assert.Equal(t, want.endOffset, got.EndOffset, got.Name)
				assert.Equal(t, want.endOffset+4, got.Used, got.Name)
				assert.Empty(t, got.Error)
				// The README also says no file has data after its end marker; the reader never
				// looks there, so check the bytes directly.
				b, err := os.ReadFile(got.Path)
				require.NoError(t, err)
				assert.Equal(t, make([]byte, len(b)-int(got.Used)), b[got.Used:], "%s: zeros after the marker", got.Name)
			}
			last := tc.files[len(tc.files)-1]
			assert.Equal(t, last.last+1, st.Next)
			assert.Equal(t, int64(0), st.First)

			// The iterator's view: contiguous tokens from 0, blocks as in the README, the right files.
			s := open(t, SegmentsOptions{Dir: tc.dir})
			var d drained
			if tc.kind == EventSegments {
				d = readEvents(t, s, 0)
			} else {
				d = readSnapshots(t, s)
			}
			require.NoError(t, d.err)
			assert.Nil(t, d.cut)
			assert.Equal(t, EndClosed, d.end)
			require.Len(t, d.entries, int(last.last+1))
			assert.Equal(t, last.last+1, d.next)
			fi := 0
			for i, e := range d.entries {
				require.Equal(t, int64(i), e.token)
				for e.token > tc.files[fi].last {
					fi++
				}
				require.Equal(t, tc.files[fi].name, e.file)
				require.Less(t, e.offset, tc.files[fi].endOffset)
				decode(t, e.data)
			}
		})
	}
}

func TestSegmentsLegacyEvents(t *testing.T) {
	d := readEvents(t, open(t, SegmentsOptions{Dir: fixture("legacy-v0")}), 0)
	require.NoError(t, d.err)
	require.Len(t, d.entries, 28)
	ids := map[string]bool{}
	for _, e := range d.entries {
		ev := decode(t, e.data)
		assert.Empty(t, ev.GetMessageIdentifier())
		assert.Zero(t, ev.GetTimestamp())
		assert.Zero(t, ev.GetAggregateSequenceNumber())
		assert.Empty(t, ev.GetAggregateType())
		assert.Equal(t, "MyType", ev.GetPayload().GetType())
		assert.Equal(t, "1", ev.GetPayload().GetRevision())
		assert.Equal(t, []byte("{}"), ev.GetPayload().GetData())
		assert.Empty(t, ev.GetMetaData())
		assert.Equal(t, 1, e.blockN)
		ids[ev.GetAggregateIdentifier()] = true
		// One 70-byte block per event after the 5-byte header; the event's position is its length
		// prefix, 7 bytes into its block (Axon Server's index positions, e.g. 432 and 922).
		k := e.token % 14
		assert.Equal(t, 5+70*k, e.blockOff)
		assert.Equal(t, 12+70*k, e.offset)
	}
	assert.Len(t, ids, 28, "14 distinct aggregate ids per file")
}

func TestSegmentsThreeSegmentsEvents(t *testing.T) {
	d := readEvents(t, open(t, SegmentsOptions{Dir: fixture("three-segments")}), 0)
	require.NoError(t, d.err)
	require.Len(t, d.entries, 1386)
	perAggregate := map[string][]int64{}
	perFile := map[string]map[string]bool{}
	for i, e := range d.entries {
		ev := decode(t, e.data)
		assert.Equal(t, "MyAggregateType", ev.GetAggregateType())
		assert.Equal(t, "MyPayloadType", ev.GetPayload().GetType())
		assert.Empty(t, ev.GetPayload().GetRevision())
		assert.Empty(t, ev.GetMetaData())
		assert.False(t, ev.GetSnapshot())
		id := ev.GetAggregateIdentifier()
		perAggregate[id] = append(perAggregate[id], ev.GetAggregateSequenceNumber())
		if perFile[e.file] == nil {
			perFile[e.file] = map[string]bool{}
		}
		perFile[e.file][id] = true
		// Each block holds 2 consecutive events of one aggregate.
		require.Equal(t, 2, e.blockN)
		require.Equal(t, int(e.token%2), e.blockIdx)
		if e.blockIdx == 1 {
			prev := decode(t, d.entries[i-1].data)
			assert.Equal(t, prev.GetAggregateIdentifier(), id)
			assert.Equal(t, prev.GetAggregateSequenceNumber()+1, ev.GetAggregateSequenceNumber())
			assert.Equal(t, d.entries[i-1].blockOff, e.blockOff)
		}
	}
	assert.Len(t, perFile, 3)
	for f, ids := range perFile {
		assert.Len(t, ids, 100, f)
	}
	maxSeq := int64(0)
	for id, seqs := range perAggregate {
		for i, s := range seqs {
			require.Equal(t, int64(i), s, "sequence numbers of %s start at 0 and are contiguous", id)
			maxSeq = max(maxSeq, s)
		}
	}
	assert.Equal(t, int64(13), maxSeq)
	assert.Len(t, perAggregate["Aggregate-1"], 14)
}

func TestSegmentsSnapshotFixture(t *testing.T) {
	d := readSnapshots(t, open(t, SegmentsOptions{Dir: fixture("snapshots")}))
	require.NoError(t, d.err)
	require.Len(t, d.entries, 924)
	perFile := map[string]map[string]bool{}
	seqOf := map[string]int64{}
	for i, e := range d.entries {
		require.Equal(t, int64(i), e.token)
		ev := decode(t, e.data)
		assert.False(t, ev.GetSnapshot(), "the snapshot flag is absent on disk")
		id := ev.GetAggregateIdentifier()
		if perFile[e.file] == nil {
			perFile[e.file] = map[string]bool{}
		}
		perFile[e.file][id] = true
		seqOf[id] = ev.GetAggregateSequenceNumber()
	}
	require.Len(t, perFile, 2)
	for f, ids := range perFile {
		assert.Len(t, ids, 231, f)
	}
	for id := range perFile["00000000000000000000.snapshots"] {
		assert.False(t, perFile["00000000000000000462.snapshots"][id], "%s in both files", id)
	}
	assert.Equal(t, int64(1), seqOf["Aggregate-325"])
	assert.Equal(t, int64(1), seqOf["Aggregate-360"])
}

func TestSegmentsFromToken(t *testing.T) {
	s := open(t, SegmentsOptions{Dir: fixture("three-segments")})
	all := readEvents(t, s, 0)
	require.NoError(t, all.err)
	tests := []struct {
		name  string
		from  int64
		first int64
		n     int
	}{
		{"negative", -5, 0, 1386},
		{"start", 0, 0, 1386},
		{"inside block", 1, 1, 1385},
		{"first file boundary", 462, 462, 924},
		{"middle of second file", 700, 700, 686},
		{"last token", 1385, 1385, 1},
		{"past the end", 1386, 0, 0},
		{"far past the end", 1 << 40, 0, 0},
	}
	// Files wholly before fromToken are not even opened: garbage in the first file does not matter.
	dir := segmenttest.CopyDir(t, fixture("three-segments"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, segmenttest.Name(0, segmenttest.Events)), []byte("garbage"), 0o644))
	skipped := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 462)
	require.NoError(t, skipped.err)
	assert.Equal(t, all.entries[462:], skipped.entries)

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := readEvents(t, s, tc.from)
			require.NoError(t, d.err)
			require.Len(t, d.entries, tc.n)
			assert.Equal(t, int64(1386), d.next)
			if tc.n > 0 {
				assert.Equal(t, tc.first, d.entries[0].token)
				assert.Equal(t, all.entries[tc.first:], d.entries)
			}
		})
	}
}

func TestSegmentsOpen(t *testing.T) {
	t.Run("dir with both kinds", func(t *testing.T) {
		dir := t.TempDir()
		copyInto(t, dir, fixture("three-segments"))
		copyInto(t, dir, fixture("snapshots"))
		s := open(t, SegmentsOptions{Dir: dir})
		assert.Len(t, s.EventFiles(), 3)
		assert.Len(t, s.SnapshotFiles(), 2)
		assert.Empty(t, s.Notes())
		ev := readEvents(t, s, 0)
		require.NoError(t, ev.err)
		assert.Len(t, ev.entries, 1386)
		sn := readSnapshots(t, s)
		require.NoError(t, sn.err)
		assert.Len(t, sn.entries, 924)
	})
	t.Run("separate dirs", func(t *testing.T) {
		s := open(t, SegmentsOptions{EventsDir: fixture("legacy-v0"), SnapshotsDir: fixture("snapshots")})
		assert.Len(t, s.EventFiles(), 2)
		assert.Len(t, s.SnapshotFiles(), 2)
		s = open(t, SegmentsOptions{EventsDir: fixture("legacy-v0")})
		assert.Empty(t, s.SnapshotFiles())
		assert.Empty(t, s.SnapshotsDir())
	})
	t.Run("dir with one kind overridden", func(t *testing.T) {
		s := open(t, SegmentsOptions{Dir: fixture("three-segments"), SnapshotsDir: fixture("snapshots")})
		assert.Len(t, s.EventFiles(), 3)
		assert.Len(t, s.SnapshotFiles(), 2)
	})
	t.Run("no dir", func(t *testing.T) {
		_, err := OpenSegments(SegmentsOptions{})
		require.Error(t, err)
	})
	t.Run("missing dir", func(t *testing.T) {
		_, err := OpenSegments(SegmentsOptions{Dir: filepath.Join(t.TempDir(), "nope")})
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("empty dir", func(t *testing.T) {
		_, err := OpenSegments(SegmentsOptions{Dir: t.TempDir()})
		require.ErrorIs(t, err, ErrNoSegments)
	})
	t.Run("explicit events dir without events", func(t *testing.T) {
		_, err := OpenSegments(SegmentsOptions{EventsDir: fixture("snapshots")})
		require.ErrorIs(t, err, ErrNoSegments)
	})
	t.Run("parent of the context dir", func(t *testing.T) {
		_, err := OpenSegments(SegmentsOptions{Dir: filepath.Join(fixtures, "legacy-v0")})
		require.ErrorIs(t, err, ErrNoSegments)
		assert.Contains(t, err.Error(), filepath.Join(fixtures, "legacy-v0", "default"), "the error points at the context dir")
	})
	t.Run("other files", func(t *testing.T) {
		dir := t.TempDir()
		copyInto(t, dir, fixture("legacy-v0"))
		for _, name := range []string{
			"00000000000000000000.index", "00000000000000000000.bloom", "00000000000000000000.nindex",
			"00000000000000000000.xref", "00000000000000000000.sindex", "00000000000000000000.sbloom",
			"00000000000000000000.index.temp", "00000000000000000014.events.temp", "axonserver-controldb.mv.db",
		} {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("not a segment"), 0o644))
		}
		s := open(t, SegmentsOptions{Dir: dir})
		assert.Len(t, s.EventFiles(), 2)
		assert.Empty(t, s.Notes(), "index, bloom and temp files are ignored silently")

		// An entry named like a data file that is none makes the directory unusable: skipped, it would
		// let a copy that lacks data pass as intact.
		for _, odd := range []string{"backup.events", "123.events", "00000000000000000099.events", "99999999999999999999.events"} {
			path := filepath.Join(dir, odd)
			if odd == "00000000000000000099.events" {
				require.NoError(t, os.Mkdir(path, 0o755))
			} else {
				require.NoError(t, os.WriteFile(path, nil, 0o644))
			}
			_, err := OpenSegments(SegmentsOptions{Dir: dir})
			require.ErrorIs(t, err, ErrNotSegment, odd)
			var se *SegmentError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, path, se.File)
			require.NoError(t, os.Remove(path))
		}
	})
	t.Run("14-digit names", func(t *testing.T) {
		dir := t.TempDir()
		copyInto(t, dir, fixture("legacy-v0"))
		require.NoError(t, os.Rename(filepath.Join(dir, "00000000000000000014.events"), filepath.Join(dir, "00000000000014.events")))
		s := open(t, SegmentsOptions{Dir: dir})
		require.Len(t, s.EventFiles(), 2)
		assert.Equal(t, int64(14), s.EventFiles()[1].First)
		assert.Len(t, s.Notes(), 1)
		d := readEvents(t, s, 0)
		require.NoError(t, d.err)
		assert.Len(t, d.entries, 28)

		copyInto(t, dir, fixture("legacy-v0")) // now segment 14 has two names
		_, err := OpenSegments(SegmentsOptions{Dir: dir})
		require.ErrorIs(t, err, ErrOverlap)
	})
	t.Run("read-only files are enough", func(t *testing.T) {
		dir := t.TempDir()
		copyInto(t, dir, fixture("three-segments"))
		sums := map[string][32]byte{}
		for _, f := range open(t, SegmentsOptions{Dir: dir}).EventFiles() {
			b, err := os.ReadFile(f.Path)
			require.NoError(t, err)
			sums[f.Path] = sha256.Sum256(b)
			require.NoError(t, os.Chmod(f.Path, 0o444))
		}
		d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
		require.NoError(t, d.err)
		_, err := CheckSegments(SegmentsOptions{Dir: dir})
		require.NoError(t, err)
		for path, sum := range sums {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, sum, sha256.Sum256(b), "%s unchanged", path)
		}
	})
	t.Run("store not starting at 0", func(t *testing.T) {
		dir := t.TempDir()
		copyInto(t, dir, fixture("three-segments"))
		require.NoError(t, os.Remove(filepath.Join(dir, "00000000000000000000.events")))
		s := open(t, SegmentsOptions{Dir: dir})
		assert.Len(t, s.Notes(), 1, "retention is allowed but reported")
		d := readEvents(t, s, 0)
		require.NoError(t, d.err)
		require.Len(t, d.entries, 924)
		assert.Equal(t, int64(462), d.entries[0].token)
	})
}

func TestSegmentsContextCancel(t *testing.T) {
	s := open(t, SegmentsOptions{Dir: fixture("three-segments")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	it := s.Events(ctx, 0)
	defer it.Close()
	n := 0
	for it.Next() {
		if n++; n == 10 {
			cancel()
		}
	}
	require.ErrorIs(t, it.Err(), context.Canceled)
	assert.Less(t, n, 20, "stops within a block of the cancellation")
}

func TestSegmentsCloseEarly(t *testing.T) {
	s := open(t, SegmentsOptions{Dir: fixture("three-segments")})
	it := s.Events(context.Background(), 0)
	require.True(t, it.Next())
	require.NoError(t, it.Close())
	require.NoError(t, it.Close())
	assert.False(t, it.Next())
	assert.NoError(t, it.Err())
	assert.Nil(t, it.it.f, "no file left open")
}

// TestSegmentsManySegments reads a generated store of many pre-allocated segments and checks that memory
// stays bounded: the reader's buffers do not grow with the store.
func TestSegmentsManySegments(t *testing.T) {
	dir := t.TempDir()
	st, err := segmenttest.WriteStore(dir, segmenttest.StoreOptions{Entries: 20000, PerBlock: 3, SegmentSize: 64 << 10})
	require.NoError(t, err)
	require.Greater(t, len(st.Files), 50)
	s := open(t, SegmentsOptions{Dir: dir})
	it := s.Events(context.Background(), 0)
	defer it.Close()
	var n int64
	var ev axonpb.Event
	for it.Next() {
		require.Equal(t, n, it.Token())
		if n%997 == 0 {
			require.NoError(t, proto.Unmarshal(it.Event(), &ev))
			require.Equal(t, "evt-"+strconv.FormatInt(n, 10), ev.GetMessageIdentifier())
		}
		n++
	}
	require.NoError(t, it.Err())
	assert.Nil(t, it.TailCut())
	assert.Equal(t, st.Entries, n)
	assert.LessOrEqual(t, cap(it.it.sc.buf), 4<<10, "block buffer sized by the largest block, not the store")

	rep, err := CheckSegments(SegmentsOptions{Dir: dir})
	require.NoError(t, err)
	assert.Equal(t, VerdictIntact, rep.Verdict, rep.Summary)
	assert.Equal(t, st.Entries, rep.Events.Entries)
	assert.Equal(t, EndActive, rep.Events.Files[len(rep.Events.Files)-1].End)
}

// copyInto copies the regular files of src into dst.
func copyInto(t *testing.T, dst, src string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
	}
}

// TestSegmenttestReproducesFixtures checks the test writer against Axon Server: rewriting every fixture
// file's blocks with segmenttest gives the same bytes.
func TestSegmenttestReproducesFixtures(t *testing.T) {
	for _, name := range []string{"legacy-v0", "three-segments", "snapshots"} {
		rep, err := CheckSegments(SegmentsOptions{Dir: fixture(name)})
		require.NoError(t, err)
		s := open(t, SegmentsOptions{Dir: fixture(name)})
		all := readEvents(t, s, 0)
		files := rep.Events.Files
		if len(files) == 0 {
			all = readSnapshots(t, s)
			files = rep.Snapshots.Files
		}
		require.NoError(t, all.err)
		for _, f := range files {
			var blocks [][][]byte
			for _, e := range all.entries {
				if e.file != f.Name {
					continue
				}
				if e.blockIdx == 0 {
					blocks = append(blocks, nil)
				}
				blocks[len(blocks)-1] = append(blocks[len(blocks)-1], e.data)
			}
			path := filepath.Join(t.TempDir(), f.Name)
			lay, err := segmenttest.WriteSegment(path, byte(f.Version), blocks, &segmenttest.Options{Flags: f.Flags, Marker: -1, Size: f.Size})
			require.NoError(t, err)
			assert.Equal(t, f.EndOffset, lay.End)
			want, err := os.ReadFile(f.Path)
			require.NoError(t, err)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.True(t, bytes.Equal(want, got), "%s rewritten differs", f.Name)
		}
	}
}
