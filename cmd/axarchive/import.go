package main

import (
	"context"
	"errors"
	"filippo.io/age"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
)

func importCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted import: the target's head must be an event of the archive"},
		&cli.BoolFlag{Name: "renumber", Usage: "let events take the target's next tokens (filtered or merged archives, non-empty targets)"},
		&cli.StringFlag{Name: "token-map", Usage: "with --renumber: write the archive-token to target-token map to `FILE` (default: next to the archive)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and send nothing"},
		&cli.BoolFlag{Name: "no-verify", Usage: "skip the full verification of the archive before sending"},
		&cli.BoolFlag{Name: "no-check", Usage: "skip the comparison of the target with the archive afterwards"},
		checkRetriesFlag("the check's"),
		&cli.IntFlag{Name: "max-transaction-events", Value: job.MaxTransactionEvents, Usage: "at most `N` events per AppendEvent transaction"},
		&cli.Int64Flag{Name: "max-transaction-bytes", Value: job.DefaultTransactionBytes, Usage: "at most `BYTES` of events per AppendEvent transaction (never more than --max-message-size allows; a larger event goes alone)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress on stderr: auto, json or none"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors and warnings"},
		identityFlag(),
	}
	flags = append(flags, segmentImportFlags()...)
	flags = append(flags, s3Flags()...)
	return &cli.Command{
		Name:      "import",
		Usage:     "replay archives into an empty context, then prove the target equals them",
		ArgsUsage: "DIR [DIR...]",
		Description: `axarchive import --server HOST:PORT --context CTX DIR [DIR...]
axarchive import --segments CONTEXT_DIR DIR [DIR...]

Appends the events in token order, committing one transaction at a time, so that each keeps its token,
and each snapshot once its aggregate's event at its sequence is committed (while the events are
appended, or after them); then compares the target with the archive (--no-check skips it).
Several DIRs form an incremental chain and are imported in order. An archive that records
its source's transactions (an offline export) is sent one transaction per recorded one.

With --segments, no server is involved: the archive is written as Axon Server segment files
(*.events, *.snapshots) into CONTEXT_DIR, which must be empty or absent, at disk speed, then
read back as the server will read them and compared with what was written (--no-check skips
it; --compare also compares every record with the archive's); stop the server, put them in the
context's directory (SE: data/default) and start it. Until the store is complete and checked the
directory holds axarchive-segments.json; --resume continues an interrupted run.

Exit status: 0 imported and equal, 1 error (the message says how far it got and how to
continue), 2 usage, 3 archive invalid, 4 target differs from the archive, 130 interrupted.`,
		Flags: append(flags, connFlags()...),
		Action: func(c *cli.Context) error {
			dirs, err := archiveArgs(c, 1, -1)
			if err != nil {
				return err
			}
			if c.IsSet("segments") {
				return segmentImportAction(c, dirs)
			}
			if c.IsSet("segment-size") {
				return usageErrorf("--segment-size: only with --segments")
			}
			if c.IsSet("compare") {
				return usageErrorf("--compare: only with --segments (an import into a server compares the target with the archive unless --no-check)")
			}
			conn, err := readConnFlags(c)
			if err != nil {
				return err
			}
			mode, err := parseProgressMode(c.String("progress"), c.Bool("quiet"))
			if err != nil {
				return err
			}
			if n := c.Int("max-transaction-events"); n < 1 || n > job.MaxTransactionEvents {
				return usageErrorf("--max-transaction-events %d: Axon Server takes 1 to %d events per transaction", n, job.MaxTransactionEvents)
			}
			if n := c.Int64("max-transaction-bytes"); n < 1 {
				return usageErrorf("--max-transaction-bytes %d: give a size in bytes, at least 1", n)
			}
			if n := c.Int("max-message-size"); n < 64<<10 {
				return usageErrorf("--max-message-size %d: give the server's axoniq.axonserver.max-message-size in bytes (4194304 by default)", n)
			}
			retries, err := checkRetries(c)
			if err != nil {
				return err
			}
			ids, s3, err := archiveReadFlags(c)
			if err != nil {
				return err
			}
			o := importOptions{dirs: dirs, conn: conn, progress: mode, noCheck: c.Bool("no-check"), args: c.Args().Slice(),
				flagsLine: importFlagsLine(c), diffFlagsLine: connFlagsLine(c), checkRetries: retries, identities: ids, s3: s3}
			o.opts = job.ImportOptions{
				Resume:               c.Bool("resume"),
				Renumber:             c.Bool("renumber"),
				TokenMap:             c.String("token-map"),
				DryRun:               c.Bool("dry-run"),
				NoVerify:             c.Bool("no-verify"),
				MaxMessageSize:       c.Int("max-message-size"),
				MaxTransactionEvents: c.Int("max-transaction-events"),
				MaxTransactionBytes:  c.Int64("max-transaction-bytes"),
			}
			if o.opts.Renumber && o.opts.TokenMap == "" {
				o.opts.TokenMap = strings.TrimRight(dirs[len(dirs)-1], "/") + ".tokenmap"
				if location.IsRemote(dirs[len(dirs)-1]) {
					// Beside the archive is a local file: in the working directory, named after the prefix.
					o.opts.TokenMap = path.Base(strings.TrimRight(dirs[len(dirs)-1], "/")) + ".tokenmap"
				}
			}
			return runImport(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

type importOptions struct {
	dirs          []string
	conn          connOptions
	opts          job.ImportOptions
	progress      progressMode
	noCheck       bool
	checkRetries  int // CompareOptions.MaxRetries
	args          []string
	flagsLine     string
	diffFlagsLine string
	identities    []age.Identity
	s3            *s3store.Options
}

// connFlagsLine rebuilds the connection flags of the command line, leaving out the token itself.
func connFlagsLine(c *cli.Context) string {
	var parts []string
	for _, name := range []string{"server", "context", "access-token-file", "ca-cert", "client-cert", "client-key", "max-message-size"} {
		if c.IsSet(name) {
			parts = append(parts, fmt.Sprintf("--%s %s", name, c.String(name)))
		}
	}
	for _, id := range c.StringSlice("identity") {
		parts = append(parts, "--identity "+id)
	}
	for _, name := range []string{"tls", "tls-skip-verify"} {
		if c.Bool(name) {
			parts = append(parts, "--"+name)
		}
	}
	return strings.Join(parts, " ")
}

// importFlagsLine rebuilds the flags of the command line for the "to continue, run" hint: the connection
// flags, and those that make the import what it is, leaving out the token itself.
func importFlagsLine(c *cli.Context) string {
	parts := []string{connFlagsLine(c)}
	if c.IsSet("token-map") {
		parts = append(parts, "--token-map "+c.String("token-map"))
	}
	for _, name := range []string{"no-verify", "renumber", "no-check"} {
		if c.Bool(name) {
			parts = append(parts, "--"+name)
		}
	}
	return strings.Join(parts, " ")
}

var errTargetDiffers = errors.New("the target context differs from the archive")

func runImport(ctx context.Context, o importOptions, stdout, stderr io.Writer) error {
	progress := new(job.ImportProgress)
	o.opts.Progress = progress
	rep := startProgress(stderr, o.progress, func() progressSample {
		s := progressSample{Phase: "import", Records: progress.Events.Load(), Bytes: progress.Bytes.Load(), Token: progress.Token.Load()}
		if ph, _ := progress.Phase.Load().(string); ph != "" {
			s.Phase = ph
		}
		switch s.Phase {
		case "snapshots":
			s.Records = progress.Snapshots.Load()
		case "done":
			s.Percent = 100
		default:
			s.Percent = percent(s.Records, progress.Total.Load())
		}
		return s
	})
	o.opts.Warn = rep.warn
	o.opts.Check, o.opts.CheckRetries = !o.noCheck, o.checkRetries
	o.conn.reportRetries(rep.warn)
	// Opened before the server is dialled, so that a directory that is not an archive, or an incomplete
	// one, is reported as such (exit 3) and not hidden behind a connection error; the same archives then
	// serve the import and its proof.
	archives, err := job.OpenArchivesAt(ctx, o.dirs, o.s3, o.identities...)
	if err != nil {
		rep.finish()
		return err
	}
	conn, err := o.conn.dial(ctx, stderr)
	if err != nil {
		rep.finish()
		if errors.Is(err, context.Canceled) {
			return &interruptedBeforeSending{err: err}
		}
		return err
	}
	defer conn.Close()
	res, err := job.ImportArchives(ctx, conn, archives, o.opts)
	var checkErr *job.CheckError
	if err == nil || errors.As(err, &checkErr) {
		progress.Phase.Store("done") // the final progress sample counts events, not snapshots
	}
	rep.finish()
	if err != nil && checkErr == nil {
		var pe *job.ProgressError
		if errors.Is(err, context.Canceled) && !res.Started && !errors.As(err, &pe) {
			return &interruptedBeforeSending{err: err}
		}
		if errors.As(err, &pe) {
			return &continueError{err: err, hint: fmt.Sprintf("to continue, run: axarchive import --resume %s %s", o.flagsLine, strings.Join(o.dirs, " "))}
		}
		return err
	}
	if o.opts.DryRun {
		printPlan(stdout, res.Plan, conn)
		return nil
	}
	if !rep.quiet() {
		el := res.Took
		rate := ""
		if n := progress.Events.Load(); n > 0 {
			rate = fmt.Sprintf(" (%.0f events/s)", float64(n)/max(el.Seconds(), 1e-9))
		}
		if progress.Events.Load() == 0 && progress.Snapshots.Load() == 0 && o.opts.Resume {
			fmt.Fprintf(stdout, "nothing left to import: %s/%s already holds every event and snapshot of the archive\n", conn.Address(), conn.Context())
		} else {
			fmt.Fprintf(stdout, "imported %s in %s and %s into %s/%s in %s%s\n",
				plural(progress.Events.Load(), "event"), plural(progress.Transactions.Load(), "transaction"), plural(progress.Snapshots.Load(), "snapshot"),
				conn.Address(), conn.Context(), el.Round(time.Millisecond), rate)
		}
	}
	if checkErr != nil {
		diff := "axarchive diff " + o.diffFlagsLine
		if o.opts.Renumber {
			diff += " --token-map " + o.opts.TokenMap
		}
		return &continueError{err: checkErr,
			hint: fmt.Sprintf("the import itself is complete; to run the check again, run: %s %s", diff, strings.Join(o.dirs, " "))}
	}
	if o.noCheck {
		return nil
	}
	return printDiff(stdout, res.Diff, len(o.dirs), o.progress == progressQuiet)
}

func printPlan(w io.Writer, p *job.Plan, conn *axonclient.Conn) {
	fmt.Fprintf(w, "plan (dry run, nothing sent):\n")
	fmt.Fprintf(w, "  archives:      %s\n", strings.Join(p.Archives, " "))
	fmt.Fprintf(w, "  target:        %s context %s, ", conn.Address(), conn.Context())
	if p.TargetHead < 0 {
		fmt.Fprintf(w, "empty\n")
	} else {
		fmt.Fprintf(w, "ends at token %d\n", p.TargetHead)
	}
	fmt.Fprintf(w, "  token range:   %d-%d (sending from %d)\n", p.FirstToken, p.LastToken, p.StartAt)
	fmt.Fprintf(w, "  events:        %d in %d transactions, %d bytes\n", p.Events, p.Transactions, p.Bytes)
	fmt.Fprintf(w, "  snapshots:     %d\n", p.Snapshots)
	if p.Renumber {
		fmt.Fprintf(w, "  renumbered:    events take target tokens from %d\n", p.TargetFirst)
	}
}

// interruptedBeforeSending is an import stopped (Ctrl-C, SIGTERM) while it still verified the archive or
// checked the target: the message says that the target was not touched.
type interruptedBeforeSending struct{ err error }

func (e *interruptedBeforeSending) Error() string {
	return "interrupted before anything was sent (while connecting, verifying the archive or checking the target): the target is unchanged"
}
func (e *interruptedBeforeSending) Unwrap() error { return e.err }

// continueError carries the exact command that continues a failed import.
type continueError struct {
	err  error
	hint string
}

func (e *continueError) Error() string { return e.err.Error() }
func (e *continueError) Unwrap() error { return e.err }

// checkRetriesFlag is --retries of the commands that compare a target with an archive. Appends are never
// retried; the comparison's event stream is re-opened where it was lost.
func checkRetriesFlag(whose string) cli.Flag {
	return &cli.IntFlag{Name: "retries", Value: job.DefaultCheckRetries,
		Usage: "re-open " + whose + " lost event stream up to `N` times in a row, waiting 0.2 s doubling up to 10 s between tries (10: about a minute; 0: never)"}
}

// checkRetries reads --retries as CompareOptions.MaxRetries.
func checkRetries(c *cli.Context) (int, error) {
	n := c.Int("retries")
	if n < 0 {
		return 0, usageErrorf("--retries %d: give 0 or more", n)
	}
	return retriesOption(n), nil
}

// retriesOption turns --retries into the MaxRetries of the export and writer options, where 0 means the
// default and a negative value none.
func retriesOption(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
