package s3store

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Location
		err  string // part of the error; "" for none
	}{
		{in: "s3://bucket", want: Location{Bucket: "bucket"}},
		{in: "s3://bucket/", want: Location{Bucket: "bucket"}},
		{in: "s3://my.bucket-1/exports/2026", want: Location{Bucket: "my.bucket-1", Prefix: "exports/2026"}},
		{in: "s3://bucket/exports/2026/", want: Location{Bucket: "bucket", Prefix: "exports/2026"}},
		{in: "s3://bucket/a%20b?c", want: Location{Bucket: "bucket", Prefix: "a%20b?c"}}, // literal, as the AWS CLI takes it
		{in: "/tmp/archive", err: "not an s3:// URL"},
		{in: "S3://bucket", err: "not an s3:// URL"},
		{in: "s3:/bucket", err: "not an s3:// URL"},
		{in: "s3://", err: "no bucket"},
		{in: "s3:///prefix", err: "no bucket"},
		{in: "s3://ab", err: "3 to 63"},
		{in: "s3://" + strings.Repeat("a", 64), err: "3 to 63"},
		{in: "s3://Bucket", err: "lower-case"},
		{in: "s3://buck_et", err: "lower-case"},
		{in: "s3://-bucket", err: "start and end"},
		{in: "s3://bucket./x", err: "start and end"},
		{in: "s3://buc..ket", err: "two dots"},
		{in: "s3://bucket:9000/x", err: "lower-case"},
		{in: "s3://bucket//x", err: "prefix"},
		{in: "s3://bucket/a//b", err: "prefix"},
		{in: "s3://bucket/../x", err: "prefix"},
		{in: "s3://bucket/a/./b", err: "prefix"},
		{in: "s3://bucket/a/..", err: "prefix"},
		{in: `s3://bucket/a\b`, err: "backslash"},
		{in: "s3://bucket/a\nb", err: "control"},
		{in: "s3://AKIAXXX:secretsecret@bucket/x", err: "credentials do not belong"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURL(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.NotContains(t, err.Error(), "secretsecret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := ParseURL(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again)
		})
	}
}

func TestLocationName(t *testing.T) {
	in := Location{Bucket: "b", Prefix: "exports/one"}
	whole := Location{Bucket: "b"}
	for _, tc := range []struct {
		loc  Location
		key  string
		want string // "" for ErrBadKey
	}{
		{in, "exports/one/bagit.txt", "bagit.txt"},
		{in, "exports/one/data/events/0.jsonl.zst", "data/events/0.jsonl.zst"},
		{whole, "bagit.txt", "bagit.txt"},
		{in, "exports/one", ""},
		{in, "exports/one/", ""},
		{in, "exports/onex/bagit.txt", ""},
		{in, "exports/other/bagit.txt", ""},
		{in, "exports/one/../two/x", ""},
		{in, "exports/one/data/../../x", ""},
		{in, "exports/one//x", ""},
		{in, "exports/one/./x", ""},
		{in, "exports/one/data/", ""},
		{in, `exports/one/data\..\x`, ""},
		{in, "exports/one/a\tb", ""},
		{in, "exports/one/a\xffb", ""},
		{whole, "/etc/passwd", ""},
		{whole, "..", ""},
		{whole, "", ""},
	} {
		got, err := tc.loc.Name(tc.key)
		if tc.want == "" {
			assert.ErrorIs(t, err, ErrBadKey, "key %q", tc.key)
			continue
		}
		if assert.NoError(t, err, "key %q", tc.key) {
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.key, tc.loc.Key(got))
		}
	}
}

// FuzzParseURL: whatever is given, ParseURL does not panic, and a URL it accepts prints back as a URL
// that parses to the same location, whose keys come back as the names they were made from.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket", "s3://bucket/", "s3://b.c-d/a/b/c/", "s3://bucket/../x", "s3://k:s@bucket", "s3://bucket/a\\b", "s3://bucket//"} {
		f.Add(s, "data/events/0.jsonl.zst")
	}
	f.Fuzz(func(t *testing.T, url, name string) {
		loc, err := ParseURL(url)
		if err != nil {
			return
		}
		again, err := ParseURL(loc.String())
		if err != nil || again != loc {
			t.Fatalf("%q parsed to %+v, which prints as %q, which parses to %+v, %v", url, loc, loc.String(), again, err)
		}
		if checkName(name) != nil {
			return
		}
		back, err := loc.Name(loc.Key(name))
		if err != nil || back != name {
			t.Fatalf("name %q under %+v: key %q gives back %q, %v", name, loc, loc.Key(name), back, err)
		}
	})
}

// FuzzName: a key listed back either gives a name that is a valid relative path under the prefix and
// maps back to the same key, or is refused.
func FuzzName(f *testing.F) {
	for _, k := range []string{"exports/one/bagit.txt", "exports/one/../x", "exports/one//x", "exports/onex", "/x", "exports/one/a\\b"} {
		f.Add("exports/one", k)
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		loc, err := ParseURL("s3://bucket/" + prefix)
		if err != nil {
			return
		}
		name, err := loc.Name(key)
		if err != nil {
			return
		}
		if !fs.ValidPath(name) || name == "." || strings.ContainsAny(name, "\\\x00") || loc.Key(name) != key {
			t.Fatalf("key %q under %+v gave name %q", key, loc, name)
		}
	})
}
