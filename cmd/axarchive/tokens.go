package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/tokenstore"
)

// tokensCommand groups the commands on the token tables of Axon Framework applications.
func tokensCommand() *cli.Command {
	cmd := &cli.Command{
		Name:  "tokens",
		Usage: "check and rewrite the tokens of Axon Framework event processors (PostgreSQL token tables)",
		Description: `Axon Framework applications keep, per event processor and segment, the token of the last
event they handled. After a restore or a renumbered import these must agree with the store:
tokens list shows them, tokens check compares them with the store, tokens rewrite moves them,
tokens restore undoes a rewrite.

--db takes a PostgreSQL URL or key=value string without the password: give it in $PGPASSWORD
or a password file ($PGPASSFILE, ~/.pgpass), as with psql.

Exit status: 0 ok (check: consistent), 1 error, 2 usage, 3 a token table row, token map or
backup that is invalid, 4 tokens inconsistent with the event store (check).`,
		Subcommands: []*cli.Command{tokensListCommand(), tokensCheckCommand(), tokensRewriteCommand(), tokensRestoreCommand()},
	}
	cmd.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return &usageError{msg: "unknown command tokens " + quote(c.Args().First()), hint: "run axarchive tokens --help for its commands"}
		}
		cli.ShowSubcommandHelp(c)
		return &usageError{msg: "no tokens command given", hint: "run axarchive tokens --help for its commands"}
	}
	for _, sub := range cmd.Subcommands {
		sub.HideHelpCommand = true
		sub.OnUsageError = func(c *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error(), hint: "run axarchive tokens " + c.Command.Name + " --help for its flags"}
		}
	}
	return cmd
}

func dbFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "db", Usage: "PostgreSQL `URL` or DSN of the application's database (password from $PGPASSWORD or $PGPASSFILE)"},
		&cli.StringFlag{Name: "table", Usage: "the token table `[SCHEMA.]NAME` (default: tokenentry or token_entry, found in the catalogue)"},
		&cli.StringSliceFlag{Name: "column", Usage: "a column of a custom TokenSchema, `FIELD=NAME` (fields: " + strings.Join(tokenstore.Fields, ", ") + ")"},
	}
}

// claimTimeoutFlag says when a claim has expired (list and check show it, rewrite and restore respect it).
func claimTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "claim-timeout", Value: tokenstore.DefaultClaimTimeout, Usage: "the applications' claim timeout: a claim not renewed for this `DURATION` has expired"}
}

func claimFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "force", Usage: "change processors that a node holds a live claim on (stop them first instead)"},
		claimTimeoutFlag(),
	}
}

// openStore connects to the token table that the --db, --table and --column flags name.
func openStore(c *cli.Context) (*tokenstore.Postgres, error) {
	db := c.String("db")
	if db == "" {
		return nil, usageErrorf("--db is required")
	}
	if tokenstore.PasswordInConnString(db) {
		return nil, &usageError{msg: "--db carries a password, which a command line shows to ps and shell history",
			hint: "leave it out of --db and set $PGPASSWORD, or put it in a password file ($PGPASSFILE or ~/.pgpass)"}
	}
	opts := tokenstore.PostgresOptions{Table: c.String("table"), Columns: map[string]string{}}
	for _, kv := range c.StringSlice("column") {
		field, name, ok := strings.Cut(kv, "=")
		if !ok || name == "" || !slices.Contains(tokenstore.Fields, field) {
			return nil, usageErrorf("--column %s: want FIELD=NAME with FIELD one of %s", kv, strings.Join(tokenstore.Fields, ", "))
		}
		opts.Columns[field] = name
	}
	s, err := tokenstore.OpenPostgres(c.Context, db, opts)
	return s, tokensError(err)
}

func tokensListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list every processor and segment with its token",
		Description: `axarchive tokens list --db URL [--json]

One line per processor segment: the token's kind and position(s) (a replay shows the token at
reset and where it is; a merge both halves; a multi-source token each source), the owner and
whether its claim is live, and the serializer. Exit status: 0 ok, 1 error, 2 usage, 3 a row that
is not what its token type says.`,
		Flags: append(append(dbFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}), claimTimeoutFlag()),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close(context.Background())
			rows, err := s.Read(c.Context)
			if err != nil {
				return tokensError(err)
			}
			return printTokenList(c.App.Writer, s.Describe(), rows, c.Bool("json"), time.Now(), c.Duration("claim-timeout"))
		},
	}
}

type listedRow struct {
	Processor string  `json:"processor"`
	Segment   int32   `json:"segment"`
	Mask      *int32  `json:"mask,omitempty"`
	Kind      string  `json:"kind"`
	Token     string  `json:"token"`
	Positions []int64 `json:"positions"`
	TokenType *string `json:"tokenType"`
	Format    string  `json:"format"`
	Owner     *string `json:"owner"`
	Timestamp *string `json:"timestamp"`
	Claimed   bool    `json:"claimed"`
	Error     string  `json:"error,omitempty"`
}

func printTokenList(w io.Writer, table string, rows []tokenstore.Row, asJSON bool, now time.Time, timeout time.Duration) error {
	var out []listedRow
	for _, r := range rows {
		if r.Processor == tokenstore.ConfigProcessor {
			continue
		}
		l := listedRow{Processor: r.Processor, Segment: r.Segment, Mask: r.Mask, TokenType: r.TokenType,
			Owner: r.Owner, Timestamp: r.Timestamp, Claimed: r.Claimed(now, timeout), Positions: []int64{}}
		tok, err := r.Decode()
		switch {
		case err != nil:
			l.Kind, l.Token, l.Format = "?", "unreadable", "?"
			l.Error = strings.TrimPrefix(err.Error(), r.String()+": ")
		case tok == nil:
			l.Kind, l.Token, l.Format = "none", "null", "none"
		default:
			l.Kind, l.Token, l.Format, l.Positions = string(tok.Root.Kind), tok.Root.String(), tok.Format.String(), tok.Positions()
		}
		out = append(out, l)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Table string      `json:"table"`
			Rows  []listedRow `json:"rows"`
		}{table, out})
	}
	fmt.Fprintln(w, table)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESSOR\tSEGMENT\tKIND\tTOKEN\tOWNER\tCLAIM\tFORMAT")
	for _, l := range out {
		owner, claim := "-", "-"
		if l.Owner != nil {
			owner, claim = *l.Owner, "expired"
			if l.Claimed {
				claim = "live"
			}
		}
		token := l.Token
		if l.Error != "" {
			token += ": " + l.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", l.Processor, l.Segment, l.Kind, token, owner, claim, l.Format)
	}
	return tw.Flush()
}

// tokensStoreUsage is the usage line of a command that needs the event store's tokens: from a live
// server (connFlags) or from the archives it was restored from.
func tokensStoreUsage(cmd string) string {
	return "axarchive tokens " + cmd + " --db URL (--server HOST:PORT --context CTX | ARCHIVE...)"
}

// storeBounds reads the event store's first and last token from --server or from the archives given.
func storeBounds(c *cli.Context, dirs []string) (tokenstore.Bounds, error) {
	switch {
	case c.String("server") != "" && len(dirs) > 0:
		return tokenstore.Bounds{}, usageErrorf("give --server or archives, not both")
	case len(dirs) > 0:
		s3, err := readS3Flags(c)
		if err != nil {
			return tokenstore.Bounds{}, err
		}
		return tokenstore.ArchiveBoundsAt(c.Context, dirs, s3)
	case c.String("server") == "":
		return tokenstore.Bounds{}, &usageError{msg: "the event store is missing: give --server (and --context) or the archives it was restored from", hint: tokensStoreUsage(c.Command.Name)}
	}
	co, err := readConnFlags(c)
	if err != nil {
		return tokenstore.Bounds{}, err
	}
	conn, err := co.dial(c.Context, c.App.ErrWriter)
	if err != nil {
		return tokenstore.Bounds{}, err
	}
	defer conn.Close()
	return tokenstore.ServerBounds(c.Context, conn)
}

func tokensCheckCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "compare every processor's position with the event store's first and last token",
		ArgsUsage: "[ARCHIVE...]",
		Description: tokensStoreUsage("check") + ` [--token-map FILE]

Reports every processor segment whose token is past the store's last token (it would handle
nothing until the store gets there: a store restored from an older copy than the projections),
before its first token (a truncated store), or, with --token-map, at a position the token map of
a renumbered import does not list. The store's tokens come from a live server or from the
archives it was restored from (a full archive and its incrementals, oldest first).

Exit status: 0 consistent, 1 error, 2 usage, 3 invalid input, 4 inconsistent.`,
		Flags: append(append(append(dbFlags(),
			&cli.StringFlag{Name: "token-map", Usage: "also check positions against the token map `FILE` of a renumbered import"}),
			connFlags()...), append(s3Flags(), claimTimeoutFlag())...),
		Action: func(c *cli.Context) error {
			dirs, err := archiveArgs(c, 0, -1)
			if err != nil {
				return err
			}
			b, err := storeBounds(c, dirs)
			if err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close(context.Background())
			rows, err := s.Read(c.Context)
			if err != nil {
				return tokensError(err)
			}
			var m *tokenstore.TokenMap
			if path := c.String("token-map"); path != "" {
				if m, err = tokenstore.ReadTokenMap(path, tokenstore.Positions(rows)); err != nil {
					return err
				}
			}
			findings, notes, cerr := tokenstore.Check(rows, b, m)
			if cerr != nil {
				cerr = fmt.Errorf("%s: %w", s.Table(), cerr)
			}
			return reportCheck(c, s.Describe(), b, rows, findings, notes, cerr)
		},
	}
}

func reportCheck(c *cli.Context, table string, b tokenstore.Bounds, rows []tokenstore.Row, findings []tokenstore.Finding, notes []tokenstore.Note, cerr error) error {
	w := c.App.Writer
	processors := map[string]bool{}
	segments := 0
	for _, r := range rows {
		if r.Processor != tokenstore.ConfigProcessor {
			processors[r.Processor] = true
			segments++
		}
	}
	fmt.Fprintf(w, "%s\n%d segments of %d processors against the store's tokens %d to %d (%s)\n", table, segments, len(processors), b.First, b.Last, b.Source)
	for _, n := range notes {
		fmt.Fprintf(c.App.ErrWriter, "axarchive: warning: %s %s\n", n.Row, n.Note)
	}
	fixes := map[string][]string{}
	for _, f := range findings {
		fmt.Fprintf(w, "%s: token %s: %s\n", f.Row, f.Token, f.Problem)
		if !slices.Contains(fixes[f.Fix], f.Row.Processor) {
			fixes[f.Fix] = append(fixes[f.Fix], f.Row.Processor)
		}
	}
	if cerr != nil {
		return cerr
	}
	if len(findings) == 0 {
		fmt.Fprintln(w, "consistent")
		return nil
	}
	var hints []string
	procs := func(names []string) string {
		var s []string
		for _, n := range names {
			s = append(s, "--processor "+n)
		}
		return strings.Join(s, " ")
	}
	if p := fixes["--to-head"]; len(p) > 0 {
		hints = append(hints, "axarchive tokens rewrite --to-head "+procs(p)+" (with the same --db and store) moves the positions past the store's last token to it")
	}
	if p := fixes["--to-tail"]; len(p) > 0 {
		hints = append(hints, "axarchive tokens rewrite --to-tail "+procs(p)+" replays those processors from the store's first event")
	}
	if p := fixes["--token-map"]; len(p) > 0 {
		hints = append(hints, "axarchive tokens rewrite --token-map "+c.String("token-map")+" translates every position through the map")
	}
	return &continueError{err: fmt.Errorf("%w: %d of %d segments", tokenstore.ErrInconsistent, len(findings), segments), hint: strings.Join(hints, "; ")}
}

func tokensRewriteCommand() *cli.Command {
	return &cli.Command{
		Name:      "rewrite",
		Usage:     "move processors' positions: to the store's head, to its tail, or through a token map",
		ArgsUsage: "[ARCHIVE...]",
		Description: `axarchive tokens rewrite --db URL --to-head (--server HOST:PORT --context CTX | ARCHIVE...)
axarchive tokens rewrite --db URL --to-tail
axarchive tokens rewrite --db URL --token-map FILE

--to-head moves every position past the store's last token to that token (positions at or
before it stay: moving them would skip events the processor has not handled). --to-tail
resets tokens to NULL: the processors replay from the store's first event. --token-map
translates every position through the token map of a renumbered import: a position the map
does not list goes where the largest listed archive token below it went (or to the target's
head before the import when there is none). Every position inside a token is rewritten
(a replay's token at reset and current token, both halves of a merge, each source); the rest
of the token stays byte for byte in its serializer's form.

All in one transaction, after the old rows are written to a backup file (--backup; tokens
restore puts them back). Refuses while a processor it would change is claimed by a live node
(stop the application first, or --force), tokens it cannot rewrite exactly, and __config.
--processor (repeatable) limits it to those processors; --dry-run prints old -> new only.

Exit status: 0 ok, 1 error, 2 usage, 3 invalid input.`,
		Flags: append(append(append(dbFlags(),
			&cli.BoolFlag{Name: "to-head", Usage: "move positions past the store's last token to it"},
			&cli.BoolFlag{Name: "to-tail", Usage: "reset tokens to NULL: replay from the first event"},
			&cli.StringFlag{Name: "token-map", Usage: "translate positions through the token map `FILE` of a renumbered import"},
			&cli.StringSliceFlag{Name: "processor", Usage: "rewrite only processor `NAME` (repeatable; default all)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print old -> new per row and change nothing"},
			&cli.StringFlag{Name: "backup", Usage: "write the old rows to `FILE` (default tokens-backup-TIME.json here)"},
		), claimFlags()...), append(connFlags(), s3Flags()...)...),
		Action: func(c *cli.Context) error {
			dirs, err := archiveArgs(c, 0, -1)
			if err != nil {
				return err
			}
			n := 0
			for _, f := range []string{"to-head", "to-tail", "token-map"} {
				if c.IsSet(f) {
					n++
				}
			}
			if n != 1 {
				return &usageError{msg: "give one of --to-head, --to-tail and --token-map", hint: "run axarchive tokens rewrite --help"}
			}
			var mode func([]tokenstore.Row) (tokenstore.Mode, error)
			switch {
			case c.Bool("to-head"):
				b, err := storeBounds(c, dirs)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "axarchive: the store's last token is %d (%s)\n", b.Last, b.Source)
				mode = func([]tokenstore.Row) (tokenstore.Mode, error) { return tokenstore.ToHead(b.Last), nil }
			case len(dirs) > 0 || c.String("server") != "":
				return usageErrorf("the event store (--server or archives) is only for --to-head")
			case c.Bool("to-tail"):
				mode = func([]tokenstore.Row) (tokenstore.Mode, error) { return tokenstore.ToTail(), nil }
			default:
				path := c.String("token-map")
				mode = func(rows []tokenstore.Row) (tokenstore.Mode, error) {
					m, err := tokenstore.ReadTokenMap(path, tokenstore.Positions(rows))
					if err != nil {
						return tokenstore.Mode{}, err
					}
					return tokenstore.ByTokenMap(m), nil
				}
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close(context.Background())
			now := time.Now()
			backup := c.String("backup")
			if backup == "" {
				backup = "tokens-backup-" + now.UTC().Format("20060102T150405Z") + ".json"
			}
			opts := tokenstore.Options{Processors: c.StringSlice("processor"), Force: c.Bool("force"), ClaimTimeout: c.Duration("claim-timeout"), Now: now}
			res, err := tokenstore.Rewrite(c.Context, s, mode, opts, backup, c.Bool("dry-run"))
			if err != nil {
				return tokensError(err)
			}
			return printChanges(c, s.Describe(), res, c.Bool("dry-run"))
		},
	}
}

// tokensError adds the hint of a refused rewrite or restore.
func tokensError(err error) error {
	switch {
	case errors.Is(err, tokenstore.ErrClaimed):
		return &continueError{err: err, hint: "stop the application's event processors (a clean shutdown releases the claims), or wait until their claims expire; --force changes them anyway"}
	case errors.Is(err, tokenstore.ErrConnect):
		return &continueError{err: err, hint: "check --db (host, port, database, user; sslmode=disable for a server without TLS) and that the password is in $PGPASSWORD or the password file"}
	case errors.Is(err, tokenstore.ErrPermission):
		return &continueError{err: err, hint: "the database user needs SELECT and UPDATE on the token table (and, for oid tokens, on their large objects): connect as the application's user"}
	case errors.Is(err, tokenstore.ErrNotTokenTable):
		return &continueError{err: err, hint: "name the table with --table [SCHEMA.]NAME and its columns with --column FIELD=NAME (Axon's TokenSchema)"}
	case errors.Is(err, tokenstore.ErrUnsupported):
		return &continueError{err: err, hint: "leave those processors out with --processor NAME for each one to rewrite, or reset them in the application"}
	}
	return err
}

func printChanges(c *cli.Context, table string, res *tokenstore.Result, dry bool) error {
	w := c.App.Writer
	fmt.Fprintln(w, table)
	for _, ch := range res.Changes {
		fmt.Fprintf(w, "%s: %s -> %s\n", ch.New, ch.OldShow, ch.NewShow)
	}
	switch {
	case dry:
		fmt.Fprintf(w, "dry run: %d rows would change; nothing changed\n", len(res.Changes))
	case len(res.Changes) == 0:
		fmt.Fprintln(w, "nothing to change")
	default:
		fmt.Fprintf(w, "%d rows changed; the old rows are in %s (axarchive tokens restore %s --db ... puts them back)\n", len(res.Changes), res.Backup, res.Backup)
	}
	return nil
}

func tokensRestoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "put back the rows a tokens rewrite changed, from its backup file",
		ArgsUsage: "BACKUP",
		Description: `axarchive tokens restore BACKUP --db URL

Writes every row of the backup back (token, token type, timestamp and owner as they were; a
segment deleted since is inserted again), in one transaction. Refuses while a processor it
touches is claimed by a live node, unless --force.

Exit status: 0 ok, 1 error, 2 usage, 3 the backup is invalid.`,
		Flags: append(dbFlags(), claimFlags()...),
		Action: func(c *cli.Context) error {
			args, err := archiveArgs(c, 1, 1)
			if err != nil {
				return err
			}
			_, rows, err := tokenstore.ReadBackup(args[0])
			if err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			defer s.Close(context.Background())
			res, err := tokenstore.Restore(c.Context, s, rows, tokenstore.Options{Force: c.Bool("force"), ClaimTimeout: c.Duration("claim-timeout"), Now: time.Now()})
			if err != nil {
				return tokensError(err)
			}
			w := c.App.Writer
			fmt.Fprintln(w, s.Describe())
			for _, ch := range res.Changes {
				fmt.Fprintf(w, "%s: %s -> %s\n", ch.New, ch.OldShow, ch.NewShow)
			}
			fmt.Fprintf(w, "%d rows restored\n", len(res.Changes))
			return nil
		},
	}
}
