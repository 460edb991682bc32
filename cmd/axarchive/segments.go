package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/writer"
)

// errBackupDamaged makes the exit status 3: the segment files are not a usable backup as they are.
var errBackupDamaged = errors.New("the segment files are damaged or incomplete")

// errSegmentsIncomplete makes the exit status 3 for a directory an import --segments has not finished.
var errSegmentsIncomplete = errors.New("incomplete segment store")

func segmentsCommand() *cli.Command {
	return &cli.Command{
		Name:      "segments",
		Usage:     "check whether a copy of Axon Server segment files is a complete, intact backup",
		ArgsUsage: "DIR",
		Description: `axarchive segments [--json] DIR

DIR is a context directory (data/<context>/) or a copy of one. Reads every *.events and
*.snapshots file (read-only), checks headers, every block's CRC-32, end markers and the
token continuity between files, and prints per file: version, blocks, events, token range,
checksums and end state; then a verdict.

Exit status: 0 intact, 1 error, 2 usage, 3 damaged or incomplete (a cut tail of the newest
file, as a copy of a running server leaves it, is reported but is not damage).`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.StringFlag{Name: "events-dir", Usage: "`DIR` of the *.events files, when apart from the snapshots"},
			&cli.StringFlag{Name: "snapshots-dir", Usage: "`DIR` of the *.snapshots files"},
		},
		Action: func(c *cli.Context) error {
			opts := reader.SegmentsOptions{EventsDir: c.String("events-dir"), SnapshotsDir: c.String("snapshots-dir")}
			if opts.EventsDir == "" && opts.SnapshotsDir == "" {
				args, err := archiveArgs(c, 1, 1)
				if err != nil {
					return err
				}
				opts.Dir = args[0]
			} else if err := noArgs(c); err != nil {
				return err
			}
			if opts.Dir != "" {
				if _, err := os.Lstat(filepath.Join(opts.Dir, writer.SegmentJournal)); err == nil {
					return fmt.Errorf("%w: %s holds an interrupted import --segments (%s): its files still have temporary names; complete it with axarchive import --segments %s --resume ARCHIVE",
						errSegmentsIncomplete, opts.Dir, writer.SegmentJournal, opts.Dir)
				}
			}
			rep, err := reader.CheckSegments(opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if err := rep.WriteText(c.App.Writer); err != nil {
				return err
			}
			if rep.Verdict == reader.VerdictDamaged {
				return errBackupDamaged
			}
			return nil
		},
	}
}
