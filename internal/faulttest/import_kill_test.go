package faulttest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axontest"
)

// importJob imports an archive of srv's srcContext into fresh contexts of the same server, so that every
// target can be compared with the source event by event.
type importJob struct {
	srv       *axontest.Server
	archive   string
	events    int
	snapshots int
	targets   int
}

// newImportJob exports srv's srcContext (an uninterrupted live export) as the archive to import.
func newImportJob(t testing.TB, srv *axontest.Server) *importJob {
	t.Helper()
	job := liveJob(t, srv)
	return &importJob{srv: srv, archive: job.ref, events: srv.EventCount(srcContext), snapshots: srv.SnapshotCount(srcContext)}
}

// target returns the name of a new, empty context.
func (j *importJob) target() string {
	j.targets++
	return fmt.Sprintf("target-%d", j.targets)
}

func (j *importJob) cmd(target string, resume bool, extra ...string) []string {
	args := append([]string{"import", "--server", j.srv.Addr(), "--context", target, "--max-transaction-events", "150"}, extra...)
	if resume {
		args = append(args, "--resume")
	}
	return append(args, j.archive)
}

// requirePrefix checks what an interrupted import may leave in the target: the archive's first events,
// exactly (nothing half-applied, nothing else), and not more snapshots than the archive holds.
func (j *importJob) requirePrefix(t testing.TB, target string) (events, snapshots int) {
	t.Helper()
	src, got := j.srv.Events(srcContext), j.srv.Events(target)
	require.LessOrEqual(t, len(got), len(src))
	for i, ev := range got {
		require.Equal(t, src[i].Token, ev.Token)
		require.Equal(t, src[i].Raw, ev.Raw, "target event at token %d", ev.Token)
	}
	// Snapshots are appended while the events are imported, each once its event is stored: the double
	// refuses one beyond its aggregate's highest sequence (AXON.md 2.4), as Axon Server does.
	snapshots = j.srv.SnapshotCount(target)
	require.LessOrEqual(t, snapshots, j.snapshots)
	return len(got), snapshots
}

// requireImported checks a finished import: the target holds the source's events at the same tokens with
// the same bytes, every snapshot exactly once, and `axarchive diff` proves it equal to the archive.
func (j *importJob) requireImported(t testing.TB, target string) {
	t.Helper()
	events, snapshots := j.requirePrefix(t, target)
	require.Equal(t, j.events, events, "events in the target")
	require.Equal(t, j.snapshots, snapshots, "snapshots in the target (none twice)")
	r := run(t, plain(t), nil, "diff", "--server", j.srv.Addr(), "--context", target, j.archive)
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "target equals archive", r)
}

// finish runs import --resume to its end.
func (j *importJob) finish(t testing.TB, target string) {
	t.Helper()
	r := run(t, plain(t), nil, j.cmd(target, true)...)
	requireCode(t, r, 0)
	require.Contains(t, r.Stdout, "target equals archive", r)
	j.requireImported(t, target)
}

// killImport runs the import (resuming after the first run) and kills it with SIGKILL at kills random
// points: in one kill of five a random time after the start (mostly in the preflight: reading the head,
// verifying the archive), in three when the target holds a random number of the archive's events, in one
// when it holds a random number of its snapshots. Then it resumes to the end.
func killImport(t *testing.T, j *importJob, r *rand.Rand, kills int) {
	t.Helper()
	target := j.target()
	resume := false
	for i := range kills {
		events, snaps := j.srv.EventCount(target), j.srv.SnapshotCount(target)
		var point string
		var cond func() bool
		switch m := r.IntN(5); {
		case m == 0:
			d := time.Duration(r.Int64N(int64(400 * time.Millisecond)))
			deadline := time.Now().Add(d)
			point, cond = "+"+d.Round(time.Millisecond).String(), func() bool { return time.Now().After(deadline) }
		case m <= 3:
			k := events + r.IntN(j.events-events+1)
			point, cond = fmt.Sprintf("event %d", k), func() bool { return j.srv.EventCount(target) >= k }
		default:
			k := snaps + r.IntN(j.snapshots-snaps+1)
			point, cond = fmt.Sprintf("snapshot %d", k), func() bool { return j.srv.SnapshotCount(target) >= k }
		}
		p := start(t, plain(t), nil, j.cmd(target, resume)...)
		p.WaitUntil(cond)
		p.Signal(syscall.SIGKILL)
		res := p.Wait(processDeadline)
		if res.Signal == 0 {
			requireCode(t, res, 0)
			t.Logf("kill %d (at %s): the run had completed", i+1, point)
			j.requireImported(t, target)
			return
		}
		events, snaps = j.requirePrefix(t, target)
		t.Logf("kill %d (at %s): the target holds %d events and %d snapshots", i+1, point, events, snaps)
		resume = true
	}
	j.finish(t, target)
}

// TestImportSIGKILLRandom: an import killed with SIGKILL at random points (preflight, between and during
// transactions, once snapshots are stored) and continued with import --resume each time leaves a target equal
// to the archive: no event missing, none twice, every snapshot once.
func TestImportSIGKILLRandom(t *testing.T) {
	seed := testSeed(t)
	j := newImportJob(t, newServer(t, 20000, 21))
	killImport(t, j, newRand(seed, 3), 4)
}

// TestLongImportSIGKILLRandom is the full set of TestImportSIGKILLRandom.
func TestLongImportSIGKILLRandom(t *testing.T) {
	long(t)
	seed := testSeed(t)
	j := newImportJob(t, newServer(t, 60000, 22))
	for round := range uint64(8) {
		t.Run("", func(t *testing.T) {
			r := newRand(seed, 300+round)
			killImport(t, j, r, 2+r.IntN(6))
		})
	}
}

// TestImportCrashPoints: an import killed right after the server confirmed a transaction (before the head
// was checked), between two transactions, while a half-closed transaction waits for a stalled server (which
// then stores it, or stops and drops it), after the server committed one whose confirmation had not arrived
// yet (delayed), once it has stored snapshots, or interrupted with SIGINT, then continued with import --resume,
// leaves a target equal to the archive.
func TestImportCrashPoints(t *testing.T) {
	j := newImportJob(t, newServer(t, 3000, 23))
	for _, at := range []string{"import-appended:1", "import-appended:9", "import-transaction:1", "import-transaction:9", "import-transaction:20"} {
		t.Run(at, func(t *testing.T) {
			target := j.target()
			r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=" + at}, j.cmd(target, false)...)
			require.Equal(t, syscall.SIGKILL, r.Signal, "crash point %s not reached:\n%s", at, r)
			events, _ := j.requirePrefix(t, target)
			require.Positive(t, events)
			j.finish(t, target)
		})
	}
	// heldTransaction runs an import until the server, stalled, holds a half-closed transaction beyond
	// its 1000th event, kills the import with SIGKILL, and returns the events stored before that one.
	heldTransaction := func(t *testing.T, target string) int {
		// Stalled before the import starts and released once it holds the first transaction: a fast
		// import cannot slip past the point on a loaded machine.
		j.srv.Stall()
		t.Cleanup(j.srv.Unstall)
		p := start(t, plain(t), nil, j.cmd(target, false)...)
		p.WaitUntil(func() bool { return j.srv.Held(axontest.MethodAppendEvent) == 1 })
		j.srv.Unstall()
		p.WaitUntil(func() bool { return j.srv.EventCount(target) >= 1000 })
		j.srv.Stall()
		p.WaitUntil(func() bool { return j.srv.Held(axontest.MethodAppendEvent) == 1 })
		before := j.srv.EventCount(target)
		require.Less(t, before, j.events, "the import finished before the stall")
		p.Signal(syscall.SIGKILL)
		p.Wait(processDeadline)
		return before
	}
	t.Run("stalled-transaction", func(t *testing.T) {
		// AXON.md 2.3: the client half-closed, so the server stores the transaction although the client
		// died before its confirmation; --resume finds it in the target.
		target := j.target()
		before := heldTransaction(t, target)
		j.srv.Unstall()
		require.Eventually(t, func() bool { return j.srv.Held(axontest.MethodAppendEvent) == 0 }, processDeadline, time.Millisecond)
		events, _ := j.requirePrefix(t, target)
		require.Greater(t, events, before, "a half-closed transaction is stored though its client died")
		j.finish(t, target)
	})
	t.Run("stalled-transaction-server-stopped", func(t *testing.T) {
		// The server goes down while it holds the transaction: nothing of it is stored.
		target := j.target()
		before := heldTransaction(t, target)
		j.srv.Stop()
		require.NoError(t, j.srv.Restart())
		j.srv.Unstall()
		events, _ := j.requirePrefix(t, target)
		require.Equal(t, before, events, "a transaction held when the server stopped is not stored")
		j.finish(t, target)
	})
	t.Run("unconfirmed-transaction", func(t *testing.T) {
		target := j.target()
		j.srv.SetDelay(20 * time.Millisecond) // slow enough that the import is still running at event 1000
		t.Cleanup(func() { j.srv.SetDelay(0) })
		p := start(t, plain(t), nil, j.cmd(target, false)...)
		p.WaitUntil(func() bool { return j.srv.EventCount(target) >= 1000 })
		j.srv.SetDelay(time.Second) // commit, then wait before confirming
		before := j.srv.EventCount(target)
		p.WaitUntil(func() bool { return j.srv.EventCount(target) > before })
		p.Signal(syscall.SIGKILL)
		p.Wait(processDeadline)
		j.srv.SetDelay(0)
		events, _ := j.requirePrefix(t, target)
		require.Greater(t, events, before, "the server committed a transaction the client never saw confirmed")
		j.finish(t, target)
	})
	t.Run("snapshots-stored", func(t *testing.T) {
		// Beside the events or after them: a resume stores the missing events, then each snapshot the
		// target does not hold yet.
		target := j.target()
		p := start(t, plain(t), nil, j.cmd(target, false)...)
		p.WaitUntil(func() bool { return j.srv.SnapshotCount(target) >= 10 })
		p.Signal(syscall.SIGKILL)
		p.Wait(processDeadline)
		_, snaps := j.requirePrefix(t, target)
		require.GreaterOrEqual(t, snaps, 10)
		j.finish(t, target)
	})
	t.Run("SIGINT", func(t *testing.T) {
		target := j.target()
		j.srv.SetDelay(20 * time.Millisecond) // slow enough that the import is still running at event 600
		t.Cleanup(func() { j.srv.SetDelay(0) })
		p := start(t, plain(t), nil, j.cmd(target, false)...)
		p.WaitUntil(func() bool { return j.srv.EventCount(target) >= 600 })
		j.srv.Stall()
		t.Cleanup(j.srv.Unstall)
		j.srv.SetDelay(0)
		time.Sleep(100 * time.Millisecond)
		p.Signal(syscall.SIGINT)
		r := p.Wait(processDeadline)
		j.srv.Unstall()
		requireCode(t, r, 130)
		requireContinueHint(t, r, j.srv.Addr(), target, j.archive)
		j.requirePrefix(t, target)
		j.finish(t, target)
		require.Regexp(t, `axarchive: error: import stopped in the events phase at archive token \d+ \(\d+ events confirmed this run; the target now ends at token \d+\): interrupted\n`, r.Stderr)
	})
}

// requireContinueHint checks that a failed import names the exact command that continues it.
func requireContinueHint(t testing.TB, r *result, addr, target, dir string) {
	t.Helper()
	want := fmt.Sprintf("axarchive: hint: to continue, run: axarchive import --resume --server %s --context %s %s\n", addr, target, dir)
	require.Contains(t, r.Stderr, want, r)
}

// hintedCommand returns the arguments of the "to continue, run: axarchive …" hint of r.
func hintedCommand(t testing.TB, r *result) []string {
	t.Helper()
	const marker = "axarchive: hint: to continue, run: axarchive "
	i := strings.Index(r.Stderr, marker)
	require.GreaterOrEqual(t, i, 0, "no command to continue in:\n%s", r)
	line := r.Stderr[i+len(marker):]
	if n := strings.Index(line, "\n"); n >= 0 {
		line = line[:n]
	}
	return strings.Fields(line)
}
