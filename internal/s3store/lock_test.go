package s3store

import (
	"io/fs"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestObjectLock: into a bucket with Object Lock, retention and a legal hold go on every object named,
// are read back, and make the server refuse to delete the retained version; a bucket without Object
// Lock is refused before anything is written.
func TestObjectLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, nil)
	ctx := t.Context()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	r := Retention{Mode: Compliance, Until: until, LegalHold: true}

	c, err := e.store.ObjectLock(ctx)
	require.NoError(t, err)
	require.True(t, c.Enabled)
	require.Empty(t, c.DefaultMode)
	require.NoError(t, e.store.CheckRetention(ctx, r))

	names := []string{"bagit.txt", "data/events/1.jsonl.zst", "data/manifest.json"}
	for _, n := range names {
		put(t, e.store, n, []byte(n))
	}
	put(t, e.store, "unretained", []byte("x"))
	got, err := e.store.RetentionOf(ctx, "unretained")
	require.NoError(t, err)
	require.Equal(t, ObjectRetention{}, got)
	require.False(t, got.Protected(time.Now()))

	require.NoError(t, e.store.Retain(ctx, names, Retention{Mode: Compliance, Until: until}))
	requireUndeletable(t, e, names[1]) // by the retention alone
	require.NoError(t, e.store.Retain(ctx, names, r), "retaining again with the same date, adding a hold")
	for _, n := range names {
		got, err := e.store.RetentionOf(ctx, n)
		require.NoError(t, err)
		assert.Equal(t, Compliance, got.Mode, n)
		assert.True(t, got.Until.Equal(until), "%s: until %s, want %s", n, got.Until, until)
		assert.True(t, got.LegalHold, n)
		assert.True(t, got.Protected(time.Now()), n)
	}

	// The retained version cannot be deleted, by the store's user or anyone.
	for _, n := range names {
		requireUndeletable(t, e, n)
	}
	require.Equal(t, names, func() []string { // still there, each
		var ns []string
		for _, n := range names {
			if _, err := e.store.Stat(n); err == nil {
				ns = append(ns, n)
			}
		}
		return ns
	}())

	// The report for verify and inspect: the unretained object stands out, and so does one retained
	// for less long than the rest.
	put(t, e.store, "short", []byte("s"))
	require.NoError(t, e.store.Retain(ctx, []string{"short"}, Retention{Mode: Governance, Until: until.Add(-time.Minute)}))
	rep, err := e.store.Retentions(ctx, append([]string{"unretained", "short"}, names...), time.Now())
	require.NoError(t, err)
	require.Len(t, rep.Objects, 5)
	require.True(t, rep.Until.Equal(until))
	require.Equal(t, []string{"unretained"}, rep.Unprotected)
	require.Equal(t, []string{"short", "unretained"}, rep.Earlier)
	rep, err = e.store.Retentions(ctx, []string{"short"}, until) // once the short retention has run out
	require.NoError(t, err)
	require.Equal(t, []string{"short"}, rep.Unprotected)
	_, err = e.store.Retentions(ctx, []string{"missing"}, time.Now())
	require.ErrorIs(t, err, fs.ErrNotExist)

	// ... while an unretained version goes (so the refusals were the retention's).
	head, err := e.srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.loc.Key("unretained"))})
	require.NoError(t, err)
	_, err = e.srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.loc.Key("unretained")), VersionId: head.VersionId})
	require.NoError(t, err)

	// Retention cannot be shortened.
	require.Error(t, e.store.Retain(ctx, names[:1], Retention{Mode: Compliance, Until: until.Add(-time.Minute)}))

	// A bucket without Object Lock is refused by the check that runs before anything is written.
	e.srv.CreateBucket(t, "plain", false)
	plain := e.open(t, "s3://plain/a", nil)
	require.ErrorIs(t, plain.CheckRetention(ctx, r), ErrNoObjectLock)
	c, err = plain.ObjectLock(ctx)
	require.NoError(t, err)
	require.False(t, c.Enabled)
}

// TestRetentionCheck: the retention asked for is checked before the bucket is.
func TestRetentionCheck(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		r    Retention
		ok   bool
	}{
		{"compliance", Retention{Mode: Compliance, Until: now.Add(time.Hour)}, true},
		{"governance-hold", Retention{Mode: Governance, Until: now.Add(time.Hour), LegalHold: true}, true},
		{"hold-only", Retention{LegalHold: true}, true},
		{"nothing", Retention{}, false},
		{"past", Retention{Mode: Compliance, Until: now.Add(-time.Hour)}, false},
		{"no-mode", Retention{Until: now.Add(time.Hour)}, false},
		{"mode-no-date", Retention{Mode: Compliance}, false},
		{"bad-mode", Retention{Mode: "forever", Until: now.Add(time.Hour)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.check(now)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
	for in, want := range map[string]Mode{"compliance": Compliance, "GOVERNANCE": Governance, "Compliance": Compliance} {
		got, err := ParseMode(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := ParseMode("legal")
	require.Error(t, err)
}

// requireUndeletable checks that the server refuses to delete the current version of name.
func requireUndeletable(t *testing.T, e *env, name string) {
	t.Helper()
	client := e.srv.Client()
	head, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.loc.Key(name))})
	require.NoError(t, err)
	require.NotEmpty(t, aws.ToString(head.VersionId), "an Object Lock bucket is versioned")
	_, err = client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.loc.Key(name)), VersionId: head.VersionId})
	require.Error(t, err, "delete of the retained version of %s", name)
}
