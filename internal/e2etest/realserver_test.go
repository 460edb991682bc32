package e2etest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/clitest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/realserver"
)

// Package e2etest runs the axarchive binary end to end against the real Axon Server SE
// (internal/realserver); it has a test binary of its own because its servers take minutes on a busy
// machine.
//
// The real Axon Server SE end to end, through the axarchive binary: what the double stands in for
// everywhere else must hold against the real thing. Two real servers: the shared one (empty when this
// binary first uses it) and a fresh one with access control, which also takes the kill -9 of axarchive and
// the server restart in the middle of an import.

// accessToken and adminToken of the access-control server; SE will not start with access control and no
// admin token.
const (
	accessToken = "e2e-app-token"
	adminToken  = "e2e-admin-token"
)

var accessProps = []string{"axoniq.axonserver.accesscontrol.enabled=true",
	"axoniq.axonserver.accesscontrol.token=" + accessToken, "axoniq.axonserver.accesscontrol.admin-token=" + adminToken}

// realHead returns the last token of a real server's default context.
func realHead(t testing.TB, s *realserver.Server, token string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: s.Addr(), Token: token})
	require.NoError(t, err)
	defer conn.Close()
	h, err := conn.LastToken(ctx)
	require.NoError(t, err)
	return h
}

// e2eSource is the double holding what the real servers get: every edge value of eventgen.EdgeCases and
// EdgeSnapshots, generated events and snapshots, and an event and a snapshot of exactly the 4 MiB message
// limit (the snapshot as it is sent: with the snapshot flag the server adds when serving it, two bytes).
func e2eSource(t testing.TB) *axontest.Server {
	t.Helper()
	srv := axontest.NewServer(t)
	require.NoError(t, srv.Load("default", eventgen.EdgeCases()))
	gen := eventgen.New(41, eventgen.Options{Aggregates: 200})
	require.NoError(t, srv.Load("default", gen.Generate(3000)))
	var big [][]byte
	for i, size := range []int{axontest.DefaultMaxMessageSize, axontest.DefaultMaxMessageSize - 1, 1 << 20} {
		big = append(big, sized(t, eventgen.Event{MessageID: "big", AggregateID: "big-1", AggregateSequence: int64(i),
			AggregateType: "Blob", PayloadType: "blob"}, size))
	}
	require.NoError(t, srv.Load("default", big))
	require.NoError(t, srv.LoadSnapshots("default", eventgen.EdgeSnapshots()))
	require.NoError(t, srv.LoadSnapshots("default", gen.Snapshots()))
	require.NoError(t, srv.LoadSnapshots("default", [][]byte{sized(t, eventgen.Event{MessageID: "big-snap", AggregateID: "big-1",
		AggregateSequence: 2, AggregateType: "Blob", PayloadType: "blob"}, axontest.DefaultMaxMessageSize-2)}))
	return srv
}

// sized returns e encoded with a payload that makes it exactly size bytes.
func sized(t testing.TB, e eventgen.Event, size int) []byte {
	t.Helper()
	n := size - 100
	for {
		e.PayloadData = bytes.Repeat([]byte{0x5a}, n)
		b := eventgen.Encode(&e)
		if len(b) == size {
			return b
		}
		require.Less(t, len(b), size)
		n++
	}
}

// requireSameContent checks that two archives hold the same events and snapshots: the same JSON Lines
// (axarchive cat of both streams) and the same fingerprint and stream digests. Their sources differ.
func requireSameContent(t testing.TB, got, want string) {
	t.Helper()
	clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "verify", got), 0)
	for _, snaps := range []bool{false, true} {
		g, gn := catDigest(t, got, snaps)
		w, wn := catDigest(t, want, snaps)
		require.Equal(t, wn, gn, "records (snapshots: %v)", snaps)
		require.Equal(t, w, g, "JSON Lines (snapshots: %v)", snaps)
	}
	gm, wm := readManifest(t, got), readManifest(t, want)
	require.Equal(t, wm.Fingerprint, gm.Fingerprint, "fingerprint")
	require.Equal(t, wm.Events.SHA256, gm.Events.SHA256)
	require.Equal(t, wm.Snapshots.SHA256, gm.Snapshots.SHA256)
}

// requireSameOffline checks an offline export against a live one of the same store: the same events (JSON
// Lines and digest) and the same snapshots, each aggregate's in the same order. The snapshot streams'
// order across aggregates and their positions differ by design: offline they are in store order, while
// over gRPC snapshots can only be listed per aggregate (AXON.md 2.6).
func requireSameOffline(t testing.TB, offline, live string) {
	t.Helper()
	clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "verify", offline), 0)
	g, gn := catDigest(t, offline, false)
	w, wn := catDigest(t, live, false)
	require.Equal(t, wn, gn, "events")
	require.Equal(t, w, g, "events' JSON Lines")
	require.Equal(t, readManifest(t, live).Events.SHA256, readManifest(t, offline).Events.SHA256)
	require.Equal(t, snapshotsByAggregate(t, live), snapshotsByAggregate(t, offline), "snapshots per aggregate")
}

// snapshotsByAggregate returns an archive's snapshot records without their positions, per aggregate, in
// stream order.
func snapshotsByAggregate(t testing.TB, dir string) map[string][]string {
	t.Helper()
	r := clitest.Run(t, clitest.Plain(t), nil, "cat", "--snapshots", dir)
	clitest.RequireCode(t, r, 0)
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		delete(rec, "position")
		b, err := json.Marshal(rec)
		require.NoError(t, err)
		id, _ := rec["aggregateId"].(string)
		out[id] = append(out[id], string(b))
	}
	return out
}

// prefixed gives the aggregates of events (or snapshots) ids that start with prefix.
func prefixed(t testing.TB, prefix string, events [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(events))
	for i, b := range events {
		var r archive.Record
		require.NoError(t, codec.Decode(b, &r))
		if r.AggregateID != "" {
			r.AggregateID = prefix + r.AggregateID
		}
		out[i] = codec.Encode(nil, &r)
	}
	return out
}

func readManifest(t testing.TB, dir string) *manifest.Manifest {
	t.Helper()
	b, err := os.ReadFile(manifestPath(dir))
	require.NoError(t, err)
	var m manifest.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	return &m
}

func TestMain(m *testing.M) {
	// The servers start while the binary is built and the source prepared.
	realserver.Warm()
	realserver.WarmFresh(accessProps...)
	code := realserver.Main(m)
	clitest.Cleanup()
	os.Exit(code)
}

func manifestPath(dir string) string { return filepath.Join(dir, "data", "manifest.json") }

// catDigest returns the SHA-256 of `axarchive cat` of a stream of dir, and the number of lines.
func catDigest(t testing.TB, dir string, snapshots bool) (string, int) {
	t.Helper()
	args := []string{"cat", dir}
	if snapshots {
		args = []string{"cat", "--snapshots", dir}
	}
	r := clitest.Run(t, clitest.Plain(t), nil, args...)
	clitest.RequireCode(t, r, 0)
	sum := sha256.Sum256([]byte(r.Stdout))
	return hex.EncodeToString(sum[:]), strings.Count(r.Stdout, "\n")
}

func TestRealServer(t *testing.T) {
	realserver.Require(t)
	started := time.Now()
	src := e2eSource(t)
	base := t.TempDir() // the archives the subtests share
	a0 := filepath.Join(base, "source")
	clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "export", "--server", src.Addr(), "-o", a0), 0)

	r1 := realserver.Shared(t)
	if realHead(t, r1, "") != -1 {
		r1 = realserver.Fresh(t)
	}
	t.Logf("real server ready after %s", time.Since(started).Round(time.Second))
	var a1 string
	t.Run("import-export-byte-identical", func(t *testing.T) {
		r := clitest.Run(t, clitest.Plain(t), nil, "import", "--server", r1.Addr(), a0)
		clitest.RequireCode(t, r, 0)
		require.Contains(t, r.Stdout, "target equals archive", r)
		a1 = filepath.Join(base, "live")
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "export", "--server", r1.Addr(), "-o", a1), 0)
		requireSameContent(t, a1, a0)
	})
	require.NotEmpty(t, a1)

	t.Run("offline-copy-while-running", func(t *testing.T) {
		cp := filepath.Join(t.TempDir(), "copy")
		out, err := exec.Command("cp", "-r", r1.ContextDir("default"), cp).CombinedOutput()
		require.NoError(t, err, "%s", out)
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "segments", cp), 0)
		off := filepath.Join(t.TempDir(), "offline")
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "export", "--segments", cp, "-o", off), 0)
		requireSameOffline(t, off, a1)
	})
	t.Run("snapshots-latest-none", func(t *testing.T) {
		all := readManifest(t, a1)
		for _, mode := range []string{"latest", "none"} {
			dir := filepath.Join(t.TempDir(), mode)
			clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "export", "--server", r1.Addr(), "--snapshots", mode, "-o", dir), 0)
			m := readManifest(t, dir)
			assert.Equal(t, all.Events.SHA256, m.Events.SHA256, "%s: the events are all there", mode)
			assert.Equal(t, mode, m.Snapshots.Mode)
			if mode == "none" {
				assert.Zero(t, m.Snapshots.Count)
			} else {
				assert.Positive(t, m.Snapshots.Count)
				assert.Less(t, m.Snapshots.Count, all.Snapshots.Count)
				// Each aggregate's newest snapshot, as the archive of all has it last.
				newest := map[string]string{}
				for _, r := range snapshotRecords(t, a1) {
					newest[r[0]] = r[1]
				}
				got := snapshotRecords(t, dir)
				require.Len(t, got, len(newest))
				for _, r := range got {
					assert.Equal(t, newest[r[0]], r[1], "aggregate %q", r[0])
				}
			}
		}
	})
	t.Run("single-context", func(t *testing.T) {
		// SE serves default for every context name: export, import and diff refuse another name.
		for _, args := range [][]string{
			{"export", "--server", r1.Addr(), "--context", "nosuch", "-o", filepath.Join(t.TempDir(), "x")},
			{"import", "--server", r1.Addr(), "--context", "orders", a1},
			{"diff", "--server", r1.Addr(), "--context", "orders", a1},
		} {
			r := clitest.Run(t, clitest.Plain(t), nil, args...)
			clitest.RequireCode(t, r, 1)
			require.Contains(t, r.Stderr, `has one context, "default", and serves it whatever context a call names (Axon Server SE)`, r)
			require.Contains(t, r.Stderr, "axarchive: hint: leave out --context", r)
		}
	})
	t.Run("renumbered-into-non-empty", func(t *testing.T) {
		// Another store, whose aggregates the target does not have.
		other := axontest.NewServer(t)
		gen := eventgen.New(43, eventgen.Options{Aggregates: 50})
		require.NoError(t, other.Load("default", prefixed(t, "other-", gen.Generate(500))))
		require.NoError(t, other.LoadSnapshots("default", prefixed(t, "other-", gen.Snapshots())))
		arch := filepath.Join(t.TempDir(), "other")
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "export", "--server", other.Addr(), "-o", arch), 0)

		head := realHead(t, r1, "")
		tokenMap := filepath.Join(t.TempDir(), "token-map")
		r := clitest.Run(t, clitest.Plain(t), nil, "import", "--server", r1.Addr(), "--renumber", "--token-map", tokenMap, arch)
		clitest.RequireCode(t, r, 0)
		require.Contains(t, r.Stdout, "target equals archive", r)
		require.Equal(t, head+500, realHead(t, r1, ""))
		r = clitest.Run(t, clitest.Plain(t), nil, "diff", "--server", r1.Addr(), "--token-map", tokenMap, arch)
		clitest.RequireCode(t, r, 0)
		require.Contains(t, r.Stdout, "target equals archive", r)
	})

	// Access control on; axarchive killed with SIGKILL in the middle of the import, then the server
	// restarted in the middle of the resumed import; --resume to the end; then the server stopped and its
	// files exported offline.
	t.Run("access-control-kill-restart-resume", func(t *testing.T) {
		r2 := realserver.Fresh(t, accessProps...)
		env := []string{"AXONIQ_ACCESS_TOKEN=" + accessToken}
		cmd := []string{"import", "--server", r2.Addr(), "--max-transaction-events", "100", a1}
		r := clitest.Run(t, clitest.Plain(t), nil, "import", "--server", r2.Addr(), a1)
		clitest.RequireCode(t, r, 1)
		require.Contains(t, r.Stderr, "access token missing or not accepted (AXONIQ-1000)", r)

		total := readManifest(t, a1).Events.Count
		p := clitest.Start(t, clitest.Plain(t), env, cmd...)
		p.WaitUntil(func() bool { return realHead(t, r2, accessToken) >= total/3 })
		p.Signal(syscall.SIGKILL)
		res := p.Wait(clitest.ProcessDeadline)
		require.Equal(t, syscall.SIGKILL, res.Signal, "the import ended before the kill:\n%s", res)
		killedAt := realHead(t, r2, accessToken)
		t.Logf("killed with the target at token %d of %d", killedAt, total-1)

		p = clitest.Start(t, clitest.Plain(t), env, append(cmd, "--resume")...)
		p.WaitUntil(func() bool { return realHead(t, r2, accessToken) > killedAt })
		require.NoError(t, r2.Restart())
		res = p.Wait(5 * time.Minute)
		t.Logf("the import across the server restart ended with %d:\n%s", res.Code, res.Stderr)
		if res.Code != 0 {
			r = clitest.Run(t, clitest.Plain(t), env, append(cmd, "--resume")...)
			clitest.RequireCode(t, r, 0)
		}
		r = clitest.Run(t, clitest.Plain(t), env, "diff", "--server", r2.Addr(), a1)
		clitest.RequireCode(t, r, 0)
		require.Contains(t, r.Stdout, "target equals archive", r)
		live := filepath.Join(t.TempDir(), "live")
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), env, "export", "--server", r2.Addr(), "-o", live), 0)
		requireSameContent(t, live, a1)

		// The offline export of its files once the server has stopped equals the live export.
		require.NoError(t, r2.Stop())
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "segments", r2.ContextDir("default")), 0)
		off := filepath.Join(t.TempDir(), "offline")
		clitest.RequireCode(t, clitest.Run(t, clitest.Plain(t), nil, "export", "--segments", r2.ContextDir("default"), "-o", off), 0)
		requireSameOffline(t, off, live)
	})
}

// snapshotRecords reads every snapshot of the archive in dir, in its order: its aggregate id and its
// protobuf bytes (without its position).
func snapshotRecords(t *testing.T, dir string) [][2]string {
	t.Helper()
	a, err := archive.Open(dir)
	require.NoError(t, err)
	it := a.Snapshots(context.Background())
	defer it.Close()
	var out [][2]string
	for it.Next() {
		r, err := it.Record()
		require.NoError(t, err)
		out = append(out, [2]string{r.AggregateID, string(codec.Encode(nil, r))})
	}
	require.NoError(t, it.Err())
	return out
}
