package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "summarise an archive: source, ranges, counts, chunks, payload types, fingerprint",
		ArgsUsage: "DIR",
		Description: `axarchive inspect [--json] DIR

Prints what data/manifest.json says, after checking that it is consistent (it does not read the
chunks: use verify for that). --json prints the manifest itself.

Exit status: 0 done, 1 error, 2 usage, 3 not a valid or complete archive.`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the manifest as JSON"},
		}, s3Flags()...),
		Action: func(c *cli.Context) error {
			args, err := archiveArgs(c, 1, 1)
			if err != nil {
				return err
			}
			s3, err := readS3Flags(c)
			if err != nil {
				return err
			}
			return runInspect(c.Context, args[0], s3, c.Bool("json"), c.App.Writer, c.App.ErrWriter)
		},
	}
}

func runInspect(ctx context.Context, dir string, s3 *s3store.Options, asJSON bool, stdout, stderr io.Writer) error {
	a, err := location.Open(ctx, dir, s3)
	if err != nil {
		return err
	}
	m := a.Manifest()
	// An archive in a bucket with Object Lock: how long it is protected, and which part is not.
	ri, err := archiveRetention(ctx, a)
	if err != nil {
		return err
	}
	if ri != nil {
		ri.warn(stderr, dir)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(m)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%s\t"+format+"\n", append([]any{label}, args...)...)
	}
	row("archive", "%s", dir)
	row("format", "%s version %d, written by %s on %s", m.Format, m.Version, m.Tool, m.Created.Format(time.RFC3339))
	src := m.Source
	where := src.Address
	if src.Kind == manifest.SourceSegments {
		where = src.Path
	}
	row("source", "%s %s, context %s", src.Kind, where, src.Context)
	ev := m.Events
	var gapTokens int64
	for _, g := range m.Gaps {
		gapTokens += g.To - g.From + 1
	}
	if ev.LastToken < ev.FirstToken {
		row("events", "%d (empty range from token %d)", ev.Count, ev.FirstToken)
	} else {
		row("events", "%d, tokens %d to %d (%d tokens in gaps, %d filtered)", ev.Count, ev.FirstToken, ev.LastToken, gapTokens, ev.Filtered)
	}
	row("snapshots", "%d (mode %s)", m.Snapshots.Count, m.Snapshots.Mode)
	if tx := m.Transactions; tx != nil {
		row("transactions", "%d, as the source grouped the events (not part of the fingerprint)", tx.Count)
	}
	row("fingerprint", "%s", m.Fingerprint)
	if ri != nil {
		row("object lock", "%s", ri.summary())
	}
	if m.Encryption != "" {
		row("encryption", "%s: every chunk is encrypted (cat, verify and import need --identity)", m.Encryption)
	}
	if a.Signed() {
		row("signature", "%s (not checked here: axarchive verify --allowed-signers FILE)", archive.SignatureFile)
	} else {
		row("signature", "none")
	}
	if m.Previous != nil {
		row("previous", "archive %s, ending at token %d", m.Previous.Fingerprint, m.Previous.LastToken)
	}
	if f := m.Filter; f != nil {
		var parts []string
		if len(f.IncludeTypes) > 0 {
			parts = append(parts, "payload types "+strings.Join(f.IncludeTypes, ", "))
		}
		if len(f.ExcludeTypes) > 0 {
			parts = append(parts, "not payload types "+strings.Join(f.ExcludeTypes, ", "))
		}
		if len(f.AggregateTypes) > 0 {
			parts = append(parts, "aggregate types "+strings.Join(f.AggregateTypes, ", "))
		}
		row("filter", "%s", strings.Join(parts, "; "))
	}
	for i, g := range m.Gaps {
		label := ""
		if i == 0 {
			label = "gaps"
		}
		row(label, "tokens %d to %d: %s", g.From, g.To, g.Cause)
	}
	for i, n := range m.Notes {
		label := ""
		if i == 0 {
			label = "notes"
		}
		if n.Token >= 0 {
			row(label, "%s (token %d): %s", n.Kind, n.Token, n.Detail)
		} else {
			row(label, "%s: %s", n.Kind, n.Detail)
		}
	}
	row("chunking", "new chunk after %s of JSON Lines or %d records", formatBytes(m.Chunking.MaxBytes), m.Chunking.MaxRecords)
	if err := w.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\nchunks (%d)\n", len(m.Chunks))
	w = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "records\tfirst\tlast\tbytes\tJSON bytes\t  sha256\t  path\n")
	for _, c := range m.Chunks {
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t  %s\t  %s\n", c.Records, c.First, c.Last, c.Size, c.RawSize, c.SHA256[:16]+"…", c.Path)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range []struct {
		name  string
		types []manifest.TypeCount
		other int64
	}{{"events", m.Events.Types, m.Events.OtherTypes}, {"snapshots", m.Snapshots.Types, m.Snapshots.OtherTypes}} {
		if len(s.types) == 0 && s.other == 0 {
			continue
		}
		fmt.Fprintf(stdout, "\npayload types of %s (%d)\n", s.name, len(s.types))
		w = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, t := range s.types {
			name := t.Type
			if name == "" {
				name = "(none)"
			}
			fmt.Fprintf(w, "  %d\t%s\n", t.Count, name)
		}
		if s.other > 0 {
			fmt.Fprintf(w, "  %d\t(other types, beyond the first %d)\n", s.other, manifest.MaxTypes)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}
