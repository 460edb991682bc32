package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("disk full"), exitError},
		{usageErrorf("bad flag"), exitUsage},
		{fmt.Errorf("wrapped: %w", usageErrorf("x")), exitUsage},
		{context.Canceled, exitInterrupted},
		{fmt.Errorf("export stopped: %w", context.Canceled), exitInterrupted},
		{fmt.Errorf("%w: 2 problems", archive.ErrVerify), exitInvalid},
		{fmt.Errorf("x: %w", archive.ErrIncomplete), exitInvalid},
		{&archive.Error{Path: "data/manifest.json", Token: -1, Err: archive.ErrVersion}, exitInvalid},
		{&archive.Error{Path: "data/events/x", Line: 3, Token: 2, Err: archive.ErrRecord}, exitInvalid},
		{errors.Join(errors.New("a"), archive.ErrManifest), exitInvalid},
		{archive.ErrChain, exitInvalid},
		{errBackupDamaged, exitInvalid},
		{&job.InterruptedError{Err: &reader.SegmentError{File: "00000000000000000000.events", Err: reader.ErrChecksum}}, exitInvalid},
		{&job.InterruptedError{Err: fmt.Errorf("x: %w", reader.ErrGap)}, exitInvalid},
		{&reader.SegmentError{File: "x.events", Token: -1, Err: fmt.Errorf("%w: a FIFO", reader.ErrNotSegment)}, exitInvalid},
		{job.ErrChain, exitInvalid},
		{fmt.Errorf("x: %w", job.ErrEmpty), exitError},
		{&interruptedBeforeSending{err: context.Canceled}, exitInterrupted},
		{errTargetDiffers, exitDiffers},
		{archive.ErrNotEmpty, exitError},
		{archive.ErrMismatch, exitError},
		{os.ErrNotExist, exitError},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, exitCode(tc.err), "%v", tc.err)
	}
}

// TestExitCodeOfCommands runs the commands in-process on the vectors: testscript's "!" only says
// "not zero".
func TestExitCodeOfCommands(t *testing.T) {
	v := "../../testdata/archives/v1/"
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"verify", v + "golden"}, exitOK},
		{[]string{"verify", "--quick", v + "golden"}, exitOK},
		{[]string{"verify", v + "golden", v + "golden-incremental"}, exitOK},
		{[]string{"verify", v + "golden-incremental", v + "golden"}, exitInvalid},
		{[]string{"verify", v + "bad-flipped-bit"}, exitInvalid},
		{[]string{"verify", v + "incomplete"}, exitInvalid},
		{[]string{"verify", v + "bad-version"}, exitInvalid},
		{[]string{"verify", filepath.Join(t.TempDir(), "nothing")}, exitError},
		{[]string{"verify"}, exitUsage},
		{[]string{"verify", v + "golden", "--quick"}, exitUsage},
		{[]string{"verify", "--no-such-flag", v + "golden"}, exitUsage},
		{[]string{"inspect", v + "golden"}, exitOK},
		{[]string{"inspect", v + "golden", v + "golden"}, exitUsage},
		{[]string{"inspect", v + "incomplete"}, exitInvalid},
		{[]string{"cat", v + "golden"}, exitOK},
		{[]string{"cat", v + "bad-truncated-chunk"}, exitInvalid},
		{[]string{"cat", "--from-token", "5", "--to-token", "1", v + "golden"}, exitUsage},
		{[]string{"no-such-command"}, exitUsage},
		{[]string{}, exitUsage},
		{[]string{"--help"}, exitOK},
		{[]string{"--version"}, exitOK},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := newApp(&stdout, &stderr).RunContext(context.Background(), append([]string{"axarchive"}, tc.args...))
			assert.Equal(t, tc.want, exitCode(err), "error: %v\nstderr: %s", err, stderr.String())
		})
	}
}

func TestPrintError(t *testing.T) {
	var b bytes.Buffer
	printError(&b, errors.Join(errors.New("first problem"), fmt.Errorf("second: %w", archive.ErrIncomplete)))
	assert.Equal(t, "axarchive: error: first problem\n"+
		"axarchive: error: second: incomplete archive (run export with --resume)\n"+
		"axarchive: hint: the directory holds an interrupted export: run the same export command with --resume to complete it\n", b.String())
}
