package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// TestExportSampleFigures: export's percentage is of the token range written (the sink stores the token of
// what it wrote, so the figure cannot run ahead of the events counted), of the aggregates asked in the
// snapshot phase, and 100 once everything is written.
func TestExportSampleFigures(t *testing.T) {
	p := new(job.ExportProgress)
	p.First.Store(1000)
	p.Last.Store(1999)
	p.Phase.Store("events")
	p.Token.Store(-1) // nothing written yet
	assert.Zero(t, exportSample(p).Percent)
	p.Token.Store(1559)
	p.Events.Store(560)
	s := exportSample(p)
	assert.InDelta(t, 56.0, s.Percent, 0.001)
	assert.EqualValues(t, 560, s.Records)

	p.Phase.Store("snapshots")
	p.Aggregates.Store(40)
	p.AggsDone.Store(10)
	p.Snapshots.Store(7)
	s = exportSample(p)
	assert.InDelta(t, 25.0, s.Percent, 0.001)
	assert.EqualValues(t, 7, s.Records)

	for _, phase := range []string{"committing", "done"} {
		p.Phase.Store(phase)
		assert.InDelta(t, 100.0, exportSample(p).Percent, 0.001, phase)
	}
}

// TestImportInterruptedBeforeSending: an import stopped while it still verifies (Ctrl-C) says that nothing
// was sent and the target is unchanged, not just "interrupted"; exit 130.
func TestImportInterruptedBeforeSending(t *testing.T) {
	srv := axontest.NewServer(t)
	require.NoError(t, srv.Load("default", eventgen.New(1, eventgen.Options{}).Generate(300)))
	dir := filepath.Join(t.TempDir(), "a")
	code, _, stderr := runCLI(t, "export", "--server", srv.Addr(), "-o", dir)
	require.Equal(t, exitOK, code, stderr)

	// Ctrl-C before the connection, and while the preflight waits for a slow server.
	srv.SetDelay(300 * time.Millisecond)
	for _, after := range []time.Duration{0, 100 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		if after == 0 {
			cancel()
		} else {
			time.AfterFunc(after, cancel)
		}
		var stdout, errOut bytes.Buffer
		err := newApp(&stdout, &errOut).RunContext(ctx, []string{"axarchive", "import", "--server", srv.Addr(), "--context", "target", dir})
		cancel()
		require.Error(t, err)
		printError(&errOut, err)
		assert.Equal(t, exitInterrupted, exitCode(err))
		assert.Contains(t, errOut.String(), "axarchive: error: interrupted before anything was sent (while connecting, verifying the archive or checking the target): the target is unchanged")
		assert.Zero(t, srv.EventCount("target"))
	}
}
