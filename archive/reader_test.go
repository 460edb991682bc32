package archive

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadVectors iterates over the streams of every vector that opens.
func TestReadVectors(t *testing.T) {
	tests := []struct {
		dir                   string
		wantEvents, wantSnaps int
		wantErr               error // from the iteration
	}{
		{"golden", 37, 3, nil},
		{"golden-incremental", 10, 0, nil},
		{"bad-flipped-bit", 0, 3, ErrCorrupt},
		{"bad-truncated-chunk", 0, 3, ErrCorrupt},
		{"bad-missing-chunk", 8, 3, ErrCorrupt},
		{"bad-unlisted-file", 37, 3, nil}, // readers read what is listed; Verify reports the rest
		{"bad-noncanonical-record", 37, 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			a := mustOpen(t, filepath.Join(vectorsDir, tc.dir))
			it := a.Events(context.Background(), 0)
			n := 0
			for it.Next() {
				n++
			}
			it.Close()
			assert.Equal(t, tc.wantEvents, n)
			if tc.wantErr != nil {
				require.ErrorIs(t, it.Err(), tc.wantErr)
				var ae *Error
				require.ErrorAs(t, it.Err(), &ae)
				assert.True(t, strings.HasPrefix(ae.Path, "data/events/"), ae.Path)
			} else {
				require.NoError(t, it.Err())
			}
			assert.Len(t, readAll(t, a, manifest.StreamSnapshots), tc.wantSnaps)
		})
	}
}

// TestRecordsRoundTrip reads back every record the golden archive was written from.
func TestRecordsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	a := mustOpen(t, dir)
	want := append(edgeEvents(0), plainEvents(19, 21)...)
	it := a.Events(context.Background(), math.MinInt64)
	defer it.Close()
	i := 0
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		w := want[i]
		assert.Equal(t, AppendEventJSON(nil, &w), AppendEventJSON(nil, r))
		assert.Equal(t, w.Token, it.Token())
		assert.Equal(t, string(AppendEventJSON(nil, &w)), string(it.Line()))
		// Doubles keep their bits (NaN payloads, -0).
		for k := range w.Metadata {
			if w.Metadata[k].Kind == MetaDouble {
				assert.Equal(t, math.Float64bits(w.Metadata[k].Double), math.Float64bits(r.Metadata[k].Double))
			}
		}
		i++
	}
	require.NoError(t, it.Err())
	assert.Equal(t, len(want), i)

	snaps := a.Snapshots(context.Background())
	defer snaps.Close()
	var got []int64
	for snaps.Next() {
		r, err := snaps.Record()
		require.NoError(t, err)
		got = append(got, r.Token)
	}
	require.NoError(t, snaps.Err())
	assert.Equal(t, []int64{0, 2, 5}, got)
}

func TestEventsFrom(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	a := mustOpen(t, dir)
	for _, tc := range []struct {
		from  int64
		first int64
		n     int
	}{
		{math.MinInt64, 0, 37},
		{0, 0, 37},
		{5, 5, 32},
		{8, 8, 29},
		{16, 19, 21}, // inside the gap
		{39, 39, 1},
		{40, -1, 0},
	} {
		it := a.Events(context.Background(), tc.from)
		n, first := 0, int64(-1)
		for it.Next() {
			if n == 0 {
				first = it.Token()
			}
			n++
		}
		require.NoError(t, it.Err(), "from %d", tc.from)
		it.Close()
		assert.Equal(t, tc.n, n, "from %d", tc.from)
		assert.Equal(t, tc.first, first, "from %d", tc.from)
	}
	it := a.SnapshotsFrom(context.Background(), 1)
	require.True(t, it.Next())
	assert.Equal(t, int64(2), it.Token())
	it.Close()
}

func TestIteratorErrors(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		wantErr  error
		wantPath string
		wantLine int64
	}{
		{"flipped bit", func(t *testing.T, dir string) { flipBit(t, filepath.Join(dir, chunk1), 60) }, ErrCorrupt, chunk1, 0},
		{"duplicate token", func(t *testing.T, dir string) { rewriteChunk(t, dir, 1, lines(8, 9, 9, 11, 12, 13, 14, 15), nil) }, ErrSequence, chunk1, 3},
		{"wrong record count", func(t *testing.T, dir string) { rewriteChunk(t, dir, 1, lines(8, 9, 10, 11, 12, 13, 15), nil) }, ErrCorrupt, chunk1, 0},
		{"wrong first token", func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 1, lines(9, 10, 11, 12, 13, 14, 15), nil)
		}, ErrCorrupt, chunk1, 0},
		{"events digest", func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) {
				m.Events.SHA256 = strings.Repeat("1", 64)
				m.Fingerprint, _ = combineDigests(m.Events.SHA256, m.Snapshots.SHA256)
			})
		}, ErrCorrupt, manifestPath, 0},
		{"chunk missing", func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, chunk1))) }, ErrCorrupt, chunk1, 0},
		{"truncated chunk, manifest resealed", func(t *testing.T, dir string) {
			p := filepath.Join(dir, chunk1)
			truncate(t, p, 100)
			zb, _ := os.ReadFile(p)
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].Size, m.Chunks[1].SHA256 = 100, sha256hex(zb) })
		}, ErrCorrupt, chunk1, 0},
		{"rawSha256", func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].RawSHA256 = strings.Repeat("0", 64) })
		}, ErrCorrupt, chunk1, 0},
		{"rawSize", func(t *testing.T, dir string) {
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].RawSize-- })
		}, ErrCorrupt, chunk1, 0},
		{"last token of the stream missing", func(t *testing.T, dir string) {
			rewriteChunk(t, dir, 4, lines(35, 36, 37, 38), nil)
		}, ErrCorrupt, "data/events/00000000000000000035.jsonl.zst", 0},
		{"line without token", func(t *testing.T, dir string) {
			raw := chunkRaw(t, dir, 1)
			rewriteChunk(t, dir, 1, bytes.Replace(raw, []byte(`{"token":9,`), []byte(`{"tokens":9,`), 1), nil)
		}, ErrRecord, chunk1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			goldenArchive(t, dir)
			tc.damage(t, dir)
			it := mustOpen(t, dir).Events(context.Background(), 0)
			for it.Next() {
			}
			require.ErrorIs(t, it.Err(), tc.wantErr)
			var ae *Error
			require.ErrorAs(t, it.Err(), &ae)
			assert.Equal(t, tc.wantPath, ae.Path)
			assert.Equal(t, tc.wantLine, ae.Line)
			require.NoError(t, it.Close())
			require.NoError(t, it.Close())
			assert.False(t, it.Next())
		})
	}
}

// A non-canonical line is reported by Record, and the iteration goes on.
func TestIteratorRecordError(t *testing.T) {
	dir := filepath.Join(vectorsDir, "bad-noncanonical-record")
	it := mustOpen(t, dir).Events(context.Background(), 0)
	defer it.Close()
	bad := 0
	for it.Next() {
		if _, err := it.Record(); err != nil {
			require.ErrorIs(t, err, ErrRecord)
			var ae *Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, Error{Path: chunk0, Line: 2, Token: 1, Err: ae.Err}, *ae)
			bad++
		}
	}
	require.NoError(t, it.Err())
	assert.Equal(t, 1, bad)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Open(t.TempDir())
	require.ErrorIs(t, err, ErrNotArchive)
	f := filepath.Join(t.TempDir(), "file")
	write(t, f, "x")
	_, err = Open(f)
	require.ErrorIs(t, err, ErrNotArchive)
	_, err = Open(filepath.Join(vectorsDir, "incomplete"))
	require.ErrorIs(t, err, ErrIncomplete)
	assert.Contains(t, err.Error(), "incomplete archive")
}

func TestIteratorCancelled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	evs := plainEvents(0, 1000)
	writeArchive(t, dir, testOptions(0, 999), evs, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	it := mustOpen(t, dir).Events(ctx, 0)
	defer it.Close()
	n := 0
	for it.Next() {
		if n++; n == 10 {
			cancel()
		}
	}
	require.ErrorIs(t, it.Err(), context.Canceled)
	assert.Less(t, n, 1000)
}

// After a full verification without problems, iterators stop hashing the decompressed lines, as the chunk
// files' digests stand for them: a chunk file changed after the verification is still caught, and a
// quick or failed verification, which proved nothing about the content, leaves the hashing on.
func TestIteratorAfterVerify(t *testing.T) {
	ctx := context.Background()
	readErr := func(a *Archive) error {
		it := a.Events(ctx, 0)
		defer it.Close()
		for it.Next() {
		}
		return it.Err()
	}
	t.Run("verified", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		goldenArchive(t, dir)
		a := mustOpen(t, dir)
		want := readAll(t, a, manifest.StreamEvents)
		_, err := a.Verify(ctx, VerifyOptions{})
		require.NoError(t, err)
		it := a.Events(ctx, 0)
		assert.True(t, it.contentVerified)
		assert.Nil(t, it.digest)
		require.NoError(t, it.Close())
		assert.Equal(t, want, readAll(t, a, manifest.StreamEvents))
	})
	t.Run("chunk replaced after the verification", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		goldenArchive(t, dir)
		a := mustOpen(t, dir)
		_, err := a.Verify(ctx, VerifyOptions{})
		require.NoError(t, err)
		// Same tokens, same number of lines, a valid frame: only the file's digest tells.
		raw := bytes.Replace(chunkRaw(t, dir, 1), []byte(`"messageId":"`), []byte(`"messageId":"x`), 1)
		require.NoError(t, os.WriteFile(filepath.Join(dir, chunk1), zstdCompress(raw), 0o644))
		err = readErr(a)
		require.ErrorIs(t, err, ErrCorrupt)
		var ae *Error
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, chunk1, ae.Path)
	})
	for _, quick := range []bool{true, false} {
		t.Run(fmt.Sprintf("forged rawSha256, quick=%v", quick), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			goldenArchive(t, dir)
			reseal(t, dir, func(m *manifest.Manifest) { m.Chunks[1].RawSHA256 = strings.Repeat("0", 64) })
			a := mustOpen(t, dir)
			_, err := a.Verify(ctx, VerifyOptions{Quick: quick})
			if quick {
				require.NoError(t, err) // the quick check never decompresses
			} else {
				require.ErrorIs(t, err, ErrVerify)
			}
			err = readErr(a)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), "rawSha256")
		})
	}
}
