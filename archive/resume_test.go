package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// resumeFixture is the export that the resume tests interrupt: 95 events in chunks of 10, and 3
// snapshots in chunks of 2.
type resumeFixture struct {
	evs   []Record
	snaps []Record
	opts  Options
	want  map[string][]byte // files of the uninterrupted archive
}

func newResumeFixture(t *testing.T) *resumeFixture {
	f := &resumeFixture{evs: append(edgeEvents(0), plainEvents(16, 79)...), snaps: edgeSnapshots()}
	f.opts = testOptions(0, int64(len(f.evs)-1))
	f.opts.ChunkRecords = 10
	dir := filepath.Join(t.TempDir(), "ref")
	w, err := Create(dir, f.opts)
	require.NoError(t, err)
	f.finish(t, w)
	f.want = treeFiles(t, dir)
	return f
}

// finish writes whatever the writer has not committed yet, as an export would after Resume, and closes.
func (f *resumeFixture) finish(t *testing.T, w *Writer) {
	t.Helper()
	if !w.EventsDone() {
		for i := range f.evs {
			if f.evs[i].Token >= w.NextToken() {
				require.NoError(t, w.WriteEvent(&f.evs[i]))
			}
		}
		require.NoError(t, w.FinishEvents())
	}
	for i := w.SnapshotsCommitted(); i < int64(len(f.snaps)); i++ {
		require.NoError(t, w.WriteSnapshot(&f.snaps[i]))
	}
	require.NoError(t, w.Close())
}

func (f *resumeFixture) resumeAndCompare(t *testing.T, dir string) *Writer {
	t.Helper()
	_, err := Open(dir)
	require.ErrorIs(t, err, ErrIncomplete)
	w, err := Resume(dir, f.opts)
	require.NoError(t, err)
	next := w.NextToken()
	f.finish(t, w)
	got := treeFiles(t, dir)
	require.Equal(t, len(f.want), len(got), "files: %v", keys(got))
	for name, data := range f.want {
		assert.True(t, bytes.Equal(data, got[name]), "%s differs from the uninterrupted archive", name)
	}
	_, err = mustOpen(t, dir).Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	w.events.next = next // for the caller's assertions
	return w
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestResume(t *testing.T) {
	f := newResumeFixture(t)
	tests := []struct {
		name     string
		events   int // events written before the interruption
		snaps    int // snapshots written (after FinishEvents) before it
		finish   bool
		damage   func(t *testing.T, dir string, journalBefore []byte)
		wantNext int64
	}{
		{name: "before the first record", events: 0, wantNext: 0},
		{name: "inside the first chunk", events: 7, wantNext: 0},
		{name: "after chunks, inside one", events: 35, wantNext: 30},
		{name: "at a chunk boundary", events: 40, wantNext: 30},
		{name: "all events, not finished", events: 95, wantNext: 90},
		{name: "events finished", events: 95, finish: true, wantNext: 95},
		{name: "inside snapshots", events: 95, finish: true, snaps: 1, wantNext: 95},
		{name: "after a snapshot chunk", events: 95, finish: true, snaps: 3, wantNext: 95},
		{name: "stray temporary files", events: 35, wantNext: 30, damage: func(t *testing.T, dir string, _ []byte) {
			write(t, filepath.Join(dir, "data/events/00000000000000000030.jsonl.zst.tmp"), "partial")
			write(t, filepath.Join(dir, "journal.json.tmp"), "{")
		}},
		{name: "chunk renamed but not journaled", events: 35, wantNext: 20, damage: func(t *testing.T, dir string, before []byte) {
			// The journal as it was before the last commit: chunk 20 is on disk but not in it.
			write(t, filepath.Join(dir, "journal.json"), string(before))
		}},
		{name: "interrupted Close", events: 95, finish: true, snaps: 3, wantNext: 95, damage: func(t *testing.T, dir string, _ []byte) {
			write(t, filepath.Join(dir, "data/manifest.json"), "{}")
			write(t, filepath.Join(dir, "bagit.txt"), "BagIt-Version: 1.0\n")
			write(t, filepath.Join(dir, "tagmanifest-sha256.txt.tmp"), "")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			w, err := Create(dir, f.opts)
			require.NoError(t, err)
			var before, last []byte
			for i := 0; i < tc.events; i++ {
				require.NoError(t, w.WriteEvent(&f.evs[i]))
				if j, err := os.ReadFile(filepath.Join(dir, journalPath)); err == nil && !bytes.Equal(j, last) {
					before, last = last, j
				}
			}
			if tc.finish {
				require.NoError(t, w.FinishEvents())
			}
			for i := 0; i < tc.snaps; i++ {
				require.NoError(t, w.WriteSnapshot(&f.snaps[i]))
			}
			require.NoError(t, w.Suspend())
			require.ErrorIs(t, w.WriteEvent(&f.evs[0]), errClosed)
			if tc.damage != nil {
				tc.damage(t, dir, before)
			}
			w = f.resumeAndCompare(t, dir)
			assert.Equal(t, tc.wantNext, w.events.next)
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(data), 0o644))
}

func TestResumeErrors(t *testing.T) {
	f := newResumeFixture(t)
	interrupted := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "a")
		w, err := Create(dir, f.opts)
		require.NoError(t, err)
		for i := 0; i < 25; i++ {
			require.NoError(t, w.WriteEvent(&f.evs[i]))
		}
		require.NoError(t, w.Suspend())
		return dir
	}
	t.Run("options differ", func(t *testing.T) {
		dir := interrupted(t)
		for _, change := range []func(*Options){
			func(o *Options) { o.Source.Context = "other" },
			func(o *Options) { o.Filter = &manifest.Filter{ExcludeTypes: []string{"x"}} },
			func(o *Options) { o.Snapshots = manifest.SnapshotsLatest },
			func(o *Options) { o.Previous = &manifest.Link{Fingerprint: f.opts.Tool, LastToken: -1} },
		} {
			opts := f.opts
			change(&opts)
			_, err := Resume(dir, opts)
			require.ErrorIs(t, err, ErrMismatch)
		}
	})
	t.Run("range and chunking come from the journal", func(t *testing.T) {
		dir := interrupted(t)
		opts := f.opts
		opts.Range = manifest.Range{First: 0, Last: 5}
		opts.ChunkRecords = 3
		w, err := Resume(dir, opts)
		require.NoError(t, err)
		assert.Equal(t, f.opts.Range, w.Options().Range)
		assert.Equal(t, int64(10), w.Options().ChunkRecords)
		assert.Equal(t, int64(20), w.EventsCommitted())
		w.Suspend()
	})
	t.Run("damaged committed chunk", func(t *testing.T) {
		dir := interrupted(t)
		flipBit(t, filepath.Join(dir, "data/events/00000000000000000010.jsonl.zst"), 20)
		_, err := Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "data/events/00000000000000000010.jsonl.zst")
	})
	t.Run("missing committed chunk", func(t *testing.T) {
		dir := interrupted(t)
		require.NoError(t, os.Remove(filepath.Join(dir, "data/events/00000000000000000000.jsonl.zst")))
		_, err := Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("unexpected file is left alone", func(t *testing.T) {
		dir := interrupted(t)
		write(t, filepath.Join(dir, "data/events/notes.txt"), "mine")
		_, err := Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrCorrupt)
		assert.FileExists(t, filepath.Join(dir, "data/events/notes.txt"))
	})
	t.Run("complete archive", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		w, err := Create(dir, f.opts)
		require.NoError(t, err)
		f.finish(t, w)
		_, err = Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrComplete)
	})
	t.Run("not an archive", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "notes.txt"), "mine")
		_, err := Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrNotArchive)
	})
	t.Run("empty directory", func(t *testing.T) {
		// Nothing was written yet: the caller starts afresh (TestNotStarted).
		_, err := Resume(t.TempDir(), f.opts)
		require.ErrorIs(t, err, ErrNotStarted)
	})
	t.Run("damaged journal", func(t *testing.T) {
		dir := interrupted(t)
		j, err := os.ReadFile(filepath.Join(dir, journalPath))
		require.NoError(t, err)
		j = bytes.Replace(j, []byte("events/00000000000000000000.jsonl.zst"), []byte("../../../../etc/passwd"), 1)
		write(t, filepath.Join(dir, journalPath), string(j))
		_, err = Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("journal of a newer version", func(t *testing.T) {
		dir := interrupted(t)
		write(t, filepath.Join(dir, journalPath), `{"format":"axarchive-journal","version":3}`)
		_, err := Resume(dir, f.opts)
		require.ErrorIs(t, err, ErrVersion)
	})
}

// TestCommittedEvents reads the committed events of an interrupted export.
func TestCommittedEvents(t *testing.T) {
	f := newResumeFixture(t)
	dir := filepath.Join(t.TempDir(), "a")
	w, err := Create(dir, f.opts)
	require.NoError(t, err)
	for i := 0; i < 25; i++ {
		require.NoError(t, w.WriteEvent(&f.evs[i]))
	}
	it := w.CommittedEvents(context.Background())
	n := 0
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		assert.Equal(t, f.evs[n].MessageID, r.MessageID)
		n++
	}
	require.NoError(t, it.Err())
	it.Close()
	assert.Equal(t, 20, n)
	require.NoError(t, w.Suspend())
}

func flipBit(t testing.TB, path string, offset int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	if offset < 0 {
		offset += int64(len(b))
	}
	b[offset] ^= 0x01
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// TestNotStarted: a directory holding only what Create makes before its first journal is in place (an
// export killed at that moment) is taken up afresh by Create and reported as not started by Resume;
// anything more in it, a file or a link, makes it a directory that is not ours.
func TestNotStarted(t *testing.T) {
	layout := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "a")
		for _, d := range []string{"data/events", "data/snapshots"} {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, journalPath+tmpSuffix), []byte(`{"half`), 0o644))
		return dir
	}
	opts := testOptions(0, 2)

	dir := layout(t)
	_, err := Resume(dir, opts)
	require.ErrorIs(t, err, ErrNotStarted)
	w, err := Create(dir, opts)
	require.NoError(t, err)
	require.NoError(t, w.Suspend())

	for name, extra := range map[string]func(dir string) error{
		"file in data/events": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "data", "events", "00000000000000000000.jsonl.zst"), nil, 0o644)
		},
		"file at the root": func(dir string) error { return os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644) },
		"link as data/snapshots": func(dir string) error {
			p := filepath.Join(dir, "data", "snapshots")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink(t.TempDir(), p)
		},
		"directory as the temporary journal": func(dir string) error {
			p := filepath.Join(dir, journalPath+tmpSuffix)
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Mkdir(p, 0o755)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := layout(t)
			require.NoError(t, extra(dir))
			_, err := Resume(dir, opts)
			require.ErrorIs(t, err, ErrNotArchive)
			_, err = Create(dir, opts)
			require.ErrorIs(t, err, ErrNotEmpty)
		})
	}
}
