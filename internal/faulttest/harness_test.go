package faulttest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/clitest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/segmenttest"
)

// sourceDateEpoch and processDeadline: see clitest.
const (
	sourceDateEpoch = clitest.SourceDateEpoch
	processDeadline = clitest.ProcessDeadline
)

// srcContext is the context the test servers are loaded into.
const srcContext = "default"

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	clitest.Cleanup()
	os.Exit(code)
}

// buildBinary returns cmd/axarchive built with the given build tags ("" for the plain program).
func buildBinary(t testing.TB, tags string) string { return clitest.Build(t, tags) }

// plain is the program as shipped.
func plain(t testing.TB) string { return buildBinary(t, "") }

// faulty is the program built with -tags faultinject: AXARCHIVE_CRASH_AT=name:N kills it with SIGKILL at
// the Nth time it reaches the crash point name (see internal/crashpoint).
func faulty(t testing.TB) string { return buildBinary(t, "faultinject") }

// long skips a test of the full set unless it was asked for (-run Long, or AXARCHIVE_LONG=1).
func long(t *testing.T) {
	t.Helper()
	if os.Getenv("AXARCHIVE_LONG") != "" {
		return
	}
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "Long") {
		return
	}
	t.Skip("part of the full set: go test ./internal/faulttest -run Long (or AXARCHIVE_LONG=1)")
}

// testSeed returns the seed of a test's random choices: $AXARCHIVE_SEED, or a new one. It is logged, so
// that a failure can be reproduced.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	var seed uint64
	if s := os.Getenv("AXARCHIVE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "AXARCHIVE_SEED")
		seed = v
	} else {
		seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	t.Logf("seed %d (reproduce with AXARCHIVE_SEED=%d go test ./internal/faulttest -run '^%s$')", seed, seed, t.Name())
	return seed
}

func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// --- processes (clitest) ---

type (
	proc   = clitest.Proc
	result = clitest.Result
)

// start runs bin in the background; the test ends it (SIGKILL) if it is still running at cleanup.
func start(t testing.TB, bin string, env []string, args ...string) *proc {
	t.Helper()
	return clitest.Start(t, bin, env, args...)
}

// run runs bin to its end.
func run(t testing.TB, bin string, env []string, args ...string) *result {
	t.Helper()
	return clitest.Run(t, bin, env, args...)
}

// requireCode fails the test unless r ended with exit status code.
func requireCode(t testing.TB, r *result, code int) {
	t.Helper()
	clitest.RequireCode(t, r, code)
}

// --- sources ---

// newServer starts the double with n generated events and their aggregates' snapshots in srcContext.
func newServer(t testing.TB, n int, seed uint64, opts ...axontest.Option) *axontest.Server {
	t.Helper()
	srv := axontest.NewServer(t, opts...)
	gen := eventgen.New(seed, eventgen.Options{Aggregates: 300})
	require.NoError(t, srv.Load(srcContext, gen.Generate(n)))
	require.NoError(t, srv.LoadSnapshots(srcContext, gen.Snapshots()))
	return srv
}

// newSegments writes a segment store of n generated events (several events per block, several files) and
// their snapshots, and returns its directory.
func newSegments(t testing.TB, n int, seed uint64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "segments", srcContext)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	gen := eventgen.New(seed, eventgen.Options{Aggregates: 300})
	events := gen.Generate(n)
	snaps := gen.Snapshots()
	_, err := segmenttest.WriteStore(dir, segmenttest.StoreOptions{
		Entries: int64(n), PerBlock: 7, SegmentSize: 1 << 20,
		Event: func(dst []byte, token int64) []byte { return append(dst, events[token]...) },
	})
	require.NoError(t, err)
	_, err = segmenttest.WriteStore(dir, segmenttest.StoreOptions{
		Suffix: segmenttest.Snapshots, Entries: int64(len(snaps)), SegmentSize: 1 << 20,
		Event: func(dst []byte, pos int64) []byte { return append(dst, snaps[pos]...) },
	})
	require.NoError(t, err)
	return dir
}

// --- archives ---

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func journalPath(dir string) string  { return filepath.Join(dir, "journal.json") }
func manifestPath(dir string) string { return filepath.Join(dir, "data", "manifest.json") }

// journalChunks returns how many chunks the journal of an incomplete archive lists (-1 without a
// journal that can be read).
func journalChunks(dir string) int {
	b, err := os.ReadFile(journalPath(dir))
	if err != nil {
		return -1
	}
	var j struct {
		Chunks []json.RawMessage `json:"chunks"`
	}
	if json.Unmarshal(b, &j) != nil {
		return -1
	}
	return len(j.Chunks)
}

// tmpFiles lists the *.tmp files under dir.
func tmpFiles(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// requireIncomplete checks what every interrupted export must leave: a journal, so that --resume can
// continue it, and commands that refuse the directory as incomplete (exit 3) rather than read it.
func requireIncomplete(t testing.TB, dir string) {
	t.Helper()
	require.FileExists(t, journalPath(dir), "an interrupted export leaves its journal")
	r := run(t, plain(t), nil, "verify", dir)
	requireCode(t, r, 3)
	require.Contains(t, r.Stderr, "incomplete archive", r)
	r = run(t, plain(t), nil, "cat", dir)
	requireCode(t, r, 3)
	require.Empty(t, r.Stdout, "cat prints nothing of an incomplete archive")
}

// requireUsable checks the state a killed export left: either incomplete (journal) or complete (manifest,
// no journal, and valid). Anything else is a directory no command can continue.
func requireUsable(t testing.TB, dir string) (complete bool) {
	t.Helper()
	switch {
	case exists(journalPath(dir)):
		requireIncomplete(t, dir)
		return false
	case exists(manifestPath(dir)):
		requireCode(t, run(t, plain(t), nil, "verify", dir), 0)
		return true
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Fatalf("%s holds neither a journal nor a manifest (%v): neither export nor export --resume can use it", dir, names)
	return false
}

// catDigests caches catDigest of reference archives, which never change.
var catDigests sync.Map // "dir\x00snapshots" -> catResult

type catResult struct {
	sum   string
	lines int
}

// catDigest returns the SHA-256 of `axarchive cat` of a stream of dir, and the number of lines.
func catDigest(t testing.TB, dir string, snapshots bool) (string, int) {
	t.Helper()
	key := fmt.Sprintf("%s\x00%v", dir, snapshots)
	if v, ok := catDigests.Load(key); ok {
		return v.(catResult).sum, v.(catResult).lines
	}
	sum, lines := catDigestRun(t, dir, snapshots)
	if strings.HasSuffix(dir, string(filepath.Separator)+"reference") {
		catDigests.Store(key, catResult{sum, lines})
	}
	return sum, lines
}

func catDigestRun(t testing.TB, dir string, snapshots bool) (string, int) {
	t.Helper()
	args := []string{"cat", dir}
	if snapshots {
		args = []string{"cat", "--snapshots", dir}
	}
	r := run(t, plain(t), nil, args...)
	requireCode(t, r, 0)
	sum := sha256.Sum256([]byte(r.Stdout))
	return hex.EncodeToString(sum[:]), strings.Count(r.Stdout, "\n")
}

// requireSameArchive checks that got is complete and equal to want, an uninterrupted export of the same
// source: the same JSON Lines (axarchive cat of both streams), the same fingerprint and chunk table (the
// manifests are byte-identical, SOURCE_DATE_EPOCH being fixed), and valid by a full verify.
func requireSameArchive(t testing.TB, got, want string) {
	t.Helper()
	require.NoFileExists(t, journalPath(got))
	require.Empty(t, tmpFiles(got), "temporary files left in the finished archive")
	requireCode(t, run(t, plain(t), nil, "verify", got), 0)
	for _, snaps := range []bool{false, true} {
		g, gn := catDigest(t, got, snaps)
		w, wn := catDigest(t, want, snaps)
		require.Equal(t, wn, gn, "records (snapshots: %v)", snaps)
		require.Equal(t, w, g, "JSON Lines (snapshots: %v)", snaps)
	}
	gm, err := os.ReadFile(manifestPath(got))
	require.NoError(t, err)
	wm, err := os.ReadFile(manifestPath(want))
	require.NoError(t, err)
	require.Equal(t, string(wm), string(gm), "manifest (fingerprint, chunk table) of the resumed export")
	for _, f := range []string{"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"} {
		g, err := os.ReadFile(filepath.Join(got, f))
		require.NoError(t, err)
		w, err := os.ReadFile(filepath.Join(want, f))
		require.NoError(t, err)
		require.Equal(t, string(w), string(g), f)
	}
}

// exportJob is one export command: the arguments without -o and --resume.
type exportJob struct {
	args []string
	ref  string // an uninterrupted run's archive
}

func (j *exportJob) cmd(dir string, resume bool) []string {
	args := append([]string{"export", "-o", dir}, j.args...)
	if resume {
		args = append(args, "--resume")
	}
	return args
}

// liveJob is an export of srv's srcContext; offlineJob one of a segment store.
func liveJob(t testing.TB, srv *axontest.Server, extra ...string) *exportJob {
	t.Helper()
	j := &exportJob{args: append([]string{"--server", srv.Addr(), "--context", srcContext, "--chunk-records", "300"}, extra...)}
	j.reference(t)
	return j
}

func offlineJob(t testing.TB, segments string, extra ...string) *exportJob {
	t.Helper()
	j := &exportJob{args: append([]string{"--segments", segments, "--chunk-records", "300"}, extra...)}
	j.reference(t)
	return j
}

// reference makes the uninterrupted run everything else is compared with.
func (j *exportJob) reference(t testing.TB) {
	t.Helper()
	j.ref = filepath.Join(t.TempDir(), "reference")
	requireCode(t, run(t, plain(t), nil, j.cmd(j.ref, false)...), 0)
}

// refDuration times an uninterrupted run, to spread random kill points over it.
func (j *exportJob) refDuration(t testing.TB) time.Duration {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "timed")
	r := run(t, plain(t), nil, j.cmd(dir, false)...)
	requireCode(t, r, 0)
	return r.Elapsed
}

// finish runs the export with --resume to its end and compares the result with the reference.
func (j *exportJob) finish(t testing.TB, dir string) {
	t.Helper()
	r := run(t, plain(t), nil, j.cmd(dir, true)...)
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "exported ", r)
	requireSameArchive(t, dir, j.ref)
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
