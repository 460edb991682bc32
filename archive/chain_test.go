package archive

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// threeArchives writes a full archive and two incrementals that continue it, and returns their
// directories, oldest first.
func threeArchives(t *testing.T) (a, b, c string) {
	base := t.TempDir()
	a, b, c = filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")
	goldenArchive(t, a)
	goldenIncremental(t, b, mustOpen(t, a))
	// c continues b.
	opts := testOptions(50, 59)
	mb := mustOpen(t, b).Manifest()
	opts.Previous = &manifest.Link{Fingerprint: mb.Fingerprint, LastToken: mb.Events.LastToken}
	writeArchive(t, c, opts, plainEvents(50, 10), edgeSnapshots())
	return a, b, c
}

func TestVerifyChain(t *testing.T) {
	a, b, c := threeArchives(t)
	A, B, C := mustOpen(t, a), mustOpen(t, b), mustOpen(t, c)
	require.NoError(t, NewChain(A, B, C).Check())
	require.NoError(t, NewChain(A).Check())
	err := NewChain(A, C).Check()
	require.ErrorIs(t, err, ErrChain)
	assert.Contains(t, err.Error(), "links to fingerprint")
	require.ErrorIs(t, NewChain(B, A).Check(), ErrChain)
}

// A Chain reads its archives as one: the range from the first to the last, the events from any token
// on, the snapshots of each archive in turn, and a verification of them all.
func TestChain(t *testing.T) {
	a, b, c := threeArchives(t)
	ch, err := OpenChain([]string{a, b, c})
	require.NoError(t, err)
	require.Len(t, ch.Archives(), 3)
	assert.Equal(t, manifest.Range{First: 0, Last: 59}, ch.Range())

	var all, snaps []string
	for _, x := range ch.Archives() {
		all = append(all, readAll(t, x, manifest.StreamEvents)...)
		snaps = append(snaps, readAll(t, x, manifest.StreamSnapshots)...)
	}
	read := func(it *Iterator) []string { return readLines(t, it) }
	assert.Equal(t, all, read(ch.Events(context.Background(), math.MinInt64)))
	assert.Equal(t, snaps, read(ch.Snapshots(context.Background())))
	for _, from := range []int64{0, 17, 39, 40, 45, 50, 59, 60} {
		var want []string
		for _, l := range all {
			var r Record
			require.NoError(t, ParseEventJSON([]byte(l), &r))
			if r.Token >= from {
				want = append(want, l)
			}
		}
		assert.Equal(t, want, read(ch.Events(context.Background(), from)), "from %d", from)
	}

	reports, err := ch.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	require.Len(t, reports, 3)
	for _, r := range reports {
		assert.True(t, r.OK())
	}

	_, err = OpenChain([]string{a, c})
	require.ErrorIs(t, err, ErrChain)
	_, err = OpenChain([]string{a, filepath.Join(t.TempDir(), "none")})
	require.Error(t, err)
	assert.Equal(t, manifest.Range{First: 0, Last: -1}, NewChain().Range())
}

// A damaged archive in the middle of a chain stops its events with the archive's error.
func TestChainEventsDamaged(t *testing.T) {
	a, b, c := threeArchives(t)
	chunk := filepath.Join(b, filepath.FromSlash(archivePath(mustOpen(t, b).Manifest().Chunks[0].Path)))
	data, err := os.ReadFile(chunk)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(chunk, data, 0o644))
	ch, err := OpenChain([]string{a, b, c})
	require.NoError(t, err)
	it := ch.Events(context.Background(), 0)
	defer it.Close()
	n := 0
	for it.Next() {
		n++
	}
	require.ErrorIs(t, it.Err(), ErrCorrupt)
	assert.Less(t, n, 50)
	_, err = ch.Verify(context.Background(), VerifyOptions{})
	require.ErrorIs(t, err, ErrVerify)
	assert.Contains(t, err.Error(), b)
}
