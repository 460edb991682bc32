package job_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// An invalid or incomplete archive, or a chain with a gap or an overlap, is refused before anything is
// sent.
func TestImportRefusesBadInput(t *testing.T) {
	srv := axontest.NewServer(t)
	conn := dial(t, srv, "target")
	v1 := filepath.Join("..", "..", "testdata", "archives", "v1")
	for _, tc := range []struct {
		dirs []string
		want error
	}{
		{[]string{filepath.Join(v1, "incomplete")}, archive.ErrIncomplete},
		{[]string{filepath.Join(v1, "bad-flipped-bit")}, archive.ErrVerify},
		{[]string{filepath.Join(v1, "bad-truncated-chunk")}, archive.ErrVerify},
		{[]string{filepath.Join(v1, "bad-missing-chunk")}, archive.ErrVerify},
	} {
		_, err := job.Import(context.Background(), conn, tc.dirs, job.ImportOptions{})
		require.ErrorIs(t, err, tc.want, "%v", tc.dirs)
		assert.NotErrorAs(t, err, new(*job.ProgressError))
	}

	// A chain of three from one source: leaving out the middle one or repeating one is refused.
	source := axontest.NewServer(t)
	gen := eventgen.New(8, eventgen.Options{NonDomainPercent: 100})
	sconn := dial(t, source, "default")
	var dirs []string
	for i := range 3 {
		require.NoError(t, source.Load("default", gen.Generate(100)))
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		opts := job.ExportOptions{Dir: dir, Snapshots: job.SnapshotsNone}
		if i > 0 {
			opts.Since = dirs[i-1]
		}
		_, err := job.ExportServer(context.Background(), sconn, opts)
		require.NoError(t, err)
		dirs = append(dirs, dir)
	}
	for _, chain := range [][]string{{dirs[0], dirs[2]}, {dirs[0], dirs[1], dirs[1], dirs[2]}, {dirs[1], dirs[0], dirs[2]}} {
		_, err := job.Import(context.Background(), conn, chain, job.ImportOptions{})
		require.ErrorIs(t, err, job.ErrChain)
	}
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent), "nothing was sent")
	assert.Zero(t, srv.EventCount("target"))

	_, err := job.Import(context.Background(), conn, dirs, job.ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, 300, srv.EventCount("target"))
}

// --no-verify skips the full verification before sending, not the checks of what is read: an archive
// damaged in its last chunk is refused by the reader's chunk checks instead (today in the preflight's
// size scan, which reads every event, so before anything is sent).
func TestImportNoVerify(t *testing.T) {
	src, srv := generated(t, 1000, job.ExportOptions{ChunkRecords: 250, Snapshots: job.SnapshotsNone})
	chunks, err := filepath.Glob(filepath.Join(src, "data", "events", "*.zst"))
	require.NoError(t, err)
	require.Len(t, chunks, 4)
	last := chunks[len(chunks)-1]
	b, err := os.ReadFile(last)
	require.NoError(t, err)
	b[len(b)/2] ^= 1
	require.NoError(t, os.WriteFile(last, b, 0o644))

	conn := dial(t, srv, "target")
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{})
	require.ErrorIs(t, err, archive.ErrVerify)
	assert.Contains(t, err.Error(), "problems")

	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{NoVerify: true})
	// The reader stops at the first thing wrong in what it decompresses: the frame's checksum, or a line
	// the flipped bit broke before the checksum at the frame's end is reached.
	if !errors.Is(err, archive.ErrCorrupt) {
		require.ErrorIs(t, err, archive.ErrRecord)
	}
	assert.NotErrorIs(t, err, archive.ErrVerify, "no verification ran")
	assert.Contains(t, err.Error(), "00000000000000000750.jsonl.zst")
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent), "nothing was sent")
}

// The verification measures the events for the plan while it reads them; the plan is the one a size
// scan of the archive makes (--no-verify), for one archive and for a chain, and so is the refusal of an
// event too large.
func TestImportPlanMeasuredWhileVerifying(t *testing.T) {
	source := axontest.NewServer(t)
	gen := eventgen.New(9, eventgen.Options{})
	sconn := dial(t, source, "default")
	var dirs []string
	for i := range 3 {
		require.NoError(t, source.Load("default", gen.Generate(700)))
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		opts := job.ExportOptions{Dir: dir, Snapshots: job.SnapshotsNone, ChunkRecords: 150}
		if i > 0 {
			opts.Since = dirs[i-1]
		}
		_, err := job.ExportServer(context.Background(), sconn, opts)
		require.NoError(t, err)
		dirs = append(dirs, dir)
	}
	srv := axontest.NewServer(t)
	conn := dial(t, srv, "target")
	for _, chain := range [][]string{dirs[:1], dirs} {
		tooLarge := false
		for _, size := range []int{0, 20000, 700} {
			scanned, serr := job.Import(context.Background(), conn, chain, job.ImportOptions{DryRun: true, NoVerify: true, MaxMessageSize: size})
			measured, merr := job.Import(context.Background(), conn, chain, job.ImportOptions{DryRun: true, MaxMessageSize: size})
			assert.Equal(t, scanned, measured, "chain of %d, max message size %d", len(chain), size)
			if serr == nil {
				require.NoError(t, merr)
				assert.Equal(t, int64(700*len(chain)), measured.Events)
				continue
			}
			require.ErrorIs(t, serr, job.ErrEventTooLarge)
			assert.Equal(t, serr.Error(), merr.Error())
			tooLarge = true
		}
		assert.True(t, tooLarge)
	}
	assert.Zero(t, srv.Calls(axontest.MethodAppendEvent))
}
