package s3store

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// Scheme is the URL scheme of an object-store location.
const Scheme = "s3://"

// ErrBadKey is the error (wrapped with the key) for a key name that a bucket listed back and that
// does not name a file inside the store's prefix: outside it, with "." or ".." elements, empty elements,
// a backslash, a control character or invalid UTF-8. Such a listing is refused whole rather than filtered.
var ErrBadKey = errors.New("key outside the archive's prefix or not a valid name")

// Location is a parsed s3://bucket/prefix URL.
type Location struct {
	Bucket string
	// Prefix is the key prefix of the archive, without leading or trailing slash; "" for the whole
	// bucket. A file name n is stored under the key Prefix + "/" + n.
	Prefix string
}

// IsURL reports whether s is meant as an object-store URL (starts with s3://), so that a caller can
// choose between a directory and a Store before parsing.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseURL parses s3://bucket or s3://bucket/prefix (a trailing slash is allowed). The bucket must be
// a valid S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with
// a letter or digit); the prefix must be a slash-separated relative path without "." or ".." elements,
// empty elements, backslashes, control characters or invalid UTF-8. The rest is taken literally: no percent-decoding,
// no query. A URL with credentials in it (s3://key:secret@bucket) is refused without echoing them.
func ParseURL(s string) (Location, error) {
	if !IsURL(s) {
		return Location{}, fmt.Errorf("parse %q: not an s3:// URL", s)
	}
	rest := s[len(Scheme):]
	bucket, prefix, _ := strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		// Whatever precedes the @ may be a secret: say what is wrong without repeating it.
		return Location{}, errors.New("parse s3:// URL: credentials do not belong in the URL; use the AWS environment variables or a profile")
	}
	if err := checkBucket(bucket); err != nil {
		return Location{}, fmt.Errorf("parse %q: %w", s, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		if err := checkName(prefix); err != nil {
			return Location{}, fmt.Errorf("parse %q: prefix: %w", s, err)
		}
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// String returns the location as s3://bucket/prefix (s3://bucket for the whole bucket).
func (l Location) String() string {
	if l.Prefix == "" {
		return Scheme + l.Bucket
	}
	return Scheme + l.Bucket + "/" + l.Prefix
}

// Key returns the object key of the file name (which must have passed checkName).
func (l Location) Key(name string) string {
	if l.Prefix == "" {
		return name
	}
	return l.Prefix + "/" + name
}

// keyPrefix is the string every key of the store starts with: "prefix/", or "" for the whole bucket.
func (l Location) keyPrefix() string {
	if l.Prefix == "" {
		return ""
	}
	return l.Prefix + "/"
}

// Name returns the file name of a key listed back from the bucket, refusing (ErrBadKey) any key that is
// not inside the prefix or whose rest is not a valid name: the bucket's answer is never trusted.
func (l Location) Name(key string) (string, error) {
	kp := l.keyPrefix()
	if !strings.HasPrefix(key, kp) {
		return "", fmt.Errorf("listed key %q: %w", key, ErrBadKey)
	}
	name := key[len(kp):]
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("listed key %q: %w: %v", key, ErrBadKey, err)
	}
	return name, nil
}

// checkBucket applies S3's rules for bucket names.
func checkBucket(b string) error {
	if b == "" {
		return errors.New("no bucket name")
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q: must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '.' || c == '-':
			if i == 0 || i == len(b)-1 {
				return fmt.Errorf("bucket name %q: must start and end with a letter or digit", b)
			}
		default:
			return fmt.Errorf("bucket name %q: only lower-case letters, digits, dots and hyphens", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %q: two dots in a row", b)
	}
	return nil
}

// checkName accepts the names of the archive.Storage contract: relative, slash-separated, no "." or ".."
// elements, no empty elements (so no leading or trailing slash), and, beyond fs.ValidPath, no
// backslash (a path separator once synced to Windows) and no control characters.
func checkName(name string) error {
	if name == "" || name == "." || !fs.ValidPath(name) {
		return fmt.Errorf("%q is not a relative name without empty, \".\" or \"..\" elements", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%q is not UTF-8", name)
	}
	for _, r := range name {
		if r == '\\' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q holds a backslash or a control character", name)
		}
	}
	return nil
}

// checkListPrefix accepts what List may be asked for: "" or a name, possibly ending in "/" or in the
// middle of an element ("data/ev").
func checkListPrefix(p string) error {
	if p == "" {
		return nil
	}
	if err := checkName(strings.TrimSuffix(p, "/")); err != nil {
		return fmt.Errorf("list prefix: %w", err)
	}
	return nil
}
