package main

import (
	"bufio"
	"context"
	"filippo.io/age"
	"io"
	"math"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
)

func catCommand() *cli.Command {
	return &cli.Command{
		Name:      "cat",
		Usage:     "print an archive's records as JSON Lines, exactly as stored (for jq)",
		ArgsUsage: "DIR",
		Description: `axarchive cat [--snapshots] [--from-token N] [--to-token N] [--type T] [--aggregate ID] DIR

Prints the event records (or, with --snapshots, the snapshot records) in order, one JSON object
per line, byte for byte as stored. Every chunk read is checked against the manifest; a chunk that
does not match stops the output with exit status 3. With --snapshots, --from-token and
--to-token select positions.

Exit status: 0 done, 1 error, 2 usage, 3 archive invalid, corrupt or incomplete, 130 interrupted.`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "snapshots", Usage: "print the snapshots instead of the events"},
			&cli.Int64Flag{Name: "from-token", DefaultText: "the first", Usage: "print records from `TOKEN` on"},
			&cli.Int64Flag{Name: "to-token", DefaultText: "the last", Usage: "print records up to `TOKEN` (inclusive)"},
			&cli.StringSliceFlag{Name: "type", Usage: "print only records of payload `TYPE` (repeatable)"},
			&cli.StringSliceFlag{Name: "aggregate", Usage: "print only records of aggregate `ID` (repeatable)"},
			identityFlag(),
		}, s3Flags()...),
		Action: func(c *cli.Context) error {
			args, err := archiveArgs(c, 1, 1)
			if err != nil {
				return err
			}
			o := catOptions{dir: args[0], snapshots: c.Bool("snapshots"), from: math.MinInt64, to: math.MaxInt64,
				types: c.StringSlice("type"), aggregates: c.StringSlice("aggregate")}
			if c.IsSet("from-token") {
				o.from = c.Int64("from-token")
			}
			if c.IsSet("to-token") {
				o.to = c.Int64("to-token")
			}
			if o.to < o.from {
				return usageErrorf("--to-token %d is before --from-token %d", o.to, o.from)
			}
			if o.identities, o.s3, err = archiveReadFlags(c); err != nil {
				return err
			}
			return runCat(c.Context, o, c.App.Writer)
		},
	}
}

type catOptions struct {
	dir        string
	snapshots  bool
	from, to   int64
	types      []string
	aggregates []string
	identities []age.Identity
	s3         *s3store.Options
}

func runCat(ctx context.Context, o catOptions, stdout io.Writer) error {
	a, err := location.Open(ctx, o.dir, o.s3)
	if err != nil {
		return err
	}
	a.SetIdentities(o.identities...)
	var it *archive.Iterator
	if o.snapshots {
		it = a.SnapshotsFrom(ctx, o.from)
	} else {
		it = a.Events(ctx, o.from)
	}
	defer it.Close()
	out := bufio.NewWriterSize(stdout, 256<<10)
	parse := len(o.types) > 0 || len(o.aggregates) > 0
	printedFrom := "" // chunk of the last line printed
	for it.Next() {
		path, _ := it.Path()
		if it.Token() > o.to {
			// Read on to the end of the chunk printed from, so that what was printed is checked.
			if path != printedFrom {
				break
			}
			continue
		}
		if parse {
			r, err := it.Record()
			if err != nil {
				out.Flush()
				return err
			}
			typ := ""
			if r.Payload != nil {
				typ = r.Payload.Type
			}
			if len(o.types) > 0 && !slices.Contains(o.types, typ) {
				continue
			}
			if len(o.aggregates) > 0 && !slices.Contains(o.aggregates, r.AggregateID) {
				continue
			}
		}
		if _, err := out.Write(it.Line()); err != nil {
			return err
		}
		printedFrom = path
	}
	if err := out.Flush(); err != nil {
		return err
	}
	return it.Err()
}
