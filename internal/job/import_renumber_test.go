package job_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// readMap returns the mappings of a token map, archive token -> target token, in file order.
func readMap(t *testing.T, path string) [][2]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [][2]int64
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		var m [2]int64
		_, err := fmt.Sscan(line, &m[0], &m[1])
		require.NoError(t, err, "line %q", line)
		out = append(out, m)
	}
	return out
}

// requireMapMatches checks that a complete token map sends every archive event to a target event with
// the same bytes, target tokens consecutive from first.
func requireMapMatches(t *testing.T, src string, srv *axontest.Server, ctx string, m [][2]int64, first int64) {
	t.Helper()
	a, err := archive.Open(src)
	require.NoError(t, err)
	it := a.Events(context.Background(), 0)
	defer it.Close()
	target := srv.Events(ctx)
	i := 0
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		require.Less(t, i, len(m), "the map lacks archive token %d", r.Token)
		require.Equal(t, [2]int64{r.Token, first + int64(i)}, m[i])
		require.Equal(t, codec.Encode(nil, r), target[m[i][1]].Raw)
		i++
	}
	require.NoError(t, it.Err())
	require.Len(t, m, i)
	require.Equal(t, first+int64(i), int64(len(target)))
}

// A renumbered import that fails part way is continued with --resume --renumber: the token map says what
// was confirmed and where; the result has every event once, and the map is complete.
func TestImportRenumberResume(t *testing.T) {
	src, srv := generated(t, 3000, job.ExportOptions{Filter: &manifest.Filter{ExcludeTypes: []string{"com.example.notification.EmailSentEvent"}}})
	require.NoError(t, srv.Load("target", eventgen.New(99, eventgen.Options{NonDomainPercent: 100}).Generate(10)))
	conn := dial(t, srv, "target")
	tokenMap := filepath.Join(t.TempDir(), "map")
	opts := job.ImportOptions{Renumber: true, TokenMap: tokenMap, MaxTransactionEvents: 300}
	srv.FailNthCall(axontest.MethodAppendEvent, 3)
	_, err := job.Import(context.Background(), conn, []string{src}, opts)
	var pe *job.ProgressError
	require.ErrorAs(t, err, &pe)
	// The second, third or fourth transaction failed (see TestImportResume).
	assert.Contains(t, []int64{300, 600, 900}, pe.Imported)
	assert.Equal(t, pe.Imported+9, pe.TargetHead)
	require.Len(t, readMap(t, tokenMap), int(pe.Imported))

	// Without --resume the map (and the target) are not touched.
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "add --resume")
	require.Equal(t, 10+int(pe.Imported), srv.EventCount("target"))

	opts.Resume = true
	plan, err := job.Import(context.Background(), conn, []string{src}, opts)
	require.NoError(t, err)
	assert.Equal(t, int64(10), plan.TargetFirst)
	requireMapMatches(t, src, srv, "target", readMap(t, tokenMap), 10)
	first := plan.TargetFirst
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{TargetFirst: &first})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, srv.SnapshotCount("source"), srv.SnapshotCount("target"), "snapshots sent once")

	// Resuming a finished import changes nothing.
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.NoError(t, err)
	requireMapMatches(t, src, srv, "target", readMap(t, tokenMap), 10)
	assert.Equal(t, srv.SnapshotCount("source"), srv.SnapshotCount("target"))
}

// The run stopped after the server confirmed transactions and before the map recorded them (and in the
// middle of a line): the resumed import finds those events in the target, checks them against the
// archive and adds them to the map. A target that holds something else there is refused.
func TestImportRenumberResumeRecoversUnmapped(t *testing.T) {
	src, srv := generated(t, 1000, job.ExportOptions{Snapshots: job.SnapshotsNone})
	conn := dial(t, srv, "target")
	tokenMap := filepath.Join(t.TempDir(), "map")
	opts := job.ImportOptions{Renumber: true, TokenMap: tokenMap, MaxTransactionEvents: 200}
	_, err := job.Import(context.Background(), conn, []string{src}, opts)
	require.NoError(t, err)
	full, err := os.ReadFile(tokenMap)
	require.NoError(t, err)

	cut := func(keep int, tail string) {
		lines := strings.SplitAfter(string(full), "\n")
		require.NoError(t, os.WriteFile(tokenMap, []byte(strings.Join(lines[:2+keep], "")+tail), 0o644))
	}
	opts.Resume = true
	var log []string
	opts.Warn = func(s string) { log = append(log, s) }
	for _, tc := range []struct {
		keep int
		tail string
	}{{800, ""}, {650, "812 "}, {0, ""}} {
		cut(tc.keep, tc.tail)
		_, err = job.Import(context.Background(), conn, []string{src}, opts)
		require.NoError(t, err)
		got, err := os.ReadFile(tokenMap)
		require.NoError(t, err)
		require.Equal(t, string(full), string(got), "kept %d lines", tc.keep)
		require.Equal(t, 1000, srv.EventCount("target"), "nothing sent twice")
	}
	require.Len(t, log, 3)
	assert.Contains(t, log[0], "the target holds 200 events after the token map's end")

	// The target's event after the map's end is not the archive's next one: refused, naming it.
	cut(500, "")
	var r archive.Record
	r.Token = 700
	require.NoError(t, codec.Decode(srv.Events("target")[700].Raw, &r))
	r.MessageID = "someone else"
	require.NoError(t, srv.ReplaceEvent("target", 700, codec.Encode(nil, &r)))
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.ErrorIs(t, err, job.ErrMismatch)
	assert.Contains(t, err.Error(), "the target's event at token 700, which the token map does not list, is not archive token 700 (message id differs)")

	// No map: nothing to resume.
	require.NoError(t, os.Remove(tokenMap))
	_, err = job.Import(context.Background(), conn, []string{src}, opts)
	require.ErrorIs(t, err, job.ErrMismatch)
	assert.Contains(t, err.Error(), "no token map at")
}

// A token map that is not one, or has a line of unbounded length, is refused as such, naming the line:
// readTokenMap never holds more than a line's bound.
func TestTokenMapRefusesForeignFiles(t *testing.T) {
	const header = "# axarchive token map: archive-token target-token\n"
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"foreign", "hello\n", "line 1: not an axarchive token map"},
		{"long-line", header + strings.Repeat("1", 1<<20) + " 2\n", "line 2: longer than 4096 bytes"},
		{"malformed", header + "1 2 3\n", "line 2: want two tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			_, err := job.TokenMapTargetFirst(path)
			require.ErrorIs(t, err, job.ErrMismatch)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
