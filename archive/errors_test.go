package archive

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriterIOErrors makes the file system fail under the writer: the error comes back from the call
// that met it, stays (errors are sticky), and leaves the directory resumable.
func TestWriterIOErrors(t *testing.T) {
	evs := plainEvents(0, 30)
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		write  int // events written after breaking; the error shows by then
	}{
		{"chunk cannot be created", func(t *testing.T, dir string) {
			// A directory where the temporary chunk file goes.
			require.NoError(t, os.Mkdir(filepath.Join(dir, "data/events/00000000000000000000.jsonl.zst.tmp"), 0o755))
		}, 1},
		{"journal cannot be written", func(t *testing.T, dir string) {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "journal.json.tmp", "x"), 0o755)) // cannot be removed
		}, 11},
		{"chunk cannot be renamed", func(t *testing.T, dir string) {
			// A non-empty directory where the chunk's final name goes.
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "data/events/00000000000000000000.jsonl.zst/x"), 0o755))
		}, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			opts := testOptions(0, 29)
			opts.ChunkRecords = 10
			w, err := Create(dir, opts)
			require.NoError(t, err)
			tc.break_(t, dir)
			var first error
			for i := 0; i < tc.write && first == nil; i++ {
				first = w.WriteEvent(&evs[i])
			}
			require.Error(t, first)
			var errno syscall.Errno // the file system's own error, kept in the chain
			assert.True(t, errors.As(first, &errno), "%v", first)
			assert.Equal(t, first, w.WriteEvent(&evs[29]))
			assert.Equal(t, first, w.Close())
			require.NoError(t, w.Suspend())
			_, err = Open(dir)
			require.ErrorIs(t, err, ErrIncomplete)
		})
	}
}

// TestReaderIOErrors: a chunk that cannot be read is an error of that chunk.
func TestReaderIOErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	goldenArchive(t, dir)
	p := filepath.Join(dir, chunk1)
	require.NoError(t, os.Remove(p))
	require.NoError(t, os.Mkdir(p, 0o755)) // a directory in place of the chunk
	it := mustOpen(t, dir).Events(t.Context(), 0)
	for it.Next() {
	}
	require.ErrorIs(t, it.Err(), ErrCorrupt)
	var ae *Error
	require.ErrorAs(t, it.Err(), &ae)
	assert.Equal(t, chunk1, ae.Path)
	assert.Contains(t, ae.Error(), "not a regular file")
	it.Close()
}
