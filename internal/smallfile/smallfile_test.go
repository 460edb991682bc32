package smallfile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/smallfile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	require.NoError(t, os.WriteFile(small, []byte("12345"), 0o644))
	b, err := smallfile.Read(small, 5)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(b))

	_, err = smallfile.Read(small, 4)
	var tl *smallfile.TooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, small+": 5 bytes, more than the 4 such a file can need", err.Error())

	// A sparse terabyte is refused, not read.
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<40))
	require.NoError(t, f.Close())
	_, err = smallfile.Read(huge, 1<<20)
	require.ErrorAs(t, err, &tl)

	// A directory and a FIFO (which would block a read until a writer came) are refused at once.
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	for _, p := range []string{dir, fifo} {
		_, err = smallfile.Read(p, 1<<20)
		require.ErrorIs(t, err, smallfile.ErrNotRegular, p)
	}
	_, err = smallfile.Read(filepath.Join(dir, "missing"), 1)
	require.ErrorIs(t, err, os.ErrNotExist)
}
