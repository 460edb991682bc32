package location

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
)

// TestStorage: a path is a directory, an s3:// URL an object store (a malformed one refused before any
// request), and a directory that is no archive is reported as archive.Open reports it.
func TestStorage(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a")
	st, err := Storage(ctx, dir, nil)
	require.NoError(t, err)
	assert.Equal(t, dir, st.String())
	assert.False(t, IsRemote(dir))
	assert.True(t, IsRemote("s3://bucket/prefix"))

	_, err = Storage(ctx, "s3://No_Such_Bucket!/p", nil)
	require.Error(t, err)

	_, err = Open(ctx, t.TempDir(), nil)
	require.ErrorIs(t, err, archive.ErrNotArchive)
	_, err = OpenChain(ctx, []string{t.TempDir()}, nil)
	require.ErrorIs(t, err, archive.ErrNotArchive)

	names, err := Names(archive.Dir(t.TempDir()))
	require.NoError(t, err)
	assert.Empty(t, names)
}
