package faulttest

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axontest"
)

// TestExportNetworkFaults: a live export recovers by itself from dropped event streams, UNAVAILABLE
// answers, slow responses, a stalled server and a server restart, each retry reported on stderr, and ends
// with the archive an undisturbed export writes. Faults it cannot ride out (the server gone for longer
// than its retries, a failed snapshot read) stop it with the position and --resume as the way on, and
// --resume completes it.
func TestExportNetworkFaults(t *testing.T) {
	t.Parallel() // mostly waiting on the server: run beside the other waiting tests
	srv := newServer(t, 8000, 31)
	job := liveJob(t, srv)
	// during runs job with --retries 3 while fault disturbs it (fault runs once the export committed two
	// chunks, in the test's goroutine), and returns how the run ended.
	during := func(t *testing.T, dir string, fault func(p *proc)) *result {
		t.Helper()
		if fault != nil {
			slowDown(t, srv) // the fault must land while events stream, however fast the export
		}
		p := start(t, plain(t), nil, job.cmd(dir, false)...)
		if fault != nil {
			require.True(t, p.WaitUntil(func() bool { return journalChunks(dir) >= 2 }), "export ended before two chunks were committed")
			require.Less(t, journalChunks(dir), 8000/300, "the export finished its events before the fault")
			fault(p)
			srv.SetDelay(0)
		}
		return p.Wait(processDeadline)
	}
	recovered := func(t *testing.T, r *result, dir string, retries int) {
		t.Helper()
		requireCode(t, r, 0)
		require.Equal(t, retries, strings.Count(r.Stderr, "axarchive: warning: event stream lost at token"), r)
		requireSameArchive(t, dir, job.ref)
	}

	t.Run("dropped-streams", func(t *testing.T) {
		srv.DropListEventsAfter(1000)
		srv.DropListEventsAfter(0)
		srv.DropListEventsAfter(2500)
		dir := filepath.Join(t.TempDir(), "a")
		recovered(t, during(t, dir, nil), dir, 3)
	})
	t.Run("unavailable", func(t *testing.T) {
		srv.FailNthCall(axontest.MethodListEvents, 1)
		srv.FailNthCall(axontest.MethodListEvents, 2)
		dir := filepath.Join(t.TempDir(), "a")
		recovered(t, during(t, dir, nil), dir, 2)
	})
	t.Run("slow-responses", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		r := during(t, dir, func(*proc) {
			srv.SetDelay(2 * time.Millisecond)
			time.Sleep(700 * time.Millisecond)
		})
		recovered(t, r, dir, 0)
	})
	t.Run("stalled-server", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		r := during(t, dir, func(*proc) {
			srv.Stall()
			time.Sleep(time.Second)
			srv.Unstall()
		})
		recovered(t, r, dir, 0)
	})
	t.Run("server-restart", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		r := during(t, dir, func(*proc) {
			srv.Stop()
			time.Sleep(300 * time.Millisecond)
			require.NoError(t, srv.Restart())
		})
		requireCode(t, r, 0)
		require.Contains(t, r.Stderr, "axarchive: warning: event stream lost at token", r)
		requireSameArchive(t, dir, job.ref)
	})
	t.Run("server-gone", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		job := *job
		job.args = append(job.args, "--retries", "2")
		slowDown(t, srv)
		p := start(t, plain(t), nil, job.cmd(dir, false)...)
		require.True(t, p.WaitUntil(func() bool { return journalChunks(dir) >= 2 }))
		require.Less(t, journalChunks(dir), 8000/300, "the export finished its events before the fault")
		srv.Stop()
		srv.SetDelay(0)
		r := p.Wait(processDeadline)
		require.NoError(t, srv.Restart())
		requireCode(t, r, 1)
		require.Regexp(t, `(?m)^axarchive: error: export stopped before token \d+ \(\d+ events committed in .*\): event stream lost 3 times at token \d+`, r.Stderr)
		require.Regexp(t, `(?m)^axarchive: hint: run the same command with --resume`, r.Stderr)
		requireIncomplete(t, dir)
		job.finish(t, dir)
	})
	t.Run("snapshot-read-unavailable-once", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		srv.FailNthCall(axontest.MethodListAggregateSnapshots, 5) // reads are retried by the client layer
		recovered(t, during(t, dir, nil), dir, 0)
	})
	t.Run("server-gone-in-snapshot-phase", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		calls := srv.Calls(axontest.MethodListAggregateSnapshots)
		p := start(t, plain(t), nil, job.cmd(dir, false)...)
		require.True(t, p.WaitUntil(func() bool { return srv.Calls(axontest.MethodListAggregateSnapshots) > calls+20 }))
		srv.Stop()
		r := p.Wait(processDeadline)
		require.NoError(t, srv.Restart())
		requireCode(t, r, 1)
		require.Regexp(t, `(?m)^axarchive: error: export stopped before token 8000 \(8000 events committed in .*\): snapshots of aggregate `, r.Stderr)
		require.Regexp(t, `(?m)^axarchive: hint: run the same command with --resume`, r.Stderr)
		requireIncomplete(t, dir)
		job.finish(t, dir)
	})
	t.Run("unavailable-at-start", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		srv.FailNthCall(axontest.MethodGetLastToken, 1)
		srv.FailNthCall(axontest.MethodGetFirstToken, 1)
		recovered(t, during(t, dir, nil), dir, 0)
	})
	t.Run("server-down-at-start", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a")
		srv.Stop()
		r := run(t, plain(t), nil, job.cmd(dir, false)...)
		require.NoError(t, srv.Restart())
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "axarchive: hint: check --server", r)
		require.NoDirExists(t, dir, "nothing is created before the source answered")
		requireCode(t, run(t, plain(t), nil, job.cmd(dir, false)...), 0)
		requireSameArchive(t, dir, job.ref)
	})
}

// TestImportNetworkFaults: an import rides out slow confirmations and a stalled server; UNAVAILABLE
// answers and a server that stops or restarts stop it with how far it got (archive token, target head)
// and the exact command that continues it, and that command, run as printed, completes it.
func TestImportNetworkFaults(t *testing.T) {
	t.Parallel() // mostly waiting on the server: run beside the other waiting tests
	j := newImportJob(t, newServer(t, 6000, 32))

	// stopped checks a failed import's report and runs the command it names.
	stopped := func(t *testing.T, r *result, target, phase string) {
		t.Helper()
		requireCode(t, r, 1)
		m := regexp.MustCompile(`(?m)^axarchive: error: import stopped in the (\w+) phase at (?:archive token|snapshot position) (-?\d+) \((\d+) events confirmed this run; (the target now ends at token|confirmed up to target token) (-?\d+)`).FindStringSubmatch(r.Stderr)
		require.NotNil(t, m, "no position in:\n%s", r)
		require.Equal(t, phase, m[1], r)
		events, _ := j.requirePrefix(t, target)
		head, _ := strconv.Atoi(m[5])
		if m[4] == "the target now ends at token" {
			require.Equal(t, events-1, head, "the head reported is the target's:\n%s", r)
		} else {
			require.LessOrEqual(t, head, events-1, "the head last confirmed is stored:\n%s", r)
		}
		if phase == "events" {
			// The position is the first event not confirmed to this run; a transaction whose
			// confirmation was lost may be stored beyond it, which --resume finds in the target.
			next, _ := strconv.Atoi(m[2])
			require.LessOrEqual(t, next, head+1, r)
		}
		requireContinueHint(t, r, j.srv.Addr(), target, j.archive)
		r = run(t, plain(t), nil, hintedCommand(t, r)...)
		requireCode(t, r, 0)
		require.Contains(t, r.Stdout, "target equals archive", r)
		j.requireImported(t, target)
	}

	t.Run("unavailable-append", func(t *testing.T) {
		target := j.target()
		j.srv.FailNthCall(axontest.MethodAppendEvent, 7)
		stopped(t, run(t, plain(t), nil, j.cmd(target, false)...), target, "events")
	})
	t.Run("unavailable-once", func(t *testing.T) {
		target := j.target()
		j.srv.FailNthCall(axontest.MethodGetLastToken, 5) // reads are retried by the client layer
		j.srv.FailNthCall(axontest.MethodListAggregateSnapshots, 1)
		r := run(t, plain(t), nil, j.cmd(target, false)...)
		requireCode(t, r, 0)
		j.requireImported(t, target)
	})
	t.Run("unavailable-head-check", func(t *testing.T) {
		target := j.target()
		for n := 5; n < 10; n++ { // every attempt of the fourth check after a transaction
			j.srv.FailNthCall(axontest.MethodGetLastToken, n)
		}
		stopped(t, run(t, plain(t), nil, j.cmd(target, false)...), target, "events")
	})
	t.Run("unavailable-snapshot", func(t *testing.T) {
		// The third snapshot goes while the events are imported: its failure stops them too, and the
		// error names it.
		target := j.target()
		j.srv.FailNthCall(axontest.MethodAppendSnapshot, 3)
		r := run(t, plain(t), nil, j.cmd(target, false)...)
		require.Regexp(t, `snapshot at position \d+ \(aggregate "[^"]+", sequence \d+\): `, r.Stderr, r)
		stopped(t, r, target, "events")
	})
	t.Run("server-restart", func(t *testing.T) {
		target := j.target()
		p := midImport(t, j, target)
		j.srv.Stop()
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, j.srv.Restart())
		// Between two transactions the client layer's retries of the head check ride out the restart; an
		// append in flight fails and is never retried (its fate is unknown).
		if r := p.Wait(processDeadline); r.Code == 0 {
			t.Log("the import rode out the restart")
			j.requireImported(t, target)
		} else {
			stopped(t, r, target, "events")
		}
	})
	t.Run("server-gone", func(t *testing.T) {
		target := j.target()
		p := midImport(t, j, target)
		j.srv.Stop()
		r := p.Wait(processDeadline)
		require.NoError(t, j.srv.Restart())
		stopped(t, r, target, "events")
	})
	t.Run("slow-confirmations", func(t *testing.T) {
		target := j.target()
		p := midImport(t, j, target)
		j.srv.SetDelay(20 * time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		j.srv.SetDelay(0)
		r := p.Wait(processDeadline)
		requireCode(t, r, 0)
		j.requireImported(t, target)
	})
	t.Run("stalled-server", func(t *testing.T) {
		target := j.target()
		p := midImport(t, j, target)
		j.srv.Stall()
		time.Sleep(time.Second)
		j.srv.Unstall()
		r := p.Wait(processDeadline)
		requireCode(t, r, 0)
		j.requireImported(t, target)
	})
}

// midImport starts an import of j's archive into target and returns once the target holds 1500 of its
// 6000 events, with the import still running.
func midImport(t *testing.T, j *importJob, target string) *proc {
	t.Helper()
	slowDown(t, j.srv) // a fast import must not finish before the fault
	p := start(t, plain(t), nil, j.cmd(target, false)...)
	p.WaitUntil(func() bool { return j.srv.EventCount(target) >= 1500 })
	require.Less(t, j.srv.EventCount(target), j.events, "the import finished before the fault")
	j.srv.SetDelay(0)
	return p
}

// slowDown delays each of srv's answers by a millisecond (until the test sets another delay, or ends), so
// that an import of a few thousand events runs for a while: a fault injected "in the middle" then lands in
// the middle even when the import would otherwise finish between two polls.
func slowDown(t *testing.T, srv *axontest.Server) {
	srv.SetDelay(time.Millisecond)
	t.Cleanup(func() { srv.SetDelay(0) })
}
