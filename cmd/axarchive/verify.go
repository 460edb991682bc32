package main

import (
	"context"
	"encoding/json"
	"errors"
	"filippo.io/age"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/sshsig"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "prove archives whole and valid",
		ArgsUsage: "DIR [DIR...]",
		Description: `axarchive verify [--quick] [--json] DIR [DIR...]

Checks the BagIt files, that the files present are exactly those listed, every file's size and
SHA-256 and zstd frame, and (unless --quick) every chunk decompressed, every record against the
JSON Schema and the canonical encoding, token order and continuity (or the declared gaps),
record counts, payload type counts and the fingerprint. Every problem is reported on stderr,
naming the file, line and token. Several DIRs must form an incremental chain, oldest first.

Exit status: 0 valid, 1 error, 2 usage, 3 invalid, corrupt or incomplete, 130 interrupted.`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "quick", Usage: "check sizes and digests only, without decompressing"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object on stdout"},
			allowedSignersFlag(),
			identityFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but the problems (the exit status says the rest)"},
		}, s3Flags()...),
		Action: func(c *cli.Context) error {
			dirs, err := archiveArgs(c, 1, -1)
			if err != nil {
				return err
			}
			o := verifyOptions{dirs: dirs, quick: c.Bool("quick"), json: c.Bool("json"), quiet: c.Bool("quiet")}
			if o.identities, o.s3, err = archiveReadFlags(c); err != nil {
				return err
			}
			if path := c.String("allowed-signers"); path != "" {
				if o.allowedSigners, err = sshsig.LoadAllowedSigners(path); err != nil {
					return err
				}
				o.checkSignatures = true
			}
			return runVerify(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

type verifyOptions struct {
	dirs  []string
	quick bool
	json  bool
	// checkSignatures requires every archive to be signed by one of allowedSigners.
	checkSignatures bool
	allowedSigners  []sshsig.AllowedSigner
	identities      []age.Identity // decrypt encrypted archives for a full verification
	quiet           bool
	s3              *s3store.Options // for archives given as s3:// URLs
}

// verifyResult is one archive's entry in the JSON output.
type verifyResult struct {
	Dir         string          `json:"dir"`
	OK          bool            `json:"ok"`
	Level       string          `json:"level"`
	Events      int64           `json:"events"`
	Snapshots   int64           `json:"snapshots"`
	Chunks      int             `json:"chunks"`
	Bytes       int64           `json:"bytes"`
	RawBytes    int64           `json:"rawBytes"`
	Fingerprint string          `json:"fingerprint,omitempty"`
	Signed      bool            `json:"signed"`
	SignedBy    []string        `json:"signedBy,omitempty"`
	Retention   *retentionInfo  `json:"retention,omitempty"` // s3:// archives in a bucket with Object Lock
	SigningKey  string          `json:"signingKey,omitempty"`
	Seconds     float64         `json:"seconds"`
	Error       string          `json:"error,omitempty"`
	Problems    []problemOutput `json:"problems"`
}

type problemOutput struct {
	Path    string `json:"path,omitempty"`
	Line    int64  `json:"line,omitempty"`
	Token   *int64 `json:"token,omitempty"`
	Message string `json:"message"`
}

func problemOf(err error) problemOutput {
	var ae *archive.Error
	if errors.As(err, &ae) {
		p := problemOutput{Path: ae.Path, Line: ae.Line, Message: errorText(ae.Err)}
		if ae.Token >= 0 {
			t := ae.Token
			p.Token = &t
		}
		return p
	}
	return problemOutput{Message: errorText(err)}
}

func runVerify(ctx context.Context, o verifyOptions, stdout, stderr io.Writer) error {
	level := "full"
	if o.quick {
		level = "quick"
	}
	several := len(o.dirs) > 1
	report := func(dir string, err error) {
		if o.json {
			return
		}
		prefix := ""
		if several {
			prefix = dir + ": "
		}
		for _, line := range splitLines(errorText(err)) {
			fmt.Fprintf(stderr, "axarchive: error: %s%s\n", prefix, line)
		}
	}

	var results []*verifyResult
	var archives []*archive.Archive
	invalid := 0
	var failures []error // could not be verified (not: found invalid)
	var sigErrs []error
	var openErr error
	for _, dir := range o.dirs {
		res := &verifyResult{Dir: dir, Level: level, Problems: []problemOutput{}}
		results = append(results, res)
		start := time.Now()
		a, err := location.Open(ctx, dir, o.s3)
		if err != nil {
			if !several {
				openErr = err // printed once, with its hint, by main
			} else {
				report(dir, err)
			}
			res.Error = errorText(err)
			for _, e := range flatten(err) {
				res.Problems = append(res.Problems, problemOf(e))
			}
			if exitCode(err) == exitInvalid {
				invalid++
			} else {
				failures = append(failures, err)
			}
			continue
		}
		archives = append(archives, a)
		a.SetIdentities(o.identities...)
		rep, err := a.Verify(ctx, archive.VerifyOptions{
			Quick:   o.quick,
			Problem: func(p *archive.Error) { report(dir, p) },
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, p := range rep.Problems { // the first of them, as many as the report keeps
			res.Problems = append(res.Problems, problemOf(p))
		}
		res.Seconds = time.Since(start).Seconds()
		res.Events, res.Snapshots, res.Chunks, res.Bytes, res.RawBytes = rep.Events, rep.Snapshots, rep.Chunks, rep.Bytes, rep.RawBytes
		res.Fingerprint = a.Manifest().Fingerprint
		if err != nil {
			res.Error = err.Error()
			if errors.Is(err, archive.ErrVerify) {
				invalid++
			} else {
				if several {
					report(dir, err)
				}
				failures = append(failures, err)
			}
			continue
		}
		res.Signed = a.Signed()
		var signed sshsig.Signed
		if o.checkSignatures {
			if signed, err = checkSignature(a, o.allowedSigners); err != nil {
				res.Error = err.Error()
				res.Problems = append(res.Problems, problemOutput{Path: archive.SignatureFile, Message: err.Error()})
				if several {
					report(dir, err) // a single archive's cause is the command's error
				}
				sigErrs = append(sigErrs, err)
				continue
			}
			res.SignedBy, res.SigningKey = signed.Principals, signed.Fingerprint
		}
		res.OK = true
		ri, err := archiveRetention(ctx, a)
		if err != nil {
			failures = append(failures, err)
			report(dir, err)
		} else if ri != nil {
			res.Retention = ri
			if !o.json {
				ri.warn(stderr, dir)
			}
		}
		if !o.json && !o.quiet {
			m := a.Manifest()
			fmt.Fprintf(stdout, "ok %s: %s (tokens %d to %d), %s, %s, %s read in %s (%s verification); fingerprint %s\n",
				dir, plural(m.Events.Count, "event"), m.Events.FirstToken, m.Events.LastToken, plural(m.Snapshots.Count, "snapshot"), plural(int64(rep.Chunks), "chunk"),
				formatBytes(rep.Bytes), time.Since(start).Round(time.Millisecond), level, m.Fingerprint)
			switch {
			case o.checkSignatures:
				fmt.Fprintf(stdout, "ok %s: signed by %s\n", dir, signed)
			case res.Signed:
				fmt.Fprintf(stdout, "%s: has a signature, not checked (--allowed-signers FILE checks it)\n", dir)
			}
			if ri != nil {
				fmt.Fprintf(stdout, "%s: Object Lock: %s\n", dir, ri.summary())
			}
		}
	}

	chainOK := true
	var chainProblems []problemOutput
	if several && len(archives) == len(o.dirs) {
		chain := archive.NewChain(archives...)
		if err := chain.Check(); err != nil {
			chainOK = false
			for _, e := range flatten(err) {
				chainProblems = append(chainProblems, problemOf(e))
				report("chain", e)
			}
		} else if !o.json && !o.quiet {
			fmt.Fprintf(stdout, "ok chain of %d archives: tokens %d to %d\n", len(archives), chain.Range().First, chain.Range().Last)
		}
	}

	if o.json {
		out := struct {
			OK       bool            `json:"ok"`
			Archives []*verifyResult `json:"archives"`
			Chain    *struct {
				OK       bool            `json:"ok"`
				Problems []problemOutput `json:"problems"`
			} `json:"chain,omitempty"`
		}{OK: invalid == 0 && len(failures) == 0 && chainOK, Archives: results}
		if several {
			out.Chain = &struct {
				OK       bool            `json:"ok"`
				Problems []problemOutput `json:"problems"`
			}{chainOK && len(archives) == len(o.dirs), append([]problemOutput{}, chainProblems...)}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	switch {
	case openErr != nil:
		return openErr
	case invalid > 0:
		return fmt.Errorf("%w: %d of %d archives", archive.ErrVerify, invalid, len(o.dirs))
	case len(sigErrs) > 0:
		// Valid archives whose signature does not prove them authentic: the first cause carries the hint.
		if !several {
			return sigErrs[0]
		}
		return fmt.Errorf("verify: %d of %d archives valid but not proved authentic; the first: %w", len(sigErrs), len(o.dirs), sigErrs[0])
	case len(failures) > 0 && !several:
		return failures[0] // with its own hint (an encrypted archive without --identity, …)
	case len(failures) > 0:
		return fmt.Errorf("verify: %d of %d archives could not be verified; the first: %w", len(failures), len(o.dirs), failures[0])
	case !chainOK:
		return fmt.Errorf("verify: the archives are valid, but %w", archive.ErrChain)
	}
	return nil
}

// flatten lists the errors joined in err (one level of errors.Join-like nesting at a time).
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// plural says "1 chunk", "2 chunks", "0 chunks".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
