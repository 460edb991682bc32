package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/writer"
)

// The offline import: archives to segment files, the mirror of export --segments.

func segmentImportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "segments", Usage: "import offline: write the archive as Axon Server segment files into the empty or new context `DIR` (no server)"},
		&cli.Int64Flag{Name: "segment-size", Value: writer.DefaultSegmentSize, Usage: "with --segments: the size of each file in `BYTES` (the server's axoniq.axonserver.event.segment-size)"},
		&cli.BoolFlag{Name: "compare", Usage: "with --segments: also compare every event and snapshot read back with the archive's (takes about as long again as the writing)"},
	}
}

// segmentOnlyConflicts are the flags of the import into a server that mean nothing offline.
var segmentOnlyConflicts = []string{"server", "context", "access-token", "access-token-file", "tls", "ca-cert", "client-cert",
	"client-key", "tls-skip-verify", "renumber", "token-map", "no-verify", "max-transaction-events", "max-message-size", "retries"}

func segmentImportAction(c *cli.Context, dirs []string) error {
	for _, name := range segmentOnlyConflicts {
		if c.IsSet(name) {
			return usageErrorf("--%s: import --segments writes files and talks to no server", name)
		}
	}
	dir := c.String("segments")
	if dir == "" {
		return usageErrorf("--segments: give the directory to write the segment files into")
	}
	size := c.Int64("segment-size")
	if size < 4096 {
		return usageErrorf("--segment-size %d: give the server's segment size in bytes (268435456 by default)", size)
	}
	mode, err := parseProgressMode(c.String("progress"), c.Bool("quiet"))
	if err != nil {
		return err
	}
	ids, s3, err := archiveReadFlags(c)
	if err != nil {
		return err
	}
	if c.Bool("compare") && c.Bool("no-check") {
		return usageErrorf("--compare and --no-check: the comparison reads the files back, which --no-check leaves out")
	}
	opts := job.SegmentOptions{Dir: dir, SegmentSize: size, Resume: c.Bool("resume"), DryRun: c.Bool("dry-run"), Identities: ids, S3: s3,
		NoCheck: c.Bool("no-check"), Compare: c.Bool("compare")}
	line := fmt.Sprintf("axarchive import --segments %s", dir)
	for _, id := range c.StringSlice("identity") {
		line += " --identity " + id
	}
	if c.IsSet("segment-size") {
		line += fmt.Sprintf(" --segment-size %d", size)
	}
	for _, name := range []string{"no-check", "compare"} {
		if c.Bool(name) {
			line += " --" + name
		}
	}
	return runSegmentImport(c, opts, dirs, mode, line, c.App.Writer, c.App.ErrWriter)
}

func runSegmentImport(c *cli.Context, opts job.SegmentOptions, dirs []string, mode progressMode, line string, stdout, stderr io.Writer) error {
	progress := new(job.ImportProgress)
	opts.Progress = progress
	rep := startProgress(stderr, mode, func() progressSample {
		s := progressSample{Phase: "import", Records: progress.Events.Load(), Bytes: progress.Bytes.Load(), Token: progress.Token.Load()}
		if ph, _ := progress.Phase.Load().(string); ph != "" {
			s.Phase = ph
		}
		switch s.Phase {
		case "snapshots":
			s.Records = progress.Snapshots.Load()
		case "checking":
			s.Records = progress.Checked.Load()
			s.Percent = percent(s.Records, progress.Total.Load())
		default:
			s.Percent = percent(s.Records, progress.Total.Load())
		}
		return s
	})
	opts.Warn = rep.warn
	start := time.Now()
	plan, err := job.ImportSegments(c.Context, dirs, opts)
	if err == nil {
		progress.Phase.Store("done")
	}
	rep.finish()
	if err != nil {
		var pe *job.SegmentProgressError
		var ce *job.CheckError
		var differs *job.SegmentCheckError
		again := fmt.Sprintf("%s --resume %s", line, strings.Join(dirs, " "))
		switch {
		case errors.As(err, &pe):
			return &continueError{err: err, hint: "to continue, run: " + again}
		case errors.As(err, &differs):
			if differs.Diff != nil {
				printDiff(stdout, differs.Diff, len(dirs), false)
			}
			return &continueError{err: differsError{err},
				hint: fmt.Sprintf("do not start a server on %s (its %s stays to say so): remove the directory and import again; if the files differ again, the disk or axarchive is at fault: please report it", plan.Dir, writer.SegmentJournal)}
		case errors.As(err, &ce):
			if errors.Is(err, context.Canceled) {
				return &continueError{err: err, hint: "the files are complete but not checked: to check them, run: " + again}
			}
			return &continueError{err: err, hint: fmt.Sprintf("do not start a server on %s until a check passes; to check it again, run: %s", plan.Dir, again)}
		}
		return err
	}
	if opts.DryRun {
		fmt.Fprintf(stdout, "plan (dry run, nothing written):\n")
		fmt.Fprintf(stdout, "  archives:      %s\n", strings.Join(plan.Archives, " "))
		fmt.Fprintf(stdout, "  directory:     %s\n", plan.Dir)
		fmt.Fprintf(stdout, "  token range:   %d-%d\n", plan.FirstToken, plan.LastToken)
		fmt.Fprintf(stdout, "  events:        %d, %s\n", plan.Events, groupingText(plan.Grouped))
		fmt.Fprintf(stdout, "  snapshots:     %d\n", plan.Snapshots)
		fmt.Fprintf(stdout, "  size:          about %d bytes (%d free)\n", plan.Bytes, plan.Free)
		return nil
	}
	if !rep.quiet() {
		el := time.Since(start)
		fmt.Fprintf(stdout, "wrote %d events in %d transactions and %d snapshots as segment files into %s in %s (%.0f events/s)\n",
			progress.Events.Load(), progress.Transactions.Load(), progress.Snapshots.Load(), plan.Dir,
			el.Round(time.Millisecond), float64(progress.Events.Load())/max(el.Seconds(), 1e-9))
		switch d := plan.Diff; {
		case d != nil:
			fmt.Fprintf(stdout, "checked: the files read back equal the archive (%s and %s compared)\n", plural(d.Events, "event"), plural(d.Snapshots, "snapshot"))
		case plan.ReadBack:
			fmt.Fprintf(stdout, "checked: the files read back hold what was written (every block intact and in place)\n")
		}
		fmt.Fprintf(stdout, "to restore: stop Axon Server, move the files into the context's directory (SE: data/default), start it\n")
	}
	return nil
}

func groupingText(grouped bool) string {
	if grouped {
		return "one block per recorded transaction"
	}
	return "one block per event (the archive records no transactions)"
}

// differsError is a check's finding that exits as the target differing from the archive does (exit 4),
// said in its own words.
type differsError struct{ err error }

func (e differsError) Error() string   { return e.err.Error() }
func (e differsError) Unwrap() []error { return []error{e.err, errTargetDiffers} }
