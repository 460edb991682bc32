package archive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "regenerate the golden archives in ../testdata/archives/v1 and v2 (refused once released)")

// vectorsDir holds the test vectors of format version 1, and vectorsDirV2 those of version 2, each listed
// with their expected outcome in vectors.txt; SPEC.md makes them normative.
const (
	vectorsDir   = "../testdata/archives/v1"
	vectorsDirV2 = "../testdata/archives/v2"
)

// makeVectorsV2 writes the vectors of version 2 into base: an archive that records transactions, and
// the same with a run that groups more tokens than the archive holds (digests resealed).
func makeVectorsV2(t testing.TB, base string) {
	golden := filepath.Join(base, "golden-transactions")
	writeTxArchive(t, golden)
	dir := filepath.Join(base, "bad-transactions-run")
	copyDir(t, golden, dir)
	lengthenLastRun(t, dir)
}

// goldenFixture describes how the golden archives are made. Changing it changes the vectors: only
// allowed before the format is released.
func goldenArchive(t testing.TB, dir string) {
	evs := append(edgeEvents(0), plainEvents(19, 21)...)
	opts := testOptions(0, 39)
	opts.Source = manifest.Source{Kind: manifest.SourceSegments, Path: "/var/lib/axonserver/data/default", Context: "default"}
	opts.Tool = "axarchive (golden vector)"
	opts.ChunkRecords = 8
	w, err := Create(dir, opts)
	require.NoError(t, err)
	for i := range evs[:16] {
		require.NoError(t, w.WriteEvent(&evs[i]))
	}
	require.NoError(t, w.addGap(manifest.Gap{From: 16, To: 18, Cause: "unavailable"}))
	for i := range evs[16:] {
		require.NoError(t, w.WriteEvent(&evs[16+i]))
	}
	require.NoError(t, w.AddNote(manifest.Note{Kind: "tail-cut", Detail: "the last segment ended in a partial transaction after token 39", Token: 39}))
	require.NoError(t, w.FinishEvents())
	for _, s := range edgeSnapshots() {
		require.NoError(t, w.WriteSnapshot(&s))
	}
	require.NoError(t, w.Close())
}

func goldenIncremental(t testing.TB, dir string, prev *Archive) {
	opts := testOptions(40, 49)
	opts.Source = manifest.Source{Kind: manifest.SourceServer, Address: "localhost:8124", Context: "default"}
	opts.Tool = "axarchive (golden vector)"
	opts.Snapshots = manifest.SnapshotsNone
	opts.Previous = &manifest.Link{Fingerprint: prev.Manifest().Fingerprint, LastToken: prev.Manifest().Events.LastToken}
	writeArchive(t, dir, opts, plainEvents(40, 10), nil)
}

// makeVectors writes every vector into base.
func makeVectors(t testing.TB, base string) {
	golden := filepath.Join(base, "golden")
	goldenArchive(t, golden)
	goldenIncremental(t, filepath.Join(base, "golden-incremental"), mustOpen(t, golden))

	variant := func(name string, damage func(dir string)) {
		dir := filepath.Join(base, name)
		copyDir(t, golden, dir)
		damage(dir)
	}
	first := filepath.Join("data", "events", "00000000000000000000.jsonl.zst")
	variant("bad-flipped-bit", func(dir string) { flipBit(t, filepath.Join(dir, first), 40) })
	variant("bad-truncated-chunk", func(dir string) {
		p := filepath.Join(dir, first)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, b[:len(b)/2], 0o644))
	})
	variant("bad-missing-chunk", func(dir string) {
		require.NoError(t, os.Remove(filepath.Join(dir, "data", "events", "00000000000000000008.jsonl.zst")))
	})
	variant("bad-unlisted-file", func(dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "events", "notes.txt"), []byte("not part of the archive\n"), 0o644))
	})
	variant("bad-version", func(dir string) {
		p := filepath.Join(dir, "data", "manifest.json")
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte(`"version": 1,`), []byte(`"version": 3,`), 1), 0o644))
	})
	variant("bad-noncanonical-record", func(dir string) {
		// Hashes, counts and BagIt all match; only the record encoding is wrong (a space after a colon).
		raw := chunkRaw(t, dir, 0)
		rewriteChunk(t, dir, 0, bytes.Replace(raw, []byte(`{"token":1,"messageId":""`), []byte(`{"token":1,"messageId": ""`), 1), nil)
	})
	variant("bad-manifest-count", func(dir string) {
		reseal(t, dir, func(m *manifest.Manifest) { m.Events.Count++ })
	})
	incomplete := filepath.Join(base, "incomplete")
	opts := testOptions(0, 39)
	opts.ChunkRecords = 8
	w, err := Create(incomplete, opts)
	require.NoError(t, err)
	evs := edgeEvents(0)
	for i := range evs[:12] {
		require.NoError(t, w.WriteEvent(&evs[i]))
	}
	require.NoError(t, w.Suspend())
}

// TestGolden checks the committed vectors against vectors.txt and, for the generated ones, against a
// fresh generation: the records and manifests must not change. With -update it regenerates them.
func TestGolden(t *testing.T) {
	t.Run("v1", func(t *testing.T) { testGolden(t, vectorsDir, makeVectors, "golden", "golden-incremental") })
	t.Run("v2", func(t *testing.T) { testGolden(t, vectorsDirV2, makeVectorsV2, "golden-transactions") })
}

func testGolden(t *testing.T, vectorsDir string, makeVectors func(testing.TB, string), generated ...string) {
	if *update {
		if _, err := os.Stat(filepath.Join(vectorsDir, "RELEASED")); err == nil {
			t.Fatalf("%s is released (RELEASED exists): its vectors are frozen; add new ones instead", vectorsDir)
		}
		for _, e := range listVectors(t, vectorsDir) {
			require.NoError(t, os.RemoveAll(filepath.Join(vectorsDir, e.name)))
		}
		makeVectors(t, vectorsDir)
		if vectorsDir != vectorsDirV2 { // the fuzz seeds come from the v1 vectors
			writeFuzzSeeds(t)
		}
	}

	fresh := t.TempDir()
	makeVectors(t, fresh)
	for _, name := range generated {
		t.Run("same as generated/"+name, func(t *testing.T) {
			committed, generated := filepath.Join(vectorsDir, name), filepath.Join(fresh, name)
			a, b := mustOpen(t, committed), mustOpen(t, generated)
			// Compressed bytes may differ across klauspost/compress versions; records and everything
			// else may not.
			assert.Equal(t, stripCompressed(*a.Manifest()), stripCompressed(*b.Manifest()))
			for _, stream := range []string{manifest.StreamEvents, manifest.StreamSnapshots, manifest.StreamTransactions} {
				assert.Equal(t, readAll(t, a, stream), readAll(t, b, stream))
			}
		})
	}

	for _, v := range listVectors(t, vectorsDir) {
		t.Run(v.name, func(t *testing.T) {
			a, err := Open(filepath.Join(vectorsDir, v.name))
			if v.open != nil {
				require.ErrorIs(t, err, v.open)
				return
			}
			require.NoError(t, err)
			rep, err := a.Verify(context.Background(), VerifyOptions{})
			if v.verify != nil {
				require.ErrorIs(t, err, ErrVerify)
				require.NotEmpty(t, rep.Problems)
				found := false
				for _, p := range rep.Problems {
					found = found || errors.Is(p, v.verify)
					assert.NotEmpty(t, p.Path)
				}
				assert.True(t, found, "no problem wraps %v: %v", v.verify, rep.Problems)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, v.fingerprint, a.Manifest().Fingerprint)
			assert.Equal(t, v.fingerprint, rep.Fingerprint)
		})
	}
}

func stripCompressed(m manifest.Manifest) manifest.Manifest {
	m.Chunks = append([]manifest.ChunkInfo(nil), m.Chunks...)
	for i := range m.Chunks {
		m.Chunks[i].Size, m.Chunks[i].SHA256 = 0, ""
	}
	return m
}

type vector struct {
	name         string
	open, verify error
	fingerprint  string
}

var sentinels = map[string]error{
	"ErrIncomplete": ErrIncomplete, "ErrVersion": ErrVersion, "ErrManifest": ErrManifest,
	"ErrCorrupt": ErrCorrupt, "ErrRecord": ErrRecord, "ErrSequence": ErrSequence, "ErrBag": ErrBag,
	"ErrNotArchive": ErrNotArchive,
}

// listVectors reads vectors.txt: "name open verify [fingerprint]" per line, "ok" or a sentinel name.
func listVectors(t testing.TB, vectorsDir string) []vector {
	f, err := os.Open(filepath.Join(vectorsDir, "vectors.txt"))
	require.NoError(t, err)
	defer f.Close()
	var out []vector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		require.GreaterOrEqual(t, len(fields), 3, sc.Text())
		v := vector{name: fields[0]}
		if fields[1] != "ok" {
			v.open = sentinels[fields[1]]
			require.NotNil(t, v.open, fields[1])
		}
		if fields[2] != "ok" && fields[2] != "-" {
			v.verify = sentinels[fields[2]]
			require.NotNil(t, v.verify, fields[2])
		}
		if len(fields) > 3 {
			v.fingerprint = fields[3]
		}
		out = append(out, v)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestSha256sum runs coreutils' sha256sum -c on the BagIt manifests, as an auditor would.
func TestSha256sum(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum not installed")
	}
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	for _, m := range []string{bagManifestPath, tagManifestPath} {
		cmd := exec.Command("sha256sum", "--strict", "-c", m)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.NotContains(t, string(out), "FAILED")
	}
	flipBit(t, filepath.Join(dir, "data", "events", "00000000000000000000.jsonl.zst"), 30)
	cmd := exec.Command("sha256sum", "-c", bagManifestPath)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "data/events/00000000000000000000.jsonl.zst: FAILED")
}

// TestZstdCLI decompresses every chunk with the reference zstd and compares with the library.
func TestZstdCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	a := mustOpen(t, dir)
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not installed")
	}
	fp := new(Fingerprint)
	for _, c := range a.Manifest().Chunks {
		out, err := exec.Command("zstd", "-dc", filepath.Join(dir, filepath.FromSlash(archivePath(c.Path)))).Output()
		require.NoError(t, err)
		assert.Equal(t, c.RawSHA256, sha256hex(out))
		if c.Stream == manifest.StreamEvents {
			fp.WriteEventLine(out)
		} else {
			fp.WriteSnapshotLine(out)
		}
	}
	assert.Equal(t, a.Manifest().Fingerprint, fp.Sum())
}
