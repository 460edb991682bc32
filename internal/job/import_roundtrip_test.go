package job_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// export -> import -> export of a store holding every edge value (eventgen.EdgeCases, EdgeSnapshots) and
// generated events: byte-identical JSON Lines, the same fingerprint, the same stored bytes, and the proof
// finds the target equal with both fingerprints the same.
func TestRoundTripEdgeCases(t *testing.T) {
	srv := axontest.NewServer(t)
	gen := eventgen.New(5, eventgen.Options{Aggregates: 30})
	require.NoError(t, srv.Load("source", eventgen.EdgeCases()))
	require.NoError(t, srv.Load("source", gen.Generate(1500)))
	require.NoError(t, srv.LoadSnapshots("source", eventgen.EdgeSnapshots()))
	require.NoError(t, srv.LoadSnapshots("source", gen.Snapshots()))
	src := filepath.Join(t.TempDir(), "src")
	_, err := job.ExportServer(context.Background(), dial(t, srv, "source"), job.ExportOptions{Dir: src, ChunkRecords: 400})
	require.NoError(t, err)

	conn := dial(t, srv, "target")
	_, err = job.Import(context.Background(), conn, []string{src}, job.ImportOptions{MaxTransactionEvents: 300})
	require.NoError(t, err)
	d, err := job.Compare(context.Background(), conn, []string{src}, job.CompareOptions{})
	require.NoError(t, err)
	require.True(t, d.Equal(), "%v", d.Differences)
	assert.Equal(t, d.ArchiveFingerprint, d.TargetFingerprint)

	again := filepath.Join(t.TempDir(), "again")
	_, err = job.ExportServer(context.Background(), conn, job.ExportOptions{Dir: again, ChunkRecords: 400})
	require.NoError(t, err)
	assert.Equal(t, lines(t, src, false), lines(t, again, false))
	assert.Equal(t, lines(t, src, true), lines(t, again, true))
	assert.Equal(t, fingerprint(t, src), fingerprint(t, again))

	source, target := srv.Events("source"), srv.Events("target")
	require.Equal(t, len(source), len(target))
	for i := range source {
		require.True(t, bytes.Equal(source[i].Raw, target[i].Raw), "token %d", i)
	}
	assert.Equal(t, srv.SnapshotCount("source"), srv.SnapshotCount("target"))
}
