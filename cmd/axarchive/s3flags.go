package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
)

// Archives in object storage: an archive path may be s3://bucket/prefix. Credentials, region and
// endpoint come from the AWS environment as the AWS CLI reads them (AWS_ACCESS_KEY_ID, AWS_PROFILE,
// ~/.aws/config and credentials, AWS_ENDPOINT_URL, …); the flags below override what is not secret.
// No secret is ever a flag.

// s3Flags are the flags of every command that reads or writes archives.
func s3Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "s3-endpoint", Usage: "s3:// archives: `URL` of an S3-compatible server (default: $AWS_ENDPOINT_URL, the profile's, else AWS)"},
		&cli.BoolFlag{Name: "s3-path-style", Usage: "s3:// archives: address buckets as ENDPOINT/BUCKET (most S3-compatible servers need it)"},
		&cli.StringFlag{Name: "s3-region", Usage: "s3:// archives: `REGION` (default: $AWS_REGION or the profile's, else us-east-1)"},
		&cli.StringFlag{Name: "s3-profile", Usage: "s3:// archives: `NAME` of the AWS shared config profile (default: $AWS_PROFILE)"},
		&cli.Int64Flag{Name: "s3-part-size", Value: s3store.DefaultPartSize, Usage: "s3:// archives: multipart upload part size in `BYTES` (at least 5 MiB)"},
		&cli.IntFlag{Name: "s3-parallel", Value: s3store.DefaultConcurrency, Usage: "s3:// archives: `N` parts of one file uploaded at once"},
	}
}

// readS3Flags returns the object store options of the flags.
func readS3Flags(c *cli.Context) (*s3store.Options, error) {
	o := &s3store.Options{
		Endpoint:    c.String("s3-endpoint"),
		PathStyle:   c.Bool("s3-path-style"),
		Region:      c.String("s3-region"),
		Profile:     c.String("s3-profile"),
		PartSize:    c.Int64("s3-part-size"),
		Concurrency: c.Int("s3-parallel"),
	}
	if o.PartSize < s3store.MinPartSize {
		return nil, usageErrorf("--s3-part-size %d: give at least %d (5 MiB, S3's smallest part)", o.PartSize, s3store.MinPartSize)
	}
	if o.Concurrency < 1 {
		return nil, usageErrorf("--s3-parallel %d: give 1 or more", o.Concurrency)
	}
	return o, nil
}

// retentionFlags are export's Object Lock flags.
func retentionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "retain-until", Usage: "s3:// archives: put Object Lock retention until `DATE` (YYYY-MM-DD or RFC 3339) on every object, once the archive is complete"},
		&cli.StringFlag{Name: "retention-mode", Value: "governance", Usage: "with --retain-until: governance (users with s3:BypassGovernanceRetention may lift it) or compliance (nobody can, not even the account root)"},
		&cli.BoolFlag{Name: "legal-hold", Usage: "s3:// archives: put a legal hold on every object, once the archive is complete"},
	}
}

// readRetentionFlags returns the retention asked for, nil for none.
func readRetentionFlags(c *cli.Context, output string) (*s3store.Retention, error) {
	until, hold := c.String("retain-until"), c.Bool("legal-hold")
	if until == "" && !hold {
		if c.IsSet("retention-mode") {
			return nil, usageErrorf("--retention-mode needs --retain-until")
		}
		return nil, nil
	}
	if !s3store.IsURL(output) {
		return nil, &usageError{msg: "--retain-until and --legal-hold need an archive in object storage", hint: "give -o s3://BUCKET/PREFIX (a bucket with Object Lock)"}
	}
	r := &s3store.Retention{LegalHold: hold}
	if until != "" {
		t, err := parseDate(until)
		if err != nil {
			return nil, usageErrorf("--retain-until %q: %v", until, err)
		}
		if !t.After(time.Now()) {
			return nil, usageErrorf("--retain-until %s is not in the future", until)
		}
		mode, err := s3store.ParseMode(c.String("retention-mode"))
		if err != nil {
			return nil, usageErrorf("--retention-mode: %v", err)
		}
		r.Mode, r.Until = mode, t
	} else if c.IsSet("retention-mode") {
		return nil, usageErrorf("--retention-mode needs --retain-until")
	}
	return r, nil
}

// parseDate reads YYYY-MM-DD (midnight UTC) or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DD or an RFC 3339 time")
	}
	return t.UTC(), nil
}

// retentionInfo is the Object Lock state of an archive in object storage, for verify and inspect.
type retentionInfo struct {
	Objects     int       `json:"objects"`
	Until       time.Time `json:"until,omitzero"`
	Unprotected []string  `json:"unprotected"`
	Earlier     []string  `json:"earlier"`
}

// archiveRetention reads the retention of every object of a, when a is in a bucket with Object Lock
// (nil otherwise: there is nothing to report).
func archiveRetention(ctx context.Context, a *archive.Archive) (*retentionInfo, error) {
	store, ok := a.Storage().(*s3store.Store)
	if !ok {
		return nil, nil
	}
	lc, err := store.ObjectLock(ctx)
	if err != nil || !lc.Enabled {
		return nil, nil // no Object Lock (or no permission to ask): nothing is retained
	}
	names, err := location.Names(store)
	if err != nil {
		return nil, err
	}
	rep, err := store.Retentions(ctx, names, time.Now())
	if err != nil {
		return nil, fmt.Errorf("read retention: %w", err)
	}
	return &retentionInfo{Objects: len(names), Until: rep.Until, Unprotected: nonNil(rep.Unprotected), Earlier: nonNil(rep.Earlier)}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// summary is the one line verify and inspect print.
func (r *retentionInfo) summary() string {
	switch {
	case len(r.Unprotected) == r.Objects:
		return fmt.Sprintf("none of the %d objects is retained or held", r.Objects)
	case r.Until.IsZero():
		return fmt.Sprintf("%d of %d objects under legal hold, no retention date", r.Objects-len(r.Unprotected), r.Objects)
	}
	return fmt.Sprintf("%d of %d objects protected, retained until %s at the latest", r.Objects-len(r.Unprotected), r.Objects, r.Until.Format(time.RFC3339))
}

// warn prints a warning for the objects that are unprotected, or expire earlier than the rest.
func (r *retentionInfo) warn(stderr io.Writer, where string) {
	if n := len(r.Unprotected); n > 0 && n < r.Objects || n > 0 && !r.Until.IsZero() {
		fmt.Fprintf(stderr, "axarchive: warning: %s: %d of %d objects are not protected by Object Lock (can be deleted now): %s\n", where, n, r.Objects, listSome(r.Unprotected))
	} else if n > 0 {
		fmt.Fprintf(stderr, "axarchive: warning: %s: no object is protected by Object Lock\n", where)
	}
	if n := len(r.Earlier); n > 0 {
		loses := "lose their"
		if n == 1 {
			loses = "loses its"
		}
		fmt.Fprintf(stderr, "axarchive: warning: %s: %s %s retention before %s: %s\n", where, plural(int64(n), "object"), loses, r.Until.Format(time.RFC3339), listSome(r.Earlier))
	}
}

func listSome(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + fmt.Sprintf(", and %d more", len(names)-most)
}

func describeRetention(r *s3store.Retention) string {
	var parts []string
	if !r.Until.IsZero() {
		parts = append(parts, fmt.Sprintf("%s retention until %s", strings.ToLower(string(r.Mode)), r.Until.Format(time.RFC3339)))
	}
	if r.LegalHold {
		parts = append(parts, "legal hold")
	}
	return strings.Join(parts, ", ")
}
