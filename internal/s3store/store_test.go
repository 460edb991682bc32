package s3store

import (
	"context"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/s3test"
)

// env is one versitygw with a bucket, and a Store on a prefix of it.
type env struct {
	srv    *s3test.Server
	bucket string
	store  *Store
}

// newEnv starts a versitygw, creates bucket "arch" (with Object Lock when lock is true) and opens
// s3://arch/exports/one through endpoint (the server's own when "").
func newEnv(t testing.TB, lock bool, opts *Options) *env {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arch", lock)
	e := &env{srv: srv, bucket: "arch"}
	e.store = e.open(t, "s3://arch/exports/one", opts)
	return e
}

func (e *env) open(t testing.TB, url string, opts *Options) *Store {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Endpoint == "" {
		o.Endpoint = e.srv.Endpoint
	}
	o.PathStyle = true
	o.Credentials = e.srv.Credentials()
	o.PartSize = max(o.PartSize, MinPartSize)
	s, err := New(t.Context(), url, &o)
	require.NoError(t, err)
	return s
}

// pending returns the keys of the bucket's unfinished multipart uploads.
func (e *env) pending(t testing.TB) []string {
	t.Helper()
	out, err := e.srv.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(e.bucket)})
	require.NoError(t, err)
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// keys returns every key of the bucket.
func (e *env) keys(t testing.TB) []string {
	t.Helper()
	out, err := e.srv.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket)})
	require.NoError(t, err)
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 19))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// put writes data to name in writes of odd sizes and commits it.
func put(t testing.TB, s *Store, name string, data []byte) {
	t.Helper()
	f, err := s.Create(name)
	require.NoError(t, err)
	writeOdd(t, f, data)
	require.NoError(t, f.Commit())
}

func writeOdd(t testing.TB, w io.Writer, data []byte) {
	t.Helper()
	for step := 1; len(data) > 0; step = step*7%(3<<20) + 1 {
		k := min(step, len(data))
		n, err := w.Write(data[:k])
		require.NoError(t, err)
		require.Equal(t, k, n)
		data = data[k:]
	}
}

func get(t testing.TB, s *Store, name string) []byte {
	t.Helper()
	r, err := s.Open(name)
	require.NoError(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

// TestRoundTrip: files of one part and of several go up and come back byte for byte, with their size.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, &Options{Concurrency: 3})
	for i, size := range []int{0, 1, 1000, MinPartSize - 1, MinPartSize, MinPartSize + 1, 3*MinPartSize + 12345} {
		name := "data/events/" + strings.Repeat("0", 3) + string(rune('a'+i)) + ".jsonl.zst"
		data := randomBytes(uint64(i), size)
		put(t, e.store, name, data)
		assert.Equal(t, data, get(t, e.store, name), "size %d", size)
		st, err := e.store.Stat(name)
		require.NoError(t, err)
		assert.Equal(t, archive.StorageEntry{Name: name, Size: int64(size)}, st)
	}
	assert.Empty(t, e.pending(t), "no upload left unfinished")
}

// TestStorageSemantics: the archive.Storage contract, on an object store.
func TestStorageSemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	s := e.store
	// Another archive beside this one, and one whose prefix starts like it, are none of its business.
	put(t, e.open(t, "s3://arch/exports/one-more", nil), "bagit.txt", []byte("x"))
	put(t, e.open(t, "s3://arch/exports", nil), "bagit.txt", []byte("y"))

	_, err := s.Stat("bagit.txt")
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = s.Open("bagit.txt")
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NoError(t, s.Remove("bagit.txt"), "removing a missing file is not an error")
	list, err := s.List("")
	require.NoError(t, err)
	require.Empty(t, list)

	// Nothing shows before Commit.
	f, err := s.Create("journal.json")
	require.NoError(t, err)
	_, err = f.Write([]byte("first"))
	require.NoError(t, err)
	_, err = s.Stat("journal.json")
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NoError(t, f.Commit())
	require.NoError(t, f.Abort(), "Abort after Commit does nothing")
	_, err = f.Write([]byte("more"))
	require.Error(t, err, "no write after Commit")
	require.Equal(t, []byte("first"), get(t, s, "journal.json"))

	// A Create of a committed name replaces it whole on Commit, not before.
	f, err = s.Create("journal.json")
	require.NoError(t, err)
	_, err = f.Write([]byte("second, longer"))
	require.NoError(t, err)
	require.Equal(t, []byte("first"), get(t, s, "journal.json"))
	require.NoError(t, f.Commit())
	require.Equal(t, []byte("second, longer"), get(t, s, "journal.json"))

	put(t, s, "data/manifest.json", []byte("{}"))
	put(t, s, "data/events/2.jsonl.zst", []byte("22"))
	put(t, s, "data/events/1.jsonl.zst", []byte("1"))
	put(t, s, "bagit.txt", []byte("BagIt-Version: 1.0\n"))
	list, err = s.List("")
	require.NoError(t, err)
	require.Equal(t, []archive.StorageEntry{
		{Name: "bagit.txt", Size: 19}, {Name: "data/events/1.jsonl.zst", Size: 1},
		{Name: "data/events/2.jsonl.zst", Size: 2}, {Name: "data/manifest.json", Size: 2},
		{Name: "journal.json", Size: 14},
	}, list)
	list, err = s.List("data/events/")
	require.NoError(t, err)
	require.Len(t, list, 2)
	list, err = s.List("data/ev")
	require.NoError(t, err)
	require.Len(t, list, 2)

	require.NoError(t, s.Remove("journal.json"))
	_, err = s.Stat("journal.json")
	require.ErrorIs(t, err, fs.ErrNotExist)

	for _, bad := range []string{"", ".", "/bagit.txt", "../x", "data/../x", "data//x", "data/", `a\b`, "a\x00b"} {
		_, err := s.Create(bad)
		assert.ErrorIs(t, err, fs.ErrInvalid, "Create(%q)", bad)
		_, err = s.Open(bad)
		assert.ErrorIs(t, err, fs.ErrInvalid, "Open(%q)", bad)
		_, err = s.Stat(bad)
		assert.ErrorIs(t, err, fs.ErrInvalid, "Stat(%q)", bad)
		assert.ErrorIs(t, s.Remove(bad), fs.ErrInvalid, "Remove(%q)", bad)
	}
	_, err = s.List("../")
	require.Error(t, err)
}

// TestAbort: an aborted file, small or multipart, leaves neither an object nor an unfinished upload.
func TestAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, &Options{Concurrency: 2})
	for _, size := range []int{10, 3*MinPartSize + 1} {
		f, err := e.store.Create("data/events/x.jsonl.zst")
		require.NoError(t, err)
		writeOdd(t, f, randomBytes(1, size))
		require.NoError(t, f.Abort())
		require.NoError(t, f.Abort(), "a second Abort does nothing")
		_, err = f.Write([]byte("x"))
		require.Error(t, err)
		require.Error(t, f.Commit())
		assert.Empty(t, e.keys(t), "size %d", size)
		assert.Empty(t, e.pending(t), "size %d", size)
	}
}

// TestAbortCancelled: a file whose Store's context was cancelled (an interrupted export) still aborts
// its upload, and fails its writes with the cancellation.
func TestAbortCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := New(ctx, "s3://arch/exports/one", &Options{Endpoint: e.srv.Endpoint, PathStyle: true, Credentials: e.srv.Credentials()})
	require.NoError(t, err)
	f, err := s.Create("data/events/x")
	require.NoError(t, err)
	writeOdd(t, f, randomBytes(2, 2*MinPartSize+1))
	cancel()
	_, err = f.Write(make([]byte, MinPartSize))
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, f.Abort())
	require.Empty(t, e.pending(t))
	require.Empty(t, e.keys(t))
}

// TestAbortUploads: the unfinished uploads of a writer that died before Commit or Abort are found and
// aborted; those of other prefixes are left alone.
func TestAbortUploads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	other := e.open(t, "s3://arch/exports/two", nil)
	for i, s := range []*Store{e.store, e.store, other} {
		f, err := s.Create("data/events/" + string(rune('a'+i)))
		require.NoError(t, err)
		writeOdd(t, f, randomBytes(uint64(i), MinPartSize+1)) // one part sent; the writer then "dies"
	}
	require.Len(t, e.pending(t), 3)
	n, err := e.store.AbortUploads(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []string{"exports/two/data/events/c"}, e.pending(t))
	n, err = e.store.AbortUploads(t.Context())
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, e.keys(t))
}

// TestConfigErrors: bad URLs, endpoints and credentials fail New with errors that never hold a secret.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	ctx := context.Background()
	_, err := New(ctx, "s3://nobucket/x", &Options{Endpoint: e.srv.Endpoint, PathStyle: true, Credentials: e.srv.Credentials()})
	require.ErrorContains(t, err, `no bucket "nobucket"`)

	const secret = "0123456789abcdef-very-secret"
	wrong := credentials.NewStaticCredentialsProvider(e.srv.AccessKey, secret, "")
	_, err = New(ctx, "s3://arch/x", &Options{Endpoint: e.srv.Endpoint, PathStyle: true, Credentials: wrong, Attempts: 1})
	require.Error(t, err)
	require.NotContains(t, err.Error(), secret)

	_, err = New(ctx, "s3://AKIA:topsecret@arch/x", nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "topsecret")
	_, err = New(ctx, "s3://arch/x", &Options{Endpoint: "http://user:topsecret@127.0.0.1:1"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "topsecret")
	_, err = New(ctx, "s3://arch/x", &Options{Endpoint: "127.0.0.1:9000"})
	require.Error(t, err)
	_, err = New(ctx, "s3://arch/x", &Options{Endpoint: e.srv.Endpoint, PartSize: 1 << 20})
	require.Error(t, err, "parts below S3's minimum")

	require.Equal(t, "s3://arch/exports/one", e.store.String())
}

// TestEnvironmentConfig: with nothing but the AWS environment (AWS_ENDPOINT_URL, a profile in a shared
// credentials file), New finds the server and the credentials, as the AWS CLI would.
func TestEnvironmentConfig(t *testing.T) {
	e := newEnv(t, false, nil)
	put(t, e.store, "bagit.txt", []byte("hello"))
	dir := t.TempDir()
	creds := dir + "/credentials"
	require.NoError(t, os.WriteFile(creds, []byte("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[archive]\naws_access_key_id = "+
		e.srv.AccessKey+"\naws_secret_access_key = "+e.srv.SecretKey+"\n"), 0o600))
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "archive")
	t.Setenv("AWS_ENDPOINT_URL", e.srv.Endpoint)
	s, err := New(t.Context(), "s3://arch/exports/one", nil) // an IP endpoint is addressed path-style
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), get(t, s, "bagit.txt"))

	// The environment's keys win over the profile's file, as everywhere in AWS.
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", e.srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.srv.SecretKey)
	s, err = New(t.Context(), "s3://arch/exports/one", nil)
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), get(t, s, "bagit.txt"))

	// An explicit profile that does not exist is an error, not a silent fallback.
	_, err = New(t.Context(), "s3://arch/exports/one", &Options{Profile: "nope"})
	require.Error(t, err)
}
