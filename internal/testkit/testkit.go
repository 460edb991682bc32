// Package testkit holds the helpers the tests of several packages share, so that none is copied: a
// connection to a server, the lines of an archive, a copy of a directory.
package testkit

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
)

// Dial connects to context ctx of the server at addr, closed when the test ends.
func Dial(t testing.TB, addr, ctx string) *axonclient.Conn {
	t.Helper()
	conn, err := axonclient.Dial(context.Background(), axonclient.Config{Address: addr, Context: ctx})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Lines returns every line of a stream of the archive in dir (its events, or with snapshots its
// snapshots), concatenated: what must be byte-identical between two exports of the same data.
func Lines(t testing.TB, dir string, snapshots bool) []byte {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	it := a.Events(context.Background(), 0)
	if snapshots {
		it = a.Snapshots(context.Background())
	}
	defer it.Close()
	var out []byte
	for it.Next() {
		out = append(out, it.Line()...)
	}
	require.NoError(t, it.Err())
	return out
}

// CopyDir copies the tree src into dst, which must not hold any of its files.
func CopyDir(t testing.TB, dst, src string) {
	t.Helper()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
}
