package s3store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/cutproxy"
)

// viaProxy opens the env's store again through a proxy that can cut its connections.
func (e *env) viaProxy(t *testing.T, opts *Options) (*Store, *cutproxy.Proxy) {
	t.Helper()
	p := cutproxy.New(t, e.srv.Addr())
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.Endpoint = "http://" + p.Addr()
	return e.open(t, "s3://arch/exports/one", &o), p
}

// TestUploadConnectionCut: connections cut in the middle of parts and of a small object are retried,
// and the objects hold exactly the bytes written.
func TestUploadConnectionCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	s, p := e.viaProxy(t, &Options{Concurrency: 2})

	data := randomBytes(7, 4*MinPartSize+777)
	p.CutAfter(cutproxy.Up, 7<<20)   // in the second part
	p.CutAfter(cutproxy.Up, 9<<20)   // in the fourth
	p.CutAfter(cutproxy.Up, 1<<20+5) // in the fifth
	put(t, s, "data/events/big", data)
	require.Equal(t, 3, p.Cuts())

	small := randomBytes(8, 100<<10)
	p.CutAfter(cutproxy.Up, 50<<10)
	put(t, s, "data/events/small", small)
	require.Equal(t, 4, p.Cuts())

	require.Equal(t, data, get(t, e.store, "data/events/big"))
	require.Equal(t, small, get(t, e.store, "data/events/small"))
	require.Empty(t, e.pending(t))
}

// TestDownloadConnectionCut: a download cut off mid-stream goes on from where it stopped.
func TestDownloadConnectionCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	data := randomBytes(9, 12<<20)
	put(t, e.store, "data/events/x", data)
	s, p := e.viaProxy(t, nil)
	p.CutAfter(cutproxy.Down, 3<<20)
	p.CutAfter(cutproxy.Down, 5<<20)
	p.CutAfter(cutproxy.Down, 100)
	require.Equal(t, data, get(t, s, "data/events/x"))
	require.Equal(t, 3, p.Cuts())

	// An object replaced while a cut-off download waits is not spliced with the new one.
	r, err := s.Open("data/events/x")
	require.NoError(t, err)
	defer r.Close()
	_, err = io.ReadFull(r, make([]byte, 1<<20))
	require.NoError(t, err)
	put(t, e.store, "data/events/x", randomBytes(10, 12<<20))
	r.(*objectReader).body.Close() // the cut, deterministically: the rest may sit in socket buffers
	_, err = io.ReadAll(r)
	require.ErrorIs(t, err, ErrChanged)
}

// TestServerRestart: the server killed and started again in the middle of a multipart upload and of a
// download: both ride it out by retrying, with the right bytes.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, &Options{Concurrency: 2})
	data := randomBytes(11, 5*MinPartSize+3)
	// restart kills the server now and starts it again 0.7 s later, while the test goes on.
	restart := func() <-chan error {
		e.srv.Stop()
		done := make(chan error, 1)
		go func() {
			time.Sleep(700 * time.Millisecond)
			done <- e.srv.Restart()
		}()
		return done
	}

	f, err := e.store.Create("data/events/big")
	require.NoError(t, err)
	writeOdd(t, f, data[:2*MinPartSize+1]) // two parts sent or on their way
	restarted := restart()
	writeOdd(t, f, data[2*MinPartSize+1:])
	require.NoError(t, f.Commit())
	require.NoError(t, <-restarted)
	require.Equal(t, data, get(t, e.store, "data/events/big"))
	require.Empty(t, e.pending(t))

	r, err := e.store.Open("data/events/big")
	require.NoError(t, err)
	defer r.Close()
	head := make([]byte, 1<<20)
	_, err = io.ReadFull(r, head)
	require.NoError(t, err)
	restarted = restart()
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, <-restarted)
	require.Equal(t, data, append(head, rest...))
}

// TestHostileListing: keys listed back from the bucket that would name a file outside the archive's
// prefix are refused, from a real server and from one that lies about the prefix.
func TestHostileListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	put(t, e.store, "bagit.txt", []byte("ok"))
	// The folder marker of the prefix is no file, and no threat.
	_, err := e.srv.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("exports/one/"), Body: strings.NewReader("")})
	require.NoError(t, err)
	list, err := e.store.List("")
	require.NoError(t, err)
	require.Len(t, list, 1)
	_, err = e.srv.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String(`exports/one/data\..\..\x`), Body: strings.NewReader("x"),
	})
	require.NoError(t, err)
	_, err = e.store.List("")
	require.ErrorIs(t, err, ErrBadKey)

	for _, key := range []string{
		"exports/other/x", "exports/one", "exports/one/../../etc/passwd", "exports/one//x", "exports/one/data/",
		"/exports/one/x", "exports/one/./x", "exports/one/a\x7fb",
	} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			srv := lyingServer(t, []string{"exports/one/bagit.txt", key})
			s, err := New(t.Context(), "s3://arch/exports/one", &Options{Endpoint: srv.URL, PathStyle: true, Credentials: e.srv.Credentials(), Attempts: 1})
			require.NoError(t, err)
			_, err = s.List("")
			require.ErrorIs(t, err, ErrBadKey)
			_, err = s.AbortUploads(t.Context())
			require.ErrorIs(t, err, ErrBadKey)
		})
	}
	t.Run("outside-list-prefix", func(t *testing.T) {
		srv := lyingServer(t, []string{"exports/one/bagit.txt"})
		s, err := New(t.Context(), "s3://arch/exports/one", &Options{Endpoint: srv.URL, PathStyle: true, Credentials: e.srv.Credentials(), Attempts: 1})
		require.NoError(t, err)
		_, err = s.List("data/")
		require.ErrorIs(t, err, ErrBadKey)
		list, err := s.List("")
		require.NoError(t, err)
		require.Len(t, list, 1)
		n, err := s.AbortUploads(t.Context())
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

// lyingServer answers HeadBucket, and every listing (objects or uploads) with keys; aborts work.
func lyingServer(t *testing.T, keys []string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		switch {
		case r.Method == http.MethodHead:
			return
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
			return
		case r.URL.Query().Has("uploadId"):
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code></Error>`)
			return
		}
		var b strings.Builder
		if r.URL.Query().Has("uploads") {
			b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>arch</Bucket><IsTruncated>false</IsTruncated>`)
			for _, k := range keys {
				fmt.Fprintf(&b, "<Upload><Key>%s</Key><UploadId>u1</UploadId></Upload>", xmlText(k))
			}
			b.WriteString("</ListMultipartUploadsResult>")
		} else {
			b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>arch</Name><IsTruncated>false</IsTruncated>`)
			for _, k := range keys {
				fmt.Fprintf(&b, "<Contents><Key>%s</Key><Size>1</Size></Contents>", xmlText(k))
			}
			b.WriteString("</ListBucketResult>")
		}
		io.WriteString(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 {
			fmt.Fprintf(&b, "&#x%x;", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// pattern is a source of n reproducible bytes, made as they are read, so that a test of memory holds
// none of them.
type pattern struct {
	r    *rand.ChaCha8
	left int64
}

func newPattern(seed byte, n int64) *pattern {
	return &pattern{r: rand.NewChaCha8([32]byte{seed}), left: n}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	p.r.Read(b)
	p.left -= int64(len(b))
	return len(b), nil
}

// TestMemoryBounded: 200 MiB go up and come back through a Store with 5 MiB parts, two at a time,
// while the heap stays within a few parts of where it started: nothing is staged whole, in memory or on
// disk.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB through the server")
	}
	// Not parallel: the heap measured is the process's, and the other tests would share it.
	const size = 200 << 20
	e := newEnv(t, false, &Options{Concurrency: 2})
	bound := uint64(e.store.PartSize()) * uint64(e.store.concurrency+1)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	sample := func() {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}

	f, err := e.store.Create("data/events/huge")
	require.NoError(t, err)
	src, want := newPattern(1, size), sha256.New()
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		n, err := src.Read(buf)
		if err == io.EOF {
			break
		}
		want.Write(buf[:n])
		_, err = f.Write(buf[:n])
		require.NoError(t, err)
		if i%4 == 0 {
			sample()
		}
	}
	require.NoError(t, f.Commit())
	sample()
	upPeak := peak - base

	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak = ms.HeapInuse, ms.HeapInuse
	r, err := e.store.Open("data/events/huge")
	require.NoError(t, err)
	got := sha256.New()
	for i := 0; ; i++ {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if i%64 == 0 {
			sample()
		}
	}
	require.NoError(t, r.Close())
	require.Equal(t, want.Sum(nil), got.Sum(nil))
	downPeak := peak - base

	t.Logf("200 MiB: heap above start at most %.1f MiB uploading (parts %d MiB × %d + 1 = %.0f MiB), %.1f MiB downloading",
		float64(upPeak)/(1<<20), e.store.PartSize()>>20, e.store.concurrency, float64(bound)/(1<<20), float64(downPeak)/(1<<20))
	// The parts' buffers, the one being filled, and what the SDK and the GC's lag add: a fixed few
	// parts, never a share of the file's 200 MiB.
	require.Less(t, upPeak, bound+16<<20, "upload heap")
	require.Less(t, downPeak, uint64(16<<20), "download heap")
}

// loseAnswer sends requests on, but loses the answer to the first one that match accepts, as a
// connection cut after the server acted and before its answer arrived would. With forget, it answers
// the retries of that request NoSuchUpload, as a server that forgets a completed upload at once does
// (versitygw, like AWS, answers a repeated Complete with success).
type loseAnswer struct {
	match  func(*http.Request) bool
	forget bool
	mu     sync.Mutex
	lost   int
}

func (l *loseAnswer) Do(r *http.Request) (*http.Response, error) {
	if l.match(r) && l.forget {
		l.mu.Lock()
		lost := l.lost
		l.mu.Unlock()
		if lost > 0 {
			body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>`
			return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Header: http.Header{"Content-Type": {"application/xml"}},
				Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !l.match(r) {
		return resp, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost > 0 {
		return resp, err
	}
	l.lost++
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("read: connection reset by peer (lost on purpose)")
}

// TestCompleteAnswerLost: a CompleteMultipartUpload that worked but whose answer was lost is retried;
// the server no longer knows the upload, and the object it made is recognised by its checksum.
func TestCompleteAnswerLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	data := randomBytes(12, 2*MinPartSize+10)
	put(t, e.store, "data/events/x", randomBytes(13, 2*MinPartSize+10)) // an older version under the name

	complete := func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Query().Has("uploadId") }
	for _, forget := range []bool{false, true} {
		lose := &loseAnswer{match: complete, forget: forget}
		s := e.open(t, "s3://arch/exports/one", &Options{HTTPClient: lose})
		put(t, s, "data/events/x", data)
		require.Equal(t, 1, lose.lost)
		require.Equal(t, data, get(t, e.store, "data/events/x"))
	}
	s := e.open(t, "s3://arch/exports/one", &Options{HTTPClient: &loseAnswer{match: complete, forget: true}})

	// Had the first Complete not happened, the retry's NoSuchUpload is an error, never taken for success.
	f, err := s.Create("data/events/y")
	require.NoError(t, err)
	writeOdd(t, f, data)
	u := f.(*upload)
	require.NoError(t, u.sendPart())
	u.wg.Wait()
	_, err = e.srv.Client().AbortMultipartUpload(t.Context(), &s3.AbortMultipartUploadInput{Bucket: aws.String(e.bucket), Key: aws.String(u.key), UploadId: aws.String(u.id)})
	require.NoError(t, err)
	require.Error(t, f.Commit())
	require.NoError(t, f.Abort())
}
