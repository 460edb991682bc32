package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
)

func exportCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "archive `DIR` (or s3://BUCKET/PREFIX) to write (must not exist or be empty, unless --resume)"},
		&cli.StringFlag{Name: "segments", Usage: "export offline from the segment files in context `DIR` (data/<context>/ or a copy)"},
		&cli.StringFlag{Name: "events-dir", Usage: "offline: `DIR` of the *.events files, when apart from the snapshots"},
		&cli.StringFlag{Name: "snapshots-dir", Usage: "offline: `DIR` of the *.snapshots files"},
		&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted export in the output directory"},
		&cli.BoolFlag{Name: "allow-empty", Usage: "write an empty archive for a context with no events (without it, that is an error: usually a mistyped --context)"},
		&cli.Int64Flag{Name: "from-token", Value: -1, DefaultText: "the first", Usage: "first `TOKEN` to export"},
		&cli.Int64Flag{Name: "to-token", Value: -1, DefaultText: "the head when the export starts", Usage: "last `TOKEN` to export"},
		&cli.StringFlag{Name: "from-time", Usage: "live: export events from `TIME` (RFC 3339) on, as found by the server's token index"},
		&cli.StringFlag{Name: "to-time", Usage: "live: export events before `TIME` (RFC 3339)"},
		&cli.StringSliceFlag{Name: "include-type", Usage: "export only events of payload `TYPE` (repeatable)"},
		&cli.StringSliceFlag{Name: "exclude-type", Usage: "leave out events of payload `TYPE` (repeatable)"},
		&cli.StringSliceFlag{Name: "aggregate-type", Usage: "export only events of aggregate `TYPE` (repeatable)"},
		&cli.StringFlag{Name: "snapshots", Value: "all", Usage: "snapshots to export: all, latest or none"},
		&cli.StringFlag{Name: "since", Usage: "incremental: continue after the last token of the archive in `DIR` (or s3://BUCKET/PREFIX) and link to it"},
		&cli.Int64Flag{Name: "chunk-size", Value: 64 << 20, Usage: "start a new chunk after `BYTES` of JSON Lines"},
		&cli.Int64Flag{Name: "chunk-records", Value: 1 << 20, Usage: "start a new chunk after `N` records"},
		&cli.IntFlag{Name: "level", Value: job.DefaultLevel, Usage: "zstd compression `LEVEL`, 1 to 22: 1 (the default) is the fastest; 3 is about 1% smaller and a fifth slower to export; 7 and up are smaller still and much slower"},
		&cli.IntFlag{Name: "retries", Value: reader.DefaultMaxRetries, Usage: "re-open a lost event stream up to `N` times in a row, waiting 0.2 s doubling up to 10 s between tries (10: about a minute; 0: never)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress on stderr: auto, json or none"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors and warnings"},
		signKeyFlag(),
		identityFlag(),
	}
	flags = append(flags, recipientFlags()...)
	flags = append(flags, retentionFlags()...)
	flags = append(flags, s3Flags()...)
	return &cli.Command{
		Name:      "export",
		Usage:     "export a context (live or from segment files) into an archive",
		ArgsUsage: " ",
		Description: `Live:    axarchive export --server HOST:PORT --context CTX -o DIR
Offline: axarchive export --segments DATA/CTX -o DIR
         (the manifest names the context after the directory; --context NAME names it otherwise)
S3:      axarchive export ... -o s3://BUCKET/PREFIX [--retain-until DATE]
         (credentials and endpoint from the AWS environment: AWS_PROFILE, AWS_ENDPOINT_URL, ...)

Exports every event in token order, up to the head captured at the start, and the snapshots.
An interrupted export (Ctrl-C, kill, crash, lost network) is continued by running the same
command with --resume; the result equals an uninterrupted run.

Exit status: 0 done, 1 error (the directory stays resumable; also a context with no events, unless
--allow-empty), 2 usage, 3 damaged segment files, 130 interrupted.`,
		Flags: append(flags, connFlags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			opts, err := readExportFlags(c)
			if err != nil {
				return err
			}
			return runExport(c.Context, opts, c.App.Writer, c.App.ErrWriter)
		},
	}
}

type exportOptions struct {
	export   job.ExportOptions
	conn     *connOptions
	segments *reader.SegmentsOptions
	progress progressMode
}

func readExportFlags(c *cli.Context) (exportOptions, error) {
	var o exportOptions
	o.export = job.ExportOptions{
		Dir:          c.String("output"),
		Resume:       c.Bool("resume"),
		AllowEmpty:   c.Bool("allow-empty"),
		Snapshots:    c.String("snapshots"),
		Since:        c.String("since"),
		ChunkBytes:   c.Int64("chunk-size"),
		ChunkRecords: c.Int64("chunk-records"),
		Level:        c.Int("level"),
		MaxRetries:   retriesOption(c.Int("retries")),
		Tool:         "axarchive " + version,
	}
	if c.Int("retries") < 0 {
		return o, usageErrorf("--retries %d: give 0 or more", c.Int("retries"))
	}
	if o.export.Dir == "" {
		return o, usageErrorf("-o DIR is required")
	}
	var err error
	if o.export.S3, err = readS3Flags(c); err != nil {
		return o, err
	}
	if o.export.Retention, err = readRetentionFlags(c, o.export.Dir); err != nil {
		return o, err
	}
	if o.export.Dir == "-" {
		// An archive is a directory of files: there is no stream to write to stdout.
		return o, &usageError{msg: "-o -: an archive is a directory, it cannot be written to stdout", hint: "give a directory (-o ./- if you mean a directory named -); axarchive cat prints an archive's records to stdout"}
	}
	switch o.export.Snapshots {
	case job.SnapshotsAll, job.SnapshotsLatest, job.SnapshotsNone:
	default:
		return o, usageErrorf("--snapshots must be all, latest or none")
	}
	if c.IsSet("from-token") {
		v := c.Int64("from-token")
		o.export.FromToken = &v
	}
	if c.IsSet("to-token") {
		v := c.Int64("to-token")
		o.export.ToToken = &v
	}
	// Caught here, as what they are, rather than as an empty archive or a failure after the source was
	// opened.
	if f, t := o.export.FromToken, o.export.ToToken; f != nil && t != nil && *f > *t {
		return o, usageErrorf("--from-token %d is after --to-token %d", *f, *t)
	}
	if l := o.export.Level; l < 1 || l > 22 {
		return o, usageErrorf("--level %d: zstd levels go from 1 to 22", l)
	}
	if o.export.ChunkBytes <= 0 || o.export.ChunkRecords <= 0 {
		return o, usageErrorf("--chunk-size and --chunk-records must be positive")
	}
	if o.export.Resume {
		// A resumed export keeps the interrupted one's settings: only those given here are compared
		// with them (and warned about), not the defaults.
		for name, dst := range map[string]*int64{"chunk-size": &o.export.ChunkBytes, "chunk-records": &o.export.ChunkRecords} {
			if !c.IsSet(name) {
				*dst = 0
			}
		}
		if !c.IsSet("level") {
			o.export.Level = 0
		}
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"from-time", &o.export.FromTime}, {"to-time", &o.export.ToTime}} {
		if s := c.String(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return o, usageErrorf("--%s: %v", f.name, err)
			}
			*f.dst = &t
		}
	}
	if f, t := o.export.FromTime, o.export.ToTime; f != nil && t != nil && !f.Before(*t) {
		return o, usageErrorf("--from-time %s is not before --to-time %s", c.String("from-time"), c.String("to-time"))
	}
	if inc, exc, agg := c.StringSlice("include-type"), c.StringSlice("exclude-type"), c.StringSlice("aggregate-type"); len(inc)+len(exc)+len(agg) > 0 {
		o.export.Filter = &manifest.Filter{IncludeTypes: inc, ExcludeTypes: exc, AggregateTypes: agg}
	}
	if o.export.Recipients, err = recipients(c); err != nil {
		return o, err
	}
	if o.export.Identities, err = identities(c); err != nil {
		return o, err
	}
	if key := c.String("sign-key"); key != "" {
		sign, err := signFunc(key)
		if err != nil {
			return o, err
		}
		o.export.Sign = sign
	}
	mode, err := parseProgressMode(c.String("progress"), c.Bool("quiet"))
	if err != nil {
		return o, err
	}
	o.progress = mode

	offline := c.String("segments") != "" || c.String("events-dir") != "" || c.String("snapshots-dir") != ""
	switch {
	case offline && c.String("server") != "":
		return o, usageErrorf("give either --server (live export) or --segments (offline export), not both")
	case offline:
		if o.export.FromTime != nil || o.export.ToTime != nil {
			return o, usageErrorf("--from-time and --to-time need a live server (segment files have no time index); use --from-token/--to-token")
		}
		o.segments = &reader.SegmentsOptions{Dir: c.String("segments"), EventsDir: c.String("events-dir"), SnapshotsDir: c.String("snapshots-dir")}
		if c.IsSet("context") {
			o.export.Context = c.String("context") // the manifest's name for it; the default is the directory's
		}
	case c.String("server") == "":
		return o, &usageError{msg: "no source: give --server HOST:PORT (live export) or --segments DIR (offline export from segment files)", hint: "run axarchive export --help for its flags"}
	default:
		conn, err := readConnFlags(c)
		if err != nil {
			return o, err
		}
		o.conn = &conn
	}
	return o, nil
}

func runExport(ctx context.Context, o exportOptions, stdout, stderr io.Writer) error {
	progress := new(job.ExportProgress)
	o.export.Progress = progress
	rep := startProgress(stderr, o.progress, func() progressSample { return exportSample(progress) })
	o.export.Warn = rep.warn

	start := time.Now()
	var res *job.ExportResult
	var err error
	if o.segments != nil {
		res, err = job.ExportSegments(ctx, *o.segments, o.export)
	} else {
		o.conn.reportRetries(rep.warn)
		conn, derr := o.conn.dial(ctx, stderr)
		if derr != nil {
			rep.finish()
			return derr
		}
		defer conn.Close()
		res, err = job.ExportServer(ctx, conn, o.export)
	}
	rep.finish()
	if err != nil {
		return err
	}
	if !rep.quiet() {
		el := time.Since(start)
		n := progress.Events.Load()
		how := fmt.Sprintf(" (%.0f events/s)", float64(n)/max(el.Seconds(), 1e-9))
		if resumed := progress.Resumed.Load(); resumed >= 0 {
			how = fmt.Sprintf(" (resumed at token %d: %s read in this run%s)", resumed, plural(n, "event"), rateOf(n, el))
		}
		fmt.Fprintf(stdout, "exported %d events (tokens %d-%d) and %d snapshots to %s in %s%s\nfingerprint %s\n",
			res.Events, res.Range.First, res.Range.Last, res.Snapshots, res.Dir, el.Round(time.Millisecond), how, res.Fingerprint)
		if r := o.export.Retention; r != nil {
			fmt.Fprintf(stdout, "retained %d objects: %s\n", res.Retained, describeRetention(r))
		}
	}
	return nil
}

// rateOf is ", N events/s", or nothing when there was nothing to measure.
func rateOf(n int64, el time.Duration) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %.0f events/s", float64(n)/max(el.Seconds(), 1e-9))
}

// exportSample is what export's progress reports: the percentage of the token range written (of the
// aggregates asked in the snapshot phase), 100 once all is written.
func exportSample(progress *job.ExportProgress) progressSample {
	s := progressSample{Phase: "export", Records: progress.Events.Load(), Bytes: progress.Bytes.Load(), Token: progress.Token.Load()}
	if ph, _ := progress.Phase.Load().(string); ph != "" {
		s.Phase = ph
	}
	first, last := progress.First.Load(), progress.Last.Load()
	switch s.Phase {
	case "events":
		if last >= first && s.Token >= first {
			s.Percent = percent(s.Token-first+1, last-first+1)
		}
	case "snapshots":
		s.Records = progress.Snapshots.Load()
		s.Percent = percent(progress.AggsDone.Load(), progress.Aggregates.Load())
	case "committing", "retaining", "done":
		s.Percent = 100
	}
	return s
}
