package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/axarchive/axarchive/archive"
)

var _ archive.Storage = (*Store)(nil)

// Part sizes and parallelism of uploads.
const (
	// MinPartSize is S3's smallest part of a multipart upload (all but the last).
	MinPartSize = 5 << 20
	// MaxParts is S3's largest number of parts of one upload: a file may hold at most
	// PartSize × MaxParts bytes.
	MaxParts = 10000
	// DefaultPartSize is the part size when Options.PartSize is 0.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is the number of parts uploaded at once when Options.Concurrency is 0.
	DefaultConcurrency = 4
	// DefaultAttempts is the number of attempts of one request when Options.Attempts is 0.
	DefaultAttempts = 10
	// defaultRegion is the region signed for when neither the options nor the AWS configuration name
	// one: S3-compatible servers mostly accept it, and AWS redirects a wrong one with a clear error.
	defaultRegion = "us-east-1"
)

// Options configures a Store. The zero value takes everything from the AWS environment.
type Options struct {
	// Endpoint is the base URL of an S3-compatible server (http://127.0.0.1:7070). Empty: the AWS
	// configuration's (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or a profile's endpoint_url), else AWS.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket/key instead of bucket.endpoint/key, as most
	// S3-compatible servers need.
	PathStyle bool
	// Region overrides AWS_REGION or the profile's region; "us-east-1" when none is configured.
	Region string
	// Profile selects a profile of the shared config and credentials files (AWS_PROFILE otherwise).
	Profile string
	// Credentials, when not nil, replace the AWS credential chain (for tests and embedding programs).
	Credentials aws.CredentialsProvider
	// PartSize is the size of each part of a multipart upload, at least MinPartSize; 0 means
	// DefaultPartSize. A file of at most one part is uploaded with one PutObject at Commit.
	PartSize int64
	// Concurrency is the number of parts of one file uploaded at once; 0 means DefaultConcurrency. A
	// file being written holds at most PartSize × (Concurrency+1) bytes of memory.
	Concurrency int
	// Attempts is how often one request (a part, a small object, a listing page) is tried before its
	// error is returned, with exponential back-off up to 2 s in between; 0 means DefaultAttempts. A
	// download cut off mid-stream is resumed from where it stopped as often.
	Attempts int
	// HTTPClient, when not nil, sends the requests (for timeouts or a proxy of one's own) instead of the
	// SDK's client; AWS_CA_BUNDLE then is its business.
	HTTPClient aws.HTTPClient
}

// Store is an archive.Storage over one bucket and key prefix. It is safe for concurrent use; each
// NewFile it returns is for one goroutine.
//
// archive.Storage's methods take no context: a Store uses the one given to New for all of them, so
// cancelling it stops every request in flight. The methods of its own (AbortUploads, Retain, …) take
// theirs.
type Store struct {
	ctx         context.Context
	loc         Location
	client      *s3.Client
	partSize    int64
	concurrency int
	attempts    int
	// firstParts keeps the first-part buffers of files uploaded with one PutObject for the next files
	// (an archive writer commits one chunk while it writes the next): a file's first part grows by
	// append, and growing a new one from nothing for every chunk copied each chunk's bytes twice more
	// and kept the collector busy. At most cap(firstParts) buffers, each at most PartSize, are kept.
	firstParts chan []byte
}

// New returns a Store for an s3://bucket/prefix URL. It loads the AWS configuration the way the AWS CLI
// does (environment variables, shared config and credentials files, profiles, endpoint URLs), applies
// opts (nil for none), and checks with HeadBucket that the bucket is there and answers. ctx is the
// context of every request made by the archive.Storage methods (see Store).
func New(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize {
		return nil, fmt.Errorf("part size %d: S3 needs at least %d bytes", o.PartSize, MinPartSize)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Endpoint != "" {
		if err := checkEndpoint(o.Endpoint); err != nil {
			return nil, err
		}
	}
	loaders := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.Attempts
				so.MaxBackoff = 2 * time.Second
				// The client-side retry quota would turn a burst of cut part uploads into
				// "retry quota exceeded"; every part has its own attempts instead.
				so.RateLimiter = ratelimit.None
			})
		}),
	}
	if o.Region != "" {
		loaders = append(loaders, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		loaders = append(loaders, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Credentials != nil {
		loaders = append(loaders, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		if o.HTTPClient != nil {
			so.HTTPClient = o.HTTPClient
		}
		// The SDK would log to stderr, for instance that it cannot check the checksum of a multipart
		// object on download (the archive's SHA-256 does): everything that matters comes back as an error.
		so.Logger = logging.Nop{}
	})
	s := &Store{ctx: ctx, loc: loc, client: client, partSize: o.PartSize, concurrency: o.Concurrency, attempts: o.Attempts,
		firstParts: make(chan []byte, 2)}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(loc.Bucket)}); err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return nil, fmt.Errorf("open %s: no bucket %q", s, loc.Bucket)
		}
		return nil, fmt.Errorf("open %s: %w", s, err)
	}
	return s, nil
}

// checkEndpoint accepts http:// and https:// URLs with a host and nothing secret in them.
func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("endpoint: want http://host[:port] or https://host[:port]")
	}
	if u.User != nil {
		return errors.New("endpoint: credentials do not belong in the endpoint URL")
	}
	return nil
}

// String returns s3://bucket/prefix: never an endpoint, a key or a secret.
func (s *Store) String() string { return s.loc.String() }

// Location returns the bucket and prefix.
func (s *Store) Location() Location { return s.loc }

// PartSize returns the part size of multipart uploads.
func (s *Store) PartSize() int64 { return s.partSize }

// path names a file for messages.
func (s *Store) path(name string) string { return s.loc.String() + "/" + name }

// Open opens a committed object for reading. The reader resumes a download cut off mid-stream with a
// ranged request for the rest, as long as the object is unchanged (If-Match on its ETag). The caller
// closes it.
func (s *Store) Open(name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: s.loc.String() + "/" + name, Err: fs.ErrInvalid}
	}
	return s.openReader(s.ctx, name)
}

// Stat describes one object; a missing one is an fs.ErrNotExist error.
func (s *Store) Stat(name string) (archive.StorageEntry, error) {
	if err := checkName(name); err != nil {
		return archive.StorageEntry{}, &fs.PathError{Op: "stat", Path: s.path(name), Err: fs.ErrInvalid}
	}
	out, err := s.client.HeadObject(s.ctx, &s3.HeadObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.Key(name))})
	if err != nil {
		return archive.StorageEntry{}, s.pathError("stat", name, err)
	}
	return archive.StorageEntry{Name: name, Size: aws.ToInt64(out.ContentLength)}, nil
}

// List returns the objects whose names start with prefix, sorted by name. Every key listed back must
// lie inside the store's prefix and be a valid name, or the listing fails with ErrBadKey; the one
// exception is an empty object named like the prefix with a slash (a console's folder marker), which
// is left out.
func (s *Store) List(prefix string) ([]archive.StorageEntry, error) {
	if err := checkListPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", s, err)
	}
	want := s.loc.keyPrefix() + prefix
	var entries []archive.StorageEntry
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.loc.Bucket), Prefix: aws.String(want)})
	for p.HasMorePages() {
		page, err := p.NextPage(s.ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if key == s.loc.keyPrefix() && aws.ToInt64(obj.Size) == 0 {
				continue // the prefix's own "folder" marker, as the S3 console's "Create folder" makes
			}
			name, err := s.loc.Name(key)
			if err == nil && !strings.HasPrefix(name, prefix) {
				err = fmt.Errorf("listed key %q: %w: not under the prefix asked for", key, ErrBadKey)
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", s, err)
			}
			entries = append(entries, archive.StorageEntry{Name: name, Size: aws.ToInt64(obj.Size)})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	for i := 1; i < len(entries); i++ {
		if entries[i].Name == entries[i-1].Name {
			return nil, fmt.Errorf("list %s: key %q listed twice", s, s.loc.Key(entries[i].Name))
		}
	}
	return entries, nil
}

// Remove deletes an object; a missing one is not an error. In a versioned bucket (every bucket with
// Object Lock is one) this adds a delete marker: earlier versions stay until the bucket's lifecycle
// rules or an administrator remove them.
func (s *Store) Remove(name string) error {
	if err := checkName(name); err != nil {
		return &fs.PathError{Op: "remove", Path: s.path(name), Err: fs.ErrInvalid}
	}
	_, err := s.client.DeleteObject(s.ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.Key(name))})
	if err != nil && !isNotFound(err) {
		return s.pathError("remove", name, err)
	}
	return nil
}

// pathError wraps a request's error as an *fs.PathError naming the object, with fs.ErrNotExist for a
// missing object.
func (s *Store) pathError(op, name string, err error) error {
	if isNotFound(err) {
		err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	}
	return &fs.PathError{Op: op, Path: s.path(name), Err: err}
}

// isNotFound reports a missing object: NoSuchKey from GET, a bare 404 from HEAD.
func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return httpStatus(err) == http.StatusNotFound
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
