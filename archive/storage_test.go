package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memStorage is a Storage in memory that behaves like an object store: no directories, a file appears
// whole at Commit.
type memStorage struct {
	mu      sync.Mutex
	files   map[string][]byte
	pending int // files being written (neither committed nor aborted)
}

func newMemStorage() *memStorage { return &memStorage{files: map[string][]byte{}} }

func (m *memStorage) String() string { return "mem://test" }

func (m *memStorage) Open(name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStorage) Stat(name string) (StorageEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return StorageEntry{}, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return StorageEntry{Name: name, Size: int64(len(b))}, nil
}

func (m *memStorage) List(prefix string) ([]StorageEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []StorageEntry
	for n, b := range m.files {
		if strings.HasPrefix(n, prefix) {
			out = append(out, StorageEntry{Name: n, Size: int64(len(b))})
		}
	}
	slices.SortFunc(out, func(a, b StorageEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memStorage) Create(name string) (NewFile, error) {
	m.mu.Lock()
	m.pending++
	m.mu.Unlock()
	return &memFile{m: m, name: name}, nil
}

func (m *memStorage) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}

type memFile struct {
	m    *memStorage
	name string
	buf  bytes.Buffer
	done bool
}

func (f *memFile) Write(p []byte) (int, error) { return f.buf.Write(p) }

func (f *memFile) Commit() error {
	if f.done {
		return errors.New("committed twice")
	}
	f.done = true
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.m.files[f.name] = bytes.Clone(f.buf.Bytes())
	f.m.pending--
	return nil
}

func (f *memFile) Abort() error {
	if !f.done {
		f.done = true
		f.m.mu.Lock()
		f.m.pending--
		f.m.mu.Unlock()
	}
	return nil
}

// TestStorageObjectStore: an archive written to a Storage without directories (an object store's
// shape) with CreateIn, interrupted and continued with ResumeIn, holds the very files of the same export
// into a directory, verifies with OpenIn, and a stray object is reported by Verify.
func TestStorageObjectStore(t *testing.T) {
	events, snaps := plainEvents(0, 95), edgeSnapshots()
	opts := testOptions(0, 94)
	opts.ChunkRecords = 10
	dir := filepath.Join(t.TempDir(), "a")
	writeArchive(t, dir, opts, events, snaps)

	st := newMemStorage()
	w, err := CreateIn(st, opts)
	require.NoError(t, err)
	for i := range 35 {
		require.NoError(t, w.WriteEvent(&events[i]))
	}
	require.NoError(t, w.Suspend())
	assert.Zero(t, st.pending, "Suspend aborts the open chunk")
	_, err = OpenIn(st)
	require.ErrorIs(t, err, ErrIncomplete)
	// A chunk committed after the last journal update, as a crash would leave it.
	st.files["data/events/00000000000000000090.jsonl.zst"] = []byte("stray")

	w, err = ResumeIn(st, opts)
	require.NoError(t, err)
	require.Equal(t, int64(30), w.NextToken())
	for i := 30; i < len(events); i++ {
		require.NoError(t, w.WriteEvent(&events[i]))
	}
	require.NoError(t, w.FinishEvents())
	for i := range snaps {
		require.NoError(t, w.WriteSnapshot(&snaps[i]))
	}
	require.NoError(t, w.Close())
	assert.Zero(t, st.pending)

	var want []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			want = append(want, filepath.ToSlash(rel))
		}
		return err
	}))
	slices.Sort(want)
	entries, err := st.List("")
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name)
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Name)))
		require.NoError(t, err)
		assert.Equal(t, b, st.files[e.Name], "%s differs from the directory's", e.Name)
	}
	require.Equal(t, want, got)

	a, err := OpenIn(st)
	require.NoError(t, err)
	assert.Equal(t, st, a.Storage())
	_, err = a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	assert.Len(t, readAll(t, a, manifest.StreamEvents), len(events))

	st.files["notes.txt"] = []byte("hello\n")
	var problems []string
	_, err = a.Verify(context.Background(), VerifyOptions{Quick: true, Problem: func(p *Error) { problems = append(problems, p.Error()) }})
	require.ErrorIs(t, err, ErrVerify)
	assert.Equal(t, []string{"notes.txt: archive data does not match its manifest: unexpected file (not part of the archive)"}, problems)

	// A storage that holds something else is not created over.
	_, err = CreateIn(st, opts)
	require.ErrorIs(t, err, ErrNotEmpty)
}

// TestStorageObjectStoreTransactions: with transactions recorded, the chunks committed in the background
// (events and transactions chunks together) give the directory export's very files.
func TestStorageObjectStoreTransactions(t *testing.T) {
	events := plainEvents(0, 95)
	opts := testOptions(0, 94)
	opts.ChunkRecords, opts.Transactions = 10, true
	write := func(w *Writer) {
		for i := range events {
			require.NoError(t, w.WriteEvent(&events[i]))
			if i%3 == 2 || i == len(events)-1 {
				require.NoError(t, w.EndTransaction())
			}
		}
		require.NoError(t, w.Close())
	}
	dir := filepath.Join(t.TempDir(), "a")
	w, err := Create(dir, opts)
	require.NoError(t, err)
	write(w)
	st := newMemStorage()
	w, err = CreateIn(st, opts)
	require.NoError(t, err)
	write(w)
	entries, err := st.List("")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Name)))
		require.NoError(t, err)
		assert.Equal(t, b, st.files[e.Name], "%s differs from the directory's", e.Name)
	}
	a, err := OpenIn(st)
	require.NoError(t, err)
	_, err = a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
}

// TestDirThroughLink: a directory given as a link to it (a path a user may well give) is written, read
// and verified as the directory it leads to; links below it are still refused (TestVerifyBadInput).
func TestDirThroughLink(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real")
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Mkdir(real, 0o755))
	require.NoError(t, os.Symlink(real, link))
	opts := testOptions(0, 9)
	writeArchive(t, link, opts, plainEvents(0, 10), nil)
	a, err := Open(link)
	require.NoError(t, err)
	_, err = a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	w, err := Create(link, opts)
	require.ErrorIs(t, err, ErrNotEmpty)
	assert.Nil(t, w)
}
