package reader

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/segmenttest"
)

// damageStore is a small generated store of three files, 4 blocks of 3 events each: tokens 0–11, 12–23 and
// 24–35. The older files end with -1, the newest with 0, all pre-allocated to 4096 bytes.
type damageStore struct {
	dir   string
	paths [3]string
	lays  [3]*segmenttest.Layout
}

func newDamageStore(t *testing.T) *damageStore {
	t.Helper()
	ds := &damageStore{dir: t.TempDir()}
	for i := range 3 {
		first := int64(12 * i)
		var blocks [][][]byte
		for b := range 4 {
			var evs [][]byte
			for e := range 3 {
				evs = append(evs, segmenttest.SampleEvent(nil, first+int64(3*b+e), 40))
			}
			blocks = append(blocks, evs)
		}
		marker := int32(-1)
		if i == 2 {
			marker = 0
		}
		ds.paths[i] = filepath.Join(ds.dir, segmenttest.Name(first, segmenttest.Events))
		lay, err := segmenttest.WriteSegment(ds.paths[i], 2, blocks, &segmenttest.Options{Size: 4096, Marker: marker})
		require.NoError(t, err)
		ds.lays[i] = lay
	}
	return ds
}

func TestSegmentsDamage(t *testing.T) {
	type want struct {
		err      error // sentinel, or nil
		cut      error // sentinel of the tail cut, or nil
		file     int   // index of the file named by the error or cut
		offset   int64
		token    int64
		gap      *GapError // expected range of a gap
		blockAt  int64     // first token of the damaged block, when token names an event inside it
		verdict  Verdict
		maxBlock int64
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, ds *damageStore) want
	}{
		{"intact", func(t *testing.T, ds *damageStore) want {
			return want{verdict: VerdictIntact}
		}},
		{"flipped bit in an event of an older file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[1]
			require.NoError(t, segmenttest.FlipBit(ds.paths[0], b.Events[1]+4+10, 3))
			return want{err: ErrChecksum, file: 0, offset: b.Offset, token: 3}
		}},
		{"flipped bit in an event in the middle of the newest file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[1]
			require.NoError(t, segmenttest.FlipBit(ds.paths[2], b.Events[0]+4, 0))
			return want{err: ErrChecksum, file: 2, offset: b.Offset, token: 27}
		}},
		{"flipped bit in the final block of the newest file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[3]
			require.NoError(t, segmenttest.FlipBit(ds.paths[2], b.Events[2]+4+5, 6))
			return want{cut: ErrChecksum, file: 2, offset: b.Offset, token: 33}
		}},
		{"flipped bit in a checksum of an older file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[1].Blocks[2]
			require.NoError(t, segmenttest.FlipBit(ds.paths[1], b.Checksum, 7))
			return want{err: ErrChecksum, file: 1, offset: b.Offset, token: 18}
		}},
		{"flipped bit in the final checksum of the newest file, at its end", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[3]
			require.NoError(t, os.Truncate(ds.paths[2], ds.lays[2].End))
			require.NoError(t, segmenttest.FlipBit(ds.paths[2], b.Checksum+3, 0))
			return want{cut: ErrChecksum, file: 2, offset: b.Offset, token: 33}
		}},
		{"bad final checksum of the newest file followed by -1", func(t *testing.T, ds *damageStore) want {
			// The server closed the file after this block, so the block was complete: corruption.
			b := ds.lays[2].Blocks[3]
			require.NoError(t, segmenttest.PutInt32(ds.paths[2], ds.lays[2].End, -1))
			require.NoError(t, segmenttest.FlipBit(ds.paths[2], b.Checksum, 0))
			return want{err: ErrChecksum, file: 2, offset: b.Offset, token: 33}
		}},
		{"event length past the end of the file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[1]
			require.NoError(t, segmenttest.PutInt32(ds.paths[0], b.Events[0], 1<<30))
			return want{err: ErrCorrupt, file: 0, offset: b.Events[0], token: 3, blockAt: 3}
		}},
		{"event length past the end of the final block of the newest file", func(t *testing.T, ds *damageStore) want {
			// A damaged structure is not a torn copy: error even at the tail.
			b := ds.lays[2].Blocks[3]
			require.NoError(t, segmenttest.PutInt32(ds.paths[2], b.Events[1], 1<<20))
			return want{err: ErrCorrupt, file: 2, offset: b.Events[1], token: 34, blockAt: 33}
		}},
		{"negative event length", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[1].Blocks[0]
			require.NoError(t, segmenttest.PutInt32(ds.paths[1], b.Events[2], -3))
			return want{err: ErrCorrupt, file: 1, offset: b.Events[2], token: 14, blockAt: 12}
		}},
		{"block size past the end of the file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[1]
			require.NoError(t, segmenttest.PutInt32(ds.paths[0], b.Offset, 1<<30))
			return want{err: ErrCorrupt, file: 0, offset: b.Offset, token: 3}
		}},
		{"block size past the end in the final block of the newest file", func(t *testing.T, ds *damageStore) want {
			// Its entries end inside the file, with a valid checksum: the size field is damaged.
			b := ds.lays[2].Blocks[3]
			require.NoError(t, segmenttest.PutInt32(ds.paths[2], b.Offset, 1<<30))
			return want{err: ErrCorrupt, file: 2, offset: b.Offset, token: 33}
		}},
		{"block size too small", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[2]
			require.NoError(t, segmenttest.PutInt32(ds.paths[0], b.Offset, int32(b.Size-1)))
			return want{err: ErrCorrupt, file: 0, offset: b.Events[2], token: 8, blockAt: 6}
		}},
		{"negative block size", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[1].Blocks[0]
			require.NoError(t, segmenttest.PutInt32(ds.paths[1], b.Offset, -7))
			return want{err: ErrCorrupt, file: 1, offset: b.Offset, token: 12}
		}},
		{"unknown end marker", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, segmenttest.PutInt32(ds.paths[0], ds.lays[0].End, -2))
			return want{err: ErrCorrupt, file: 0, offset: ds.lays[0].End, token: 12}
		}},
		{"zero event count", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[2]
			require.NoError(t, segmenttest.WriteAt(ds.paths[0], b.Offset+5, []byte{0, 0}))
			return want{err: ErrCorrupt, file: 0, offset: b.Offset + 5, token: 6}
		}},
		{"negative event count", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[2]
			require.NoError(t, segmenttest.WriteAt(ds.paths[0], b.Offset+5, []byte{0x80, 3}))
			return want{err: ErrCorrupt, file: 0, offset: b.Offset + 5, token: 6}
		}},
		{"event count too high", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[2]
			require.NoError(t, segmenttest.WriteAt(ds.paths[0], b.Offset+5, []byte{0, 4}))
			return want{err: ErrCorrupt, file: 0, offset: b.Offset, token: 6}
		}},
		{"event count too low", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[0].Blocks[2]
			require.NoError(t, segmenttest.WriteAt(ds.paths[0], b.Offset+5, []byte{0, 2}))
			return want{err: ErrCorrupt, file: 0, offset: b.Offset, token: 6}
		}},
		{"zero-length middle file", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Truncate(ds.paths[1], 0))
			return want{err: ErrTruncated, file: 1, offset: 0, token: 12}
		}},
		{"zero-length newest file", func(t *testing.T, ds *damageStore) want {
			// Not even a header: not a segment Axon Server could have left, so an error, not a cut.
			require.NoError(t, os.Truncate(ds.paths[2], 0))
			return want{err: ErrTruncated, file: 2, offset: 0, token: 24}
		}},
		{"short header", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Truncate(ds.paths[0], 3))
			return want{err: ErrTruncated, file: 0, offset: 0, token: 0}
		}},
		{"header-only middle file", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Truncate(ds.paths[1], 5))
			return want{err: ErrGap, file: 2, offset: 0, token: 12, gap: &GapError{From: 12, To: 23}}
		}},
		{"header-only newest file", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Truncate(ds.paths[2], 5))
			return want{cut: ErrTruncated, file: 2, offset: 5, token: 24}
		}},
		{"missing middle file", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Remove(ds.paths[1]))
			return want{err: ErrGap, file: 2, offset: 0, token: 12, gap: &GapError{From: 12, To: 23}}
		}},
		{"file renamed to a later token", func(t *testing.T, ds *damageStore) want {
			to := filepath.Join(ds.dir, segmenttest.Name(20, segmenttest.Events))
			require.NoError(t, os.Rename(ds.paths[1], to))
			ds.paths[1] = to
			return want{err: ErrGap, file: 1, offset: 0, token: 12, gap: &GapError{From: 12, To: 19}}
		}},
		{"file renamed to an earlier token", func(t *testing.T, ds *damageStore) want {
			to := filepath.Join(ds.dir, segmenttest.Name(20, segmenttest.Events))
			require.NoError(t, os.Rename(ds.paths[2], to))
			ds.paths[2] = to
			return want{err: ErrOverlap, file: 2, offset: 0, token: 20}
		}},
		{"stale bytes after the end markers", func(t *testing.T, ds *damageStore) want {
			// Garbage after -1, and a whole valid-looking block after 0: neither may be read.
			require.NoError(t, segmenttest.WriteAt(ds.paths[0], ds.lays[0].End+4, []byte{0xde, 0xad, 0xbe, 0xef, 0xff, 0xff}))
			stale, _ := segmenttest.AppendBlock(nil, 2, [][]byte{segmenttest.SampleEvent(nil, 99, 10)})
			require.NoError(t, segmenttest.WriteAt(ds.paths[2], ds.lays[2].End+4, stale))
			require.NoError(t, segmenttest.WriteAt(ds.paths[1], ds.lays[1].End+4, []byte{0x80, 0, 0, 0}))
			return want{verdict: VerdictIntact}
		}},
		{"non-zero flags in a version-2 file", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, segmenttest.WriteAt(ds.paths[1], 1, []byte{0, 0, 0, 1}))
			return want{err: ErrUnsupported, file: 1, offset: 1, token: 12}
		}},
		{"unknown file version", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, segmenttest.WriteAt(ds.paths[0], 0, []byte{1}))
			return want{err: ErrUnsupported, file: 0, offset: 0, token: 0}
		}},
		{"truncated final block of the newest file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[3]
			require.NoError(t, os.Truncate(ds.paths[2], b.Offset+20))
			return want{cut: ErrTruncated, file: 2, offset: b.Offset, token: 33}
		}},
		{"newest file cut inside the final checksum", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[3]
			require.NoError(t, os.Truncate(ds.paths[2], b.Checksum+2))
			return want{cut: ErrTruncated, file: 2, offset: b.Offset, token: 33}
		}},
		{"newest file cut inside a block header", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[3]
			require.NoError(t, os.Truncate(ds.paths[2], b.Offset+5))
			return want{cut: ErrTruncated, file: 2, offset: b.Offset, token: 33}
		}},
		{"newest file cut inside a size field", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[2].Blocks[2]
			require.NoError(t, os.Truncate(ds.paths[2], b.Offset+2))
			return want{cut: ErrTruncated, file: 2, offset: b.Offset, token: 30}
		}},
		{"newest file without an end marker", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Truncate(ds.paths[2], ds.lays[2].End))
			return want{cut: ErrTruncated, file: 2, offset: ds.lays[2].End, token: 36}
		}},
		{"truncated block in an older file", func(t *testing.T, ds *damageStore) want {
			b := ds.lays[1].Blocks[3]
			require.NoError(t, os.Truncate(ds.paths[1], b.Offset+20))
			return want{err: ErrTruncated, file: 1, offset: b.Offset, token: 21}
		}},
		{"older file cut at a block boundary", func(t *testing.T, ds *damageStore) want {
			require.NoError(t, os.Truncate(ds.paths[1], ds.lays[1].Blocks[3].Offset))
			return want{err: ErrGap, file: 2, offset: 0, token: 21, gap: &GapError{From: 21, To: 23}}
		}},
		{"block over the size limit", func(t *testing.T, ds *damageStore) want {
			return want{err: ErrTooLarge, file: 0, offset: 5, token: 0, maxBlock: 64}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDamageStore(t)
			w := tc.damage(t, ds)
			opts := SegmentsOptions{Dir: ds.dir, MaxBlockSize: w.maxBlock}
			s := open(t, opts)
			d := readEvents(t, s, 0)

			// Every event before the damage is delivered, in order, and nothing after it.
			delivered := w.token
			if w.blockAt != 0 {
				delivered = w.blockAt
			}
			if w.err == nil && w.cut == nil {
				delivered = 36
			}
			if w.gap != nil {
				delivered = w.gap.From
			}
			if w.err == ErrOverlap {
				delivered = 24
			}
			require.Equal(t, int(delivered), len(d.entries), "events delivered")
			for i, e := range d.entries {
				require.Equal(t, int64(i), e.token)
			}

			rep, err := CheckSegments(opts)
			require.NoError(t, err)
			switch {
			case w.err != nil:
				require.ErrorIs(t, d.err, w.err)
				var se *SegmentError
				require.ErrorAs(t, d.err, &se)
				assert.Equal(t, ds.paths[w.file], se.File)
				assert.Equal(t, w.offset, se.Offset)
				assert.Equal(t, w.token, se.Token)
				assert.Equal(t, EventSegments, se.Kind)
				if w.gap != nil {
					var gap *GapError
					require.ErrorAs(t, d.err, &gap)
					assert.Equal(t, w.gap.From, gap.From)
					assert.Equal(t, w.gap.To, gap.To)
				}
				assert.Nil(t, d.cut)
				assert.Equal(t, VerdictDamaged, rep.Verdict, rep.Summary)
				require.NotEmpty(t, rep.Events.Problems)
				p := rep.Events.Problems[0]
				assert.ErrorIs(t, p.Err, w.err)
				assert.Equal(t, ds.paths[w.file], p.File)
				assert.Equal(t, w.offset, p.Offset)
			case w.cut != nil:
				require.NoError(t, d.err)
				require.NotNil(t, d.cut)
				assert.ErrorIs(t, d.cut.Err, w.cut)
				assert.Equal(t, ds.paths[w.file], d.cut.File)
				assert.Equal(t, w.offset, d.cut.Offset)
				assert.Equal(t, w.token, d.cut.Token)
				assert.Equal(t, w.token, d.next)
				assert.Equal(t, VerdictTailCut, rep.Verdict, rep.Summary)
				assert.Empty(t, rep.Events.Problems)
				require.NotNil(t, rep.Events.TailCut)
				assert.Equal(t, *d.cut, *rep.Events.TailCut)
				assert.Equal(t, EndTailCut == rep.Events.Files[2].End || EndNoMarker == rep.Events.Files[2].End, true)
			default:
				require.NoError(t, d.err)
				assert.Nil(t, d.cut)
				assert.Equal(t, int64(36), d.next)
				assert.Equal(t, w.verdict, rep.Verdict, rep.Summary)
			}

			// The report always renders and marshals.
			var text strings.Builder
			require.NoError(t, rep.WriteText(&text))
			assert.Contains(t, text.String(), "verdict: "+string(rep.Verdict))
			js, err := json.Marshal(rep)
			require.NoError(t, err)
			var back map[string]any
			require.NoError(t, json.Unmarshal(js, &back))
			assert.Equal(t, string(rep.Verdict), back["verdict"])
		})
	}
}

// TestSegmentsDamagedFixtures damages copies of the real files.
func TestSegmentsDamagedFixtures(t *testing.T) {
	intact := readEvents(t, open(t, SegmentsOptions{Dir: fixture("three-segments")}), 0)
	require.NoError(t, intact.err)
	offsetOf := func(token int64) (event, block int64) {
		e := intact.entries[token]
		return e.offset, e.blockOff
	}
	name := func(n int64) string { return segmenttest.Name(n, segmenttest.Events) }

	t.Run("missing middle file", func(t *testing.T) {
		dir := segmenttest.CopyDir(t, fixture("three-segments"))
		require.NoError(t, os.Remove(filepath.Join(dir, name(462))))
		d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
		var gap *GapError
		require.ErrorAs(t, d.err, &gap)
		assert.Equal(t, int64(462), gap.From)
		assert.Equal(t, int64(923), gap.To)
		assert.Len(t, d.entries, 462)

		rep, err := CheckSegments(SegmentsOptions{Dir: dir})
		require.NoError(t, err)
		assert.Equal(t, VerdictDamaged, rep.Verdict)
		require.Len(t, rep.Events.Problems, 1)
		p := rep.Events.Problems[0]
		assert.Equal(t, "gap", p.Cause)
		assert.Equal(t, int64(462), p.First)
		require.NotNil(t, p.Last)
		assert.Equal(t, int64(923), *p.Last)
	})
	t.Run("flipped bit in an event of the first file", func(t *testing.T) {
		dir := segmenttest.CopyDir(t, fixture("three-segments"))
		ev, block := offsetOf(101) // second event of the block holding tokens 100 and 101
		require.NoError(t, segmenttest.FlipBit(filepath.Join(dir, name(0)), ev+4+2, 1))
		d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
		require.ErrorIs(t, d.err, ErrChecksum)
		var se *SegmentError
		require.ErrorAs(t, d.err, &se)
		assert.Equal(t, filepath.Join(dir, name(0)), se.File)
		assert.Equal(t, block, se.Offset)
		assert.Equal(t, int64(100), se.Token)
		assert.Len(t, d.entries, 100)

		// The checker goes on past the damage and reports the rest.
		rep, err := CheckSegments(SegmentsOptions{Dir: dir})
		require.NoError(t, err)
		require.Len(t, rep.Events.Problems, 1)
		p := rep.Events.Problems[0]
		assert.Equal(t, "checksum", p.Cause)
		assert.Equal(t, int64(100), p.First)
		require.NotNil(t, p.Last)
		assert.Equal(t, int64(461), *p.Last)
		assert.Equal(t, ChecksumsMismatch, rep.Events.Files[0].Checksums)
		assert.Equal(t, EndCorrupt, rep.Events.Files[0].End)
		assert.Equal(t, ChecksumsOK, rep.Events.Files[1].Checksums)
		assert.Equal(t, ChecksumsOK, rep.Events.Files[2].Checksums)
		assert.Equal(t, int64(100+462+462), rep.Events.Entries)
	})
	t.Run("newest file cut in its final block", func(t *testing.T) {
		dir := segmenttest.CopyDir(t, fixture("three-segments"))
		_, block := offsetOf(1384)
		require.NoError(t, os.Truncate(filepath.Join(dir, name(924)), block+30))
		d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
		require.NoError(t, d.err)
		require.NotNil(t, d.cut)
		assert.ErrorIs(t, d.cut.Err, ErrTruncated)
		assert.Equal(t, block, d.cut.Offset)
		assert.Equal(t, int64(1384), d.cut.Token)
		assert.Len(t, d.entries, 1384)
		assert.Equal(t, intact.entries[:1384], d.entries)
	})
	t.Run("older file cut in a block", func(t *testing.T) {
		dir := segmenttest.CopyDir(t, fixture("three-segments"))
		_, block := offsetOf(900)
		require.NoError(t, os.Truncate(filepath.Join(dir, name(462)), block+30))
		d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
		require.ErrorIs(t, d.err, ErrTruncated)
		var se *SegmentError
		require.ErrorAs(t, d.err, &se)
		assert.Equal(t, filepath.Join(dir, name(462)), se.File)
		assert.Equal(t, block, se.Offset)
		assert.Equal(t, int64(900), se.Token)
	})
	t.Run("legacy file with stale bytes after its -1", func(t *testing.T) {
		dir := segmenttest.CopyDir(t, fixture("legacy-v0"))
		require.NoError(t, segmenttest.WriteAt(filepath.Join(dir, name(0)), 989, []byte("stale stale stale")))
		d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
		require.NoError(t, d.err)
		assert.Len(t, d.entries, 28)
	})
	t.Run("snapshot file with a bad checksum", func(t *testing.T) {
		dir := segmenttest.CopyDir(t, fixture("snapshots"))
		require.NoError(t, segmenttest.FlipBit(filepath.Join(dir, segmenttest.Name(0, segmenttest.Snapshots)), 200, 4))
		d := readSnapshots(t, open(t, SegmentsOptions{Dir: dir}))
		require.ErrorIs(t, d.err, ErrChecksum)
		var se *SegmentError
		require.ErrorAs(t, d.err, &se)
		assert.Equal(t, SnapshotSegments, se.Kind)
		assert.Contains(t, se.Error(), "position")
	})
}

// TestSegmentsFlagsRefused: a version-2 file with header flags set is refused, and the error says why in
// words a user can act on (the store may be compressed or encrypted); the legacy version-0 files, whose
// flags hold junk that Axon Server ignores, are read.
func TestSegmentsFlagsRefused(t *testing.T) {
	dir := segmenttest.CopyDir(t, fixture("three-segments"))
	path := filepath.Join(dir, segmenttest.Name(462, segmenttest.Events))
	require.NoError(t, segmenttest.WriteAt(path, 1, []byte{0x00, 0x00, 0x01, 0x00}))
	d := readEvents(t, open(t, SegmentsOptions{Dir: dir}), 0)
	require.ErrorIs(t, d.err, ErrUnsupported)
	var se *SegmentError
	require.ErrorAs(t, d.err, &se)
	assert.Equal(t, path, se.File)
	assert.Equal(t, int64(1), se.Offset)
	assert.Equal(t, int64(462), se.Token)
	assert.Contains(t, d.err.Error(), "compressed or encrypted")
	assert.Contains(t, d.err.Error(), "0x00000100")
	assert.Len(t, d.entries, 462)

	rep, err := CheckSegments(SegmentsOptions{Dir: dir})
	require.NoError(t, err)
	assert.Equal(t, VerdictDamaged, rep.Verdict)
	var text strings.Builder
	require.NoError(t, rep.WriteText(&text))
	assert.Contains(t, text.String(), "compressed or encrypted")

	legacy := readEvents(t, open(t, SegmentsOptions{Dir: fixture("legacy-v0")}), 0)
	require.NoError(t, legacy.err)
	assert.Len(t, legacy.entries, 28)
}
