package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/job"
)

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "compare a live context with archives, event by event and snapshot by snapshot",
		ArgsUsage: "DIR [DIR...]",
		Description: `axarchive diff --server HOST:PORT --context CTX DIR [DIR...]

Streams the context and compares it with the archive (or a chain of incremental archives):
token, identity and bytes of every event, and every snapshot. Prints the first differences
and a verdict with both fingerprints. For a target of a renumbered import, give its token
map (--token-map): the archive's events are then expected from the target token it names.

Exit status: 0 equal, 1 error, 2 usage, 3 archive invalid (or not a chain), 4 the target differs,
130 interrupted.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "token-map", Usage: "the target was filled by import --renumber with this token map `FILE`"},
			checkRetriesFlag("a"),
			identityFlag(),
		}, append(connFlags(), s3Flags()...)...),
		Action: func(c *cli.Context) error {
			dirs, err := archiveArgs(c, 1, -1)
			if err != nil {
				return err
			}
			co, err := readConnFlags(c)
			if err != nil {
				return err
			}
			ids, s3, err := archiveReadFlags(c)
			if err != nil {
				return err
			}
			archives, err := job.OpenArchivesAt(c.Context, dirs, s3, ids...)
			if err != nil {
				return err
			}
			conn, err := co.dial(c.Context, c.App.ErrWriter)
			if err != nil {
				return err
			}
			defer conn.Close()
			retries, err := checkRetries(c)
			if err != nil {
				return err
			}
			copts := job.CompareOptions{MaxRetries: retries, Warn: func(msg string) {
				fmt.Fprintf(c.App.ErrWriter, "axarchive: warning: %s\n", msg)
			}}
			if path := c.String("token-map"); path != "" {
				first, err := job.TokenMapTargetFirst(path)
				if err != nil {
					return err
				}
				copts.TargetFirst = &first
			}
			d, err := job.CompareArchives(c.Context, conn, archives, copts)
			if err != nil {
				return err
			}
			return printDiff(c.App.Writer, d, len(dirs), false)
		},
	}
}

// printDiff prints the verdict, the differences and the fingerprints, each fingerprint said for what it
// covers, so that the verdict and the fingerprints never seem to contradict each other.
func printDiff(w io.Writer, d *job.Diff, archives int, quiet bool) error {
	what := "archive"
	if archives > 1 {
		what = fmt.Sprintf("the chain of %d archives", archives)
	}
	compared := fmt.Sprintf("%s and %s compared", plural(d.Events, "event"), plural(d.Snapshots, "snapshot"))
	fingerprints := func() {
		switch {
		case archives > 1:
			// A chain has no one fingerprint: each archive's covers its own records only.
			fmt.Fprintf(w, "last archive's fingerprint    %s (its own records only)\n", d.ArchiveFingerprint)
			fmt.Fprintf(w, "target records' fingerprint   %s (all %s compared)\n", d.TargetFingerprint, plural(d.Events+d.Snapshots, "record"))
		case d.ArchiveFingerprint == d.TargetFingerprint:
			fmt.Fprintf(w, "fingerprint %s (archive and target records alike)\n", d.ArchiveFingerprint)
		default:
			fmt.Fprintf(w, "archive fingerprint %s\ntarget  fingerprint %s\n", d.ArchiveFingerprint, d.TargetFingerprint)
		}
	}
	if d.Equal() {
		if !quiet {
			fmt.Fprintf(w, "target equals %s: %s\n", what, compared)
			fingerprints()
			if d.SnapshotFlagOnly {
				fmt.Fprintln(w, "note: the target serves snapshots with the snapshot flag set, which the archive's records (from segment files) do not carry; the fingerprints differ by that flag only")
			}
		}
		return nil
	}
	fmt.Fprintf(w, "target DIFFERS from %s (%s):\n", what, compared)
	for _, s := range d.Differences {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if d.More > 0 {
		fmt.Fprintf(w, "  ... and %s more\n", plural(d.More, "difference"))
	}
	fingerprints()
	if archives == 1 && d.ArchiveFingerprint == d.TargetFingerprint {
		fmt.Fprintln(w, "note: the records compared are equal; the differences are in what only one side holds (the fingerprint covers the archive's records)")
	}
	return errTargetDiffers
}
