package faulttest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/cutproxy"
	"github.com/axarchive/axarchive/internal/s3store"
	"github.com/axarchive/axarchive/internal/s3test"
)

// Archives in object storage (issue 19), against a real S3 server (versitygw on loopback): the same
// archive as in a directory, every command reading it, Object Lock, and the faults an export meets.

// bucketEnv is one versitygw with a bucket, and the environment that lets axarchive reach it the way a
// user's would: the standard AWS variables, no secret on the command line.
type bucketEnv struct {
	srv    *s3test.Server
	bucket string
	env    []string
}

func newBucket(t testing.TB, lock bool) *bucketEnv {
	t.Helper()
	srv := s3test.Start(t)
	b := &bucketEnv{srv: srv, bucket: "archives"}
	srv.CreateBucket(t, b.bucket, lock)
	b.env = []string{
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_REGION=" + s3test.Region, "AWS_ENDPOINT_URL=" + srv.Endpoint, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
	}
	return b
}

func (b *bucketEnv) url(prefix string) string { return "s3://" + b.bucket + "/" + prefix }

// store opens the test's own view of an archive's prefix.
func (b *bucketEnv) store(t testing.TB, prefix string) *s3store.Store {
	t.Helper()
	st, err := s3store.New(context.Background(), b.url(prefix), &s3store.Options{
		Endpoint: b.srv.Endpoint, PathStyle: true, Region: s3test.Region, Credentials: b.srv.Credentials(),
	})
	require.NoError(t, err)
	return st
}

// run runs axarchive with the bucket's environment; the S3 flags go right after the command name.
func (b *bucketEnv) run(t testing.TB, args ...string) *result {
	t.Helper()
	return run(t, plain(t), b.env, b.args(args)...)
}

func (b *bucketEnv) args(args []string) []string {
	return append([]string{args[0], "--s3-path-style"}, args[1:]...)
}

// names lists the objects under prefix.
func (b *bucketEnv) names(t testing.TB, prefix string) []string {
	t.Helper()
	entries, err := b.store(t, prefix).List("")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out
}

// download copies the archive under prefix into a new local directory, as aws s3 sync would.
func (b *bucketEnv) download(t testing.TB, prefix string) string {
	t.Helper()
	st := b.store(t, prefix)
	dir := filepath.Join(t.TempDir(), "downloaded")
	for _, name := range b.names(t, prefix) {
		r, err := st.Open(name)
		require.NoError(t, err)
		data, err := io.ReadAll(r)
		r.Close()
		require.NoError(t, err)
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	for _, d := range []string{"data/events", "data/snapshots"} { // empty streams have no objects
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	return dir
}

// localFiles lists the files of a local archive, slash-separated.
func localFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	}))
	slices.Sort(out)
	return out
}

// requireSameInBucket checks that the archive under prefix is complete and equal to the local reference
// export ref: exactly the reference's files (no stray object), no unfinished upload, byte-identical
// manifests and BagIt files, the same records, valid by verify in the bucket and by sha256sum -c of a
// downloaded copy.
func (b *bucketEnv) requireSameInBucket(t testing.TB, prefix, ref string) {
	t.Helper()
	require.Equal(t, localFiles(t, ref), b.names(t, prefix), "the objects are the reference's files, no more")
	n, err := b.store(t, prefix).AbortUploads(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "unfinished multipart uploads left behind")
	r := b.run(t, "verify", b.url(prefix))
	requireCode(t, r, 0)
	local := b.download(t, prefix)
	requireSameArchive(t, local, ref)
	sum := exec.Command("sha256sum", "--quiet", "-c", "manifest-sha256.txt")
	sum.Dir = local
	out, err := sum.CombinedOutput()
	require.NoError(t, err, "sha256sum -c of the downloaded bag: %s", out)
}

// TestS3RoundTrip: export to s3://, then verify, inspect, cat, import and diff read it there; it is the
// archive a local export writes, and a downloaded copy passes sha256sum -c.
func TestS3RoundTrip(t *testing.T) {
	b := newBucket(t, false)
	job := offlineJob(t, newSegments(t, 3000, 21))
	r := b.run(t, job.cmd(b.url("ctx/full"), false)...)
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "to s3://archives/ctx/full", r)
	b.requireSameInBucket(t, "ctx/full", job.ref)

	r = b.run(t, "inspect", b.url("ctx/full"))
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "fingerprint", r)
	for _, snaps := range []bool{false, true} {
		args := []string{"cat", b.url("ctx/full")}
		if snaps {
			args = []string{"cat", "--snapshots", b.url("ctx/full")}
		}
		r = b.run(t, args...)
		requireCode(t, r, 0)
		want, _ := catDigest(t, job.ref, snaps)
		require.Equal(t, want, hexSum([]byte(r.Stdout)), "cat (snapshots %v) of the bucket's archive", snaps)
	}

	// An incremental export continues the one in the bucket (--since s3://).
	r = b.run(t, "export", "-o", b.url("ctx/next"), "--since", b.url("ctx/full"), "--allow-empty", "--segments", job.args[1])
	requireCode(t, r, 0)

	srv := newServer(t, 0, 22)
	r = b.run(t, "import", "--server", srv.Addr(), "--context", "restored", b.url("ctx/full"), b.url("ctx/next"))
	requireCode(t, r, 0)
	r = b.run(t, "diff", "--server", srv.Addr(), "--context", "restored", b.url("ctx/full"), b.url("ctx/next"))
	requireCode(t, r, 0)

	r = b.run(t, "import", "--segments", filepath.Join(t.TempDir(), "segs"), b.url("ctx/full"))
	requireCode(t, r, 0)
}

func hexSum(b []byte) string {
	return strings.ToLower(strings.TrimSpace(hexString(sha256Sum(b))))
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestS3EncryptedSigned: an encrypted, signed archive in a bucket verifies with --identity and
// --allowed-signers there, and its downloaded copy passes sha256sum -c.
func TestS3EncryptedSigned(t *testing.T) {
	b := newBucket(t, false)
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "archivist", "-f", key).CombinedOutput()
	require.NoError(t, err, "%s", out)
	pub, err := os.ReadFile(key + ".pub")
	require.NoError(t, err)
	signers := filepath.Join(dir, "allowed_signers")
	require.NoError(t, os.WriteFile(signers, []byte(`archivist namespaces="axarchive" `+string(pub)), 0o644))

	job := offlineJob(t, newSegments(t, 2000, 23), "--recipient", strings.TrimSpace(string(pub)), "--sign-key", key)
	r := b.run(t, job.cmd(b.url("sealed"), false)...)
	requireCode(t, r, 0)
	r = b.run(t, "verify", "--identity", key, "--allowed-signers", signers, b.url("sealed"))
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "signed by archivist", r)
	local := b.download(t, "sealed")
	sum := exec.Command("sha256sum", "--quiet", "-c", "manifest-sha256.txt")
	sum.Dir = local
	out, err = sum.CombinedOutput()
	require.NoError(t, err, "sha256sum -c: %s", out)
	require.Equal(t, localFiles(t, job.ref), b.names(t, "sealed"))

	// axarchive sign signs an archive already in the bucket.
	r = b.run(t, "export", "-o", b.url("later"), "--segments", job.args[1])
	requireCode(t, r, 0)
	r = b.run(t, "sign", "--sign-key", key, b.url("later"))
	requireCode(t, r, 0)
	r = b.run(t, "verify", "--quick", "--allowed-signers", signers, b.url("later"))
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "signed by archivist", r)
}

// TestS3Retention: --retain-until puts retention on every object once the archive is complete; verify
// and inspect report it; a version cannot be deleted; a part left unprotected is warned about.
func TestS3Retention(t *testing.T) {
	b := newBucket(t, true)
	job := offlineJob(t, newSegments(t, 1000, 24))
	until := time.Now().Add(48 * time.Hour).UTC().Format(time.DateOnly)
	r := b.run(t, append(job.cmd(b.url("kept"), false), "--retain-until", until, "--retention-mode", "governance")...)
	requireCode(t, r, 0)
	require.Regexp(t, `retained \d+ objects: governance retention until `+until, r.Stdout)
	names := b.names(t, "kept")
	require.Equal(t, localFiles(t, job.ref), names)

	r = b.run(t, "inspect", b.url("kept"))
	requireCode(t, r, 0)
	require.Regexp(t, `object lock\s+\d+ of \d+ objects protected, retained until `+until, r.Stdout)
	require.NotContains(t, r.Stderr, "warning", r)
	r = b.run(t, "verify", b.url("kept"))
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "Object Lock: ", r)

	// The bucket refuses to delete a retained version.
	ctx := context.Background()
	key := aws.String("kept/" + names[0])
	head, err := b.srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: key})
	require.NoError(t, err)
	_, err = b.srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: key, VersionId: head.VersionId})
	require.Error(t, err, "deleting a retained version")

	// A legal hold alone, without a date.
	r = b.run(t, append(job.cmd(b.url("held"), false), "--legal-hold")...)
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "objects: legal hold", r)
	r = b.run(t, "inspect", b.url("held"))
	requireCode(t, r, 0)
	require.Regexp(t, `object lock\s+\d+ of \d+ objects under legal hold, no retention date`, r.Stdout)

	// A file replaced behind the export's back is a new, unretained version: verify warns.
	_, err = b.srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String("kept/bagit.txt"), Body: strings.NewReader("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")})
	require.NoError(t, err)
	r = b.run(t, "verify", "--quick", b.url("kept"))
	require.Contains(t, r.Stderr, "axarchive: warning: "+b.url("kept")+": 1 of", r)
	require.Contains(t, r.Stderr, "bagit.txt", r)

	// Replaced again, retained but for a shorter time than the rest: inspect and verify both warn.
	_, err = b.srv.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String("kept/bagit.txt"), Body: strings.NewReader("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"),
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(time.Now().Add(24 * time.Hour)),
	})
	require.NoError(t, err)
	for _, cmd := range [][]string{{"inspect", b.url("kept")}, {"verify", "--quick", b.url("kept")}} {
		r = b.run(t, cmd...)
		requireCode(t, r, 0)
		require.Regexp(t, `(?m)^axarchive: warning: `+regexp.QuoteMeta(b.url("kept"))+`: 1 object loses its retention before `+until+`T[^:]+:[^:]+:[^:]+: bagit.txt$`, r.Stderr, cmd[0])
		require.NotContains(t, r.Stderr, "not protected", cmd[0])
	}
}

// TestS3RetentionRefused: retention asked into a bucket without Object Lock is refused before any object
// is written; so is an export into a prefix that holds something else.
func TestS3RetentionRefused(t *testing.T) {
	b := newBucket(t, false)
	segs := newSegments(t, 300, 25)
	until := time.Now().Add(48 * time.Hour).UTC().Format(time.DateOnly)
	r := b.run(t, "export", "-o", b.url("x"), "--segments", segs, "--retain-until", until)
	requireCode(t, r, 1)
	require.Contains(t, r.Stderr, "Object Lock", r)
	require.Empty(t, b.names(t, ""), "nothing written")

	_, err := b.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String("busy/notes.txt"), Body: strings.NewReader("mine\n")})
	require.NoError(t, err)
	r = b.run(t, "export", "-o", b.url("busy"), "--segments", segs)
	requireCode(t, r, 1)
	require.Contains(t, r.Stderr, "not empty", r)
	require.Equal(t, []string{"notes.txt"}, b.names(t, "busy"))
}

// waitForJournal polls until the export under prefix has a journal, or p ends.
func (b *bucketEnv) waitForJournal(t testing.TB, p *proc, prefix string) bool {
	st := b.store(t, prefix)
	for {
		if _, err := st.Stat("journal.json"); err == nil {
			return true
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Logf("stat journal: %v", err)
		}
		select {
		case <-p.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestS3ExportCrashPoints: an export to a bucket killed (SIGKILL) at each point of the commit protocol,
// a chunk uploaded but not journaled among them, is completed by --resume into the reference archive,
// with no stray object and no unfinished upload.
func TestS3ExportCrashPoints(t *testing.T) {
	b := newBucket(t, false)
	job := offlineJob(t, newSegments(t, 3000, 28))
	for _, at := range []string{"event:750", "chunk-renamed:2", "journal.json:4", "snapshot:40", "data/manifest.json:1", "tagmanifest-sha256.txt:1", "journal-remove:1"} {
		t.Run(strings.NewReplacer("/", "-", ":", "-").Replace(at), func(t *testing.T) {
			prefix := "crash/" + strings.NewReplacer("/", "-", ":", "-").Replace(at)
			r := run(t, faulty(t), append([]string{"AXARCHIVE_CRASH_AT=" + at}, b.env...), b.args(job.cmd(b.url(prefix), false))...)
			require.Equal(t, syscall.SIGKILL, r.Signal, "crash point %s not reached:\n%s", at, r)
			require.Contains(t, b.names(t, prefix), "journal.json")
			r = b.run(t, "verify", b.url(prefix))
			requireCode(t, r, 3)
			require.Contains(t, r.Stderr, "incomplete", r)
			r = b.run(t, job.cmd(b.url(prefix), true)...)
			requireCode(t, r, 0)
			b.requireSameInBucket(t, prefix, job.ref)
		})
	}
}

// TestS3ExportSIGKILL: an export to a bucket killed with SIGKILL at random moments and resumed each time
// ends with the reference archive, no stray object and no unfinished upload.
func TestS3ExportSIGKILL(t *testing.T) {
	b := newBucket(t, false)
	seed := testSeed(t)
	rnd := newRand(seed, 26)
	job := offlineJob(t, newSegments(t, 30000, 27))
	window := job.refDuration(t)
	resume := false
	for i := range 3 {
		p := start(t, plain(t), b.env, b.args(job.cmd(b.url("k"), resume))...)
		if !b.waitForJournal(t, p, "k") {
			break
		}
		delay := time.Duration(rnd.Int64N(int64(window)))
		select {
		case <-time.After(delay):
		case <-p.Done():
		}
		p.Signal(syscall.SIGKILL)
		res := p.Wait(processDeadline)
		t.Logf("kill %d at +%s: signal %v, %d objects", i+1, delay.Round(time.Millisecond), res.Signal, len(b.names(t, "k")))
		if res.Signal == 0 {
			requireCode(t, res, 0)
			break
		}
		resume = true
	}
	r := b.run(t, job.cmd(b.url("k"), true)...)
	if r.Code != 0 {
		require.Contains(t, r.Stderr, "complete", r) // the last run had finished
	}
	b.requireSameInBucket(t, "k", job.ref)
}

// TestS3ExportConnectionCut: connections between axarchive and the server cut (RST) in the middle of
// uploads; the export retries and finishes, or stops resumable and --resume finishes it, with the
// reference archive and nothing stray.
func TestS3ExportConnectionCut(t *testing.T) {
	b := newBucket(t, false)
	job := offlineJob(t, newSegments(t, 20000, 29))
	p := cutproxy.New(t, b.srv.Addr())
	for _, n := range []int64{40 << 10, 300 << 10, 700 << 10, 1 << 20, 1<<20 + 12345} {
		p.CutAfter(cutproxy.Up, n)
	}
	via := append(job.cmd(b.url("cut"), false), "--s3-endpoint", "http://"+p.Addr())
	r := b.run(t, via...)
	t.Logf("%d connections cut; %s", p.Cuts(), r)
	require.NotZero(t, p.Cuts())
	if r.Code != 0 {
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "--resume", r)
		requireCode(t, b.run(t, append(via, "--resume")...), 0)
	}
	b.requireSameInBucket(t, "cut", job.ref)
}

// TestS3ExportServerRestart: the S3 server stopped mid-export and started again a moment later; the
// export rides it out with retries, or stops resumable and --resume finishes it.
func TestS3ExportServerRestart(t *testing.T) {
	b := newBucket(t, false)
	job := offlineJob(t, newSegments(t, 30000, 30))
	p := start(t, plain(t), b.env, b.args(job.cmd(b.url("restart"), false))...)
	require.True(t, b.waitForJournal(t, p, "restart"), "the export wrote its journal")
	b.srv.Stop()
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, b.srv.Restart())
	r := p.Wait(processDeadline)
	t.Logf("%s", r)
	if r.Code != 0 {
		requireCode(t, r, 1)
		requireCode(t, b.run(t, job.cmd(b.url("restart"), true)...), 0)
	}
	b.requireSameInBucket(t, "restart", job.ref)
}

// TestS3ExportServerDown: the S3 server gone for longer than the retries last; the export stops with
// exit 1 and the way on, leaves what it committed, and --resume finishes it once the server is back.
func TestS3ExportServerDown(t *testing.T) {
	b := newBucket(t, false)
	job := offlineJob(t, newSegments(t, 30000, 31))
	p := start(t, plain(t), b.env, b.args(job.cmd(b.url("down"), false))...)
	require.True(t, b.waitForJournal(t, p, "down"), "the export wrote its journal")
	b.srv.Stop()
	r := p.Wait(processDeadline)
	requireCode(t, r, 1)
	require.Regexp(t, `(?m)^axarchive: error: export stopped before token \d+`, r.Stderr)
	require.Regexp(t, `(?m)^axarchive: hint: run the same command with --resume`, r.Stderr)
	require.NoError(t, b.srv.Restart())
	requireCode(t, b.run(t, job.cmd(b.url("down"), true)...), 0)
	b.requireSameInBucket(t, "down", job.ref)
}

// TestS3ExportServerDownAtCreate: the S3 server takes the export's first journal and is gone before its
// reply arrives. The export cannot know whether it started, so it stops resumable, and --resume
// finishes it once the server is back.
func TestS3ExportServerDownAtCreate(t *testing.T) {
	b := newBucket(t, false)
	job := offlineJob(t, newSegments(t, 2000, 32))
	proxy := goneAfter(t, b.srv.Addr(), func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/journal.json")
	})
	via := append(job.cmd(b.url("down-at-create"), false), "--s3-endpoint", "http://"+proxy)
	r := b.run(t, via...)
	requireCode(t, r, 1)
	require.Contains(t, b.names(t, "down-at-create"), "journal.json", "the server took the journal")
	require.Regexp(t, `(?m)^axarchive: error: export stopped before token 0 \(0 events committed in s3://archives/down-at-create\): create archive`, r.Stderr)
	require.Regexp(t, `(?m)^axarchive: hint: run the same command with --resume`, r.Stderr)
	requireCode(t, b.run(t, job.cmd(b.url("down-at-create"), true)...), 0)
	b.requireSameInBucket(t, "down-at-create", job.ref)
}

// goneAfter starts an HTTP proxy to target that forwards requests until one matches last: it forwards
// that one too, then stops listening and drops the connection without a reply, as a server that
// crashed right after committing a request would.
func goneAfter(t testing.TB, target string, last func(*http.Request) bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	var gone atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() {
			panic(http.ErrAbortHandler)
		}
		if !last(r) {
			rp.ServeHTTP(w, r)
			return
		}
		gone.Store(true)
		_ = l.Close()
		rp.ServeHTTP(discardReply{}, r)
		panic(http.ErrAbortHandler) // the connection closes with no reply
	})}
	srv.SetKeepAlivesEnabled(false) // no idle connection outlives the crash
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

type discardReply struct{}

func (discardReply) Header() http.Header         { return http.Header{} }
func (discardReply) Write(p []byte) (int, error) { return len(p), nil }
func (discardReply) WriteHeader(int)             {}

// TestS3ExportDamagedSegments: an offline export into a bucket that meets damaged segment files after it
// started leaves no object behind (as it leaves no directory), and says so.
func TestS3ExportDamagedSegments(t *testing.T) {
	b := newBucket(t, false)
	dir := writeHostileStore(t, hostileSegments()[0], false)
	r := b.run(t, "export", "--segments", dir, "-o", b.url("damaged"))
	requireCode(t, r, 3)
	require.Contains(t, r.Stderr, b.url("damaged")+", which this run created, was removed", r)
	require.Empty(t, b.names(t, "damaged"))
}
