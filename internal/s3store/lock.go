package s3store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ErrNoObjectLock is the error (wrapped with the bucket) of CheckRetention for a bucket without Object
// Lock, where retention cannot be put on objects.
var ErrNoObjectLock = errors.New("bucket has no Object Lock")

// Mode is an Object Lock retention mode.
type Mode string

// The retention modes: a COMPLIANCE retention cannot be shortened or removed by anyone, a GOVERNANCE
// one by users with s3:BypassGovernanceRetention.
const (
	Compliance Mode = "COMPLIANCE"
	Governance Mode = "GOVERNANCE"
)

// ParseMode parses a retention mode as a user writes it: compliance or governance, in any case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToUpper(s) {
	case string(Compliance):
		return Compliance, nil
	case string(Governance):
		return Governance, nil
	}
	return "", fmt.Errorf("retention mode %q: want compliance or governance", s)
}

// Retention is what Retain puts on objects: a retention Mode until Until (neither, when Until is zero),
// and a legal hold.
type Retention struct {
	Mode      Mode
	Until     time.Time
	LegalHold bool
}

// LockConfig is a bucket's Object Lock configuration.
type LockConfig struct {
	Enabled bool
	// DefaultMode, DefaultDays and DefaultYears are the retention every new object version gets
	// unless the request says otherwise; DefaultMode is "" without such a rule.
	DefaultMode  Mode
	DefaultDays  int32
	DefaultYears int32
}

// ObjectLock returns the bucket's Object Lock configuration.
func (s *Store) ObjectLock(ctx context.Context) (LockConfig, error) {
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.loc.Bucket)})
	if err != nil {
		if errorCode(err) == "ObjectLockConfigurationNotFoundError" {
			return LockConfig{}, nil
		}
		return LockConfig{}, fmt.Errorf("read Object Lock configuration of bucket %q: %w", s.loc.Bucket, err)
	}
	var c LockConfig
	if olc := out.ObjectLockConfiguration; olc != nil {
		c.Enabled = olc.ObjectLockEnabled == types.ObjectLockEnabledEnabled
		if olc.Rule != nil && olc.Rule.DefaultRetention != nil {
			d := olc.Rule.DefaultRetention
			c.DefaultMode = Mode(d.Mode)
			c.DefaultDays = aws.ToInt32(d.Days)
			c.DefaultYears = aws.ToInt32(d.Years)
		}
	}
	return c, nil
}

// CheckRetention is the check before an export that asks for r writes anything: the retention must be
// well formed (a known mode with a date in the future, or a legal hold) and the bucket must have Object
// Lock enabled (else ErrNoObjectLock).
func (s *Store) CheckRetention(ctx context.Context, r Retention) error {
	if err := r.check(time.Now()); err != nil {
		return err
	}
	c, err := s.ObjectLock(ctx)
	if err != nil {
		return err
	}
	if !c.Enabled {
		return fmt.Errorf("retention on %s: %w (it can only be enabled when the bucket is created)", s, ErrNoObjectLock)
	}
	return nil
}

func (r Retention) check(now time.Time) error {
	if r.Until.IsZero() {
		if r.Mode != "" {
			return fmt.Errorf("retention mode %s without a date to retain until", r.Mode)
		}
		if !r.LegalHold {
			return errors.New("retention: neither a date to retain until nor a legal hold")
		}
		return nil
	}
	if r.Mode != Compliance && r.Mode != Governance {
		return fmt.Errorf("retention mode %q: want COMPLIANCE or GOVERNANCE", r.Mode)
	}
	if !r.Until.After(now) {
		return fmt.Errorf("retain until %s: not in the future", r.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// Retain puts r on the current version of each named object: retention (PutObjectRetention) and, if
// asked, a legal hold (PutObjectLegalHold), a few objects at a time. It is meant for a complete archive:
// an export writes and replaces files freely while it runs (a resumed one removes what the interrupted
// run left uncommitted), which retention would forbid, and retains its files once the manifest is
// written. Retaining again with the same or a later date is allowed, so an interrupted Retain is simply
// run again; an earlier date than an object already has is refused by the server.
func (s *Store) Retain(ctx context.Context, names []string, r Retention) error {
	if err := r.check(time.Now()); err != nil {
		return err
	}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return fmt.Errorf("retain %s: %w", s.path(name), err)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, s.concurrency)
	)
	for _, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.retainOne(ctx, name, r); err != nil {
				once.Do(func() { first = err })
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("retain objects of %s: %w", s, context.Cause(ctx))
	}
	return nil
}

func (s *Store) retainOne(ctx context.Context, name string, r Retention) error {
	key := aws.String(s.loc.Key(name))
	if !r.Until.IsZero() {
		_, err := s.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
			Bucket: aws.String(s.loc.Bucket), Key: key,
			Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(r.Mode), RetainUntilDate: aws.Time(r.Until.UTC())},
		})
		if err != nil {
			return s.pathError("retain", name, err)
		}
	}
	if r.LegalHold {
		_, err := s.client.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{
			Bucket: aws.String(s.loc.Bucket), Key: key,
			LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn},
		})
		if err != nil {
			return s.pathError("put legal hold on", name, err)
		}
	}
	return nil
}

// ObjectRetention is the Object Lock state of an object's current version.
type ObjectRetention struct {
	Mode      Mode      // "" when the object has no retention
	Until     time.Time // zero when the object has no retention
	LegalHold bool
}

// Protected reports whether the object cannot be deleted at now: retained until a later time, or held.
func (o ObjectRetention) Protected(now time.Time) bool {
	return o.LegalHold || (o.Mode != "" && o.Until.After(now))
}

// RetentionOf reads the retention and legal hold of an object's current version. An object without
// either has the zero ObjectRetention; a missing object is an fs.ErrNotExist error.
func (s *Store) RetentionOf(ctx context.Context, name string) (ObjectRetention, error) {
	if err := checkName(name); err != nil {
		return ObjectRetention{}, fmt.Errorf("retention of %s: %w", s.path(name), err)
	}
	key := aws.String(s.loc.Key(name))
	var o ObjectRetention
	ret, err := s.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(s.loc.Bucket), Key: key})
	switch {
	case err == nil && ret.Retention != nil:
		o.Mode = Mode(ret.Retention.Mode)
		o.Until = aws.ToTime(ret.Retention.RetainUntilDate)
	case err != nil && !noLockState(err):
		return o, s.pathError("read retention of", name, err)
	}
	hold, err := s.client.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: aws.String(s.loc.Bucket), Key: key})
	switch {
	case err == nil && hold.LegalHold != nil:
		o.LegalHold = hold.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
	case err != nil && !noLockState(err):
		return o, s.pathError("read legal hold of", name, err)
	}
	return o, nil
}

// RetentionReport is the Object Lock state of an archive's objects, for verify and inspect.
type RetentionReport struct {
	Objects map[string]ObjectRetention // by name
	// Until is the latest retain-until date among the objects (zero when none is retained).
	Until time.Time
	// Unprotected names the objects that could be deleted at the time of the report (no retention
	// running and no legal hold), sorted.
	Unprotected []string
	// Earlier names the objects whose retention ends before Until (whether held or not), sorted: the
	// part of the archive that loses its protection first.
	Earlier []string
}

// Retentions reads the retention and legal hold of every named object, a few at a time, and reports
// which are unprotected at now and which expire earlier than the rest.
func (s *Store) Retentions(ctx context.Context, names []string, now time.Time) (RetentionReport, error) {
	rep := RetentionReport{Objects: make(map[string]ObjectRetention, len(names))}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		sem   = make(chan struct{}, s.concurrency)
	)
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := s.RetentionOf(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			rep.Objects[name] = o
		}()
	}
	wg.Wait()
	if first != nil {
		return RetentionReport{}, first
	}
	for _, o := range rep.Objects {
		if o.Until.After(rep.Until) {
			rep.Until = o.Until
		}
	}
	for name, o := range rep.Objects {
		if !o.Protected(now) {
			rep.Unprotected = append(rep.Unprotected, name)
		}
		if !rep.Until.IsZero() && o.Until.Before(rep.Until) {
			rep.Earlier = append(rep.Earlier, name)
		}
	}
	sort.Strings(rep.Unprotected)
	sort.Strings(rep.Earlier)
	return rep, nil
}

// noLockState tells the answers that mean "this object has no retention (or hold)" from real errors.
func noLockState(err error) bool {
	switch errorCode(err) {
	case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError":
		return true
	}
	return false
}

// AbortUploads aborts every unfinished multipart upload under the store's prefix and returns how many
// it aborted: the parts of a file whose writer crashed (kill -9, a lost machine) before Commit or Abort,
// which the server would otherwise keep, and bill, forever. A resumed export calls it before it writes;
// it must not run while a NewFile of the same prefix is being written.
func (s *Store) AbortUploads(ctx context.Context) (int, error) {
	n := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.loc.Bucket), Prefix: aws.String(s.loc.keyPrefix())}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return n, fmt.Errorf("list unfinished uploads of %s: %w", s, err)
		}
		for _, up := range page.Uploads { // a hostile listing is refused whole, before any abort
			if _, err := s.loc.Name(aws.ToString(up.Key)); err != nil {
				return n, fmt.Errorf("list unfinished uploads of %s: %w", s, err)
			}
		}
		for _, up := range page.Uploads {
			key := aws.ToString(up.Key)
			if err := s.abortUpload(ctx, key, aws.ToString(up.UploadId)); err != nil {
				return n, fmt.Errorf("abort upload of %q in %s: %w", key, s, err)
			}
			n++
		}
		if !aws.ToBool(page.IsTruncated) {
			return n, nil
		}
		if aws.ToString(page.NextKeyMarker) == aws.ToString(in.KeyMarker) && aws.ToString(page.NextUploadIdMarker) == aws.ToString(in.UploadIdMarker) {
			return n, fmt.Errorf("list unfinished uploads of %s: the listing does not advance", s)
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}
