package faulttest

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// killAndResume runs job into dir, kills it with SIGKILL at kills random points (each run after the first
// with --resume), checks after every kill that the directory is usable, then completes it with --resume
// and compares it with the uninterrupted run.
//
// A random point is drawn uniformly from [0, window) after the run's directory holds a journal: a kill
// before the first journal exists is the crash point "journal.json:1" of TestExportCrashBeforeFirstJournal.
func killAndResume(t *testing.T, job *exportJob, dir string, r *rand.Rand, kills int, window time.Duration) {
	t.Helper()
	resume := false
	for i := range kills {
		p := start(t, plain(t), nil, job.cmd(dir, resume)...)
		if !p.WaitUntil(func() bool { return exists(journalPath(dir)) }) {
			requireCode(t, p.Wait(processDeadline), 0)
			t.Logf("kill %d: the run completed before its journal could be seen", i+1)
			break
		}
		delay := time.Duration(r.Int64N(int64(window)))
		select {
		case <-time.After(delay):
		case <-p.Done():
		}
		p.Signal(syscall.SIGKILL)
		res := p.Wait(processDeadline)
		if res.Signal == 0 {
			requireCode(t, res, 0)
			t.Logf("kill %d at +%s: the run had completed", i+1, delay)
			break
		}
		chunks := journalChunks(dir)
		complete := requireUsable(t, dir)
		t.Logf("kill %d at +%s: journal lists %d chunks, %d temporary files, complete %v", i+1, delay.Round(time.Microsecond), chunks, len(tmpFiles(dir)), complete)
		if complete {
			break
		}
		resume = true
	}
	if exists(journalPath(dir)) {
		job.finish(t, dir)
	} else {
		requireSameArchive(t, dir, job.ref)
	}
}

// TestExportSIGKILLRandom: an export killed with SIGKILL at random points, live and offline, and resumed
// each time with --resume, ends with the archive an uninterrupted export writes.
func TestExportSIGKILLRandom(t *testing.T) {
	seed := testSeed(t)
	t.Run("live", func(t *testing.T) {
		srv := newServer(t, 20000, 1)
		job := liveJob(t, srv)
		window := job.refDuration(t) * 5 / 4
		killAndResume(t, job, filepath.Join(t.TempDir(), "a"), newRand(seed, 1), 4, window)
	})
	t.Run("offline", func(t *testing.T) {
		job := offlineJob(t, newSegments(t, 20000, 2))
		window := job.refDuration(t) * 5 / 4
		killAndResume(t, job, filepath.Join(t.TempDir(), "a"), newRand(seed, 2), 4, window)
	})
}

// TestLongExportSIGKILLRandom is the full set of TestExportSIGKILLRandom: larger stores, more kills, several
// rounds of seeds drawn from the test's seed.
func TestLongExportSIGKILLRandom(t *testing.T) {
	long(t)
	seed := testSeed(t)
	srv := newServer(t, 60000, 3)
	live := liveJob(t, srv)
	offline := offlineJob(t, newSegments(t, 60000, 4))
	for _, c := range []struct {
		name string
		job  *exportJob
	}{{"live", live}, {"offline", offline}} {
		window := c.job.refDuration(t) * 5 / 4
		for round := range uint64(5) {
			t.Run(c.name, func(t *testing.T) {
				r := newRand(seed, 100+round)
				killAndResume(t, c.job, filepath.Join(t.TempDir(), "a"), r, 3+r.IntN(6), window)
			})
		}
	}
}

// crashCase is a deliberate crash point of the archive writer, with what must be on disk when it fires.
type crashCase struct {
	name string
	at   string // AXARCHIVE_CRASH_AT
	// check looks at the killed export's directory before it is resumed.
	check func(t *testing.T, dir string)
}

func chunkPath(dir, stream string, first int) string {
	return filepath.Join(dir, "data", stream, padded(first)+".jsonl.zst")
}

func padded(n int) string {
	s := []byte("00000000000000000000")
	for i := len(s) - 1; n > 0; i-- {
		s[i] = byte('0' + n%10)
		n /= 10
	}
	return string(s)
}

// exportCrashes are the crash points of an export with --chunk-records 300 of at least 1000 events and 60
// snapshots. Journal writes: Create, (live: a note,) then one per chunk.
func exportCrashes() []crashCase {
	manifestDone := func(t *testing.T, dir string) {
		require.FileExists(t, manifestPath(dir), "the manifest is written before the BagIt files")
		require.FileExists(t, journalPath(dir))
	}
	return []crashCase{
		{"mid-chunk", "event:750", func(t *testing.T, dir string) {
			require.FileExists(t, chunkPath(dir, "events", 600)+".tmp", "the third chunk is being written")
			require.Equal(t, 2, journalChunks(dir))
		}},
		{"after-chunk-rename", "chunk-renamed:2", func(t *testing.T, dir string) {
			require.FileExists(t, chunkPath(dir, "events", 300), "the second chunk has its final name")
			require.Equal(t, 1, journalChunks(dir), "but the journal does not list it")
		}},
		{"while-writing-journal", "journal.json:4", func(t *testing.T, dir string) {
			require.FileExists(t, journalPath(dir)+".tmp")
		}},
		// A live export's second journal write records the manifest's snapshot-scope note: the resumed run
		// must record it too.
		{"while-writing-first-note", "journal.json:2", func(t *testing.T, dir string) {
			require.FileExists(t, journalPath(dir)+".tmp")
			require.Zero(t, journalChunks(dir))
		}},
		{"snapshot-phase", "snapshot:40", func(t *testing.T, dir string) {
			require.FileExists(t, chunkPath(dir, "snapshots", 0)+".tmp", "the first snapshot chunk is being written")
		}},
		{"while-writing-manifest", "data/manifest.json:1", func(t *testing.T, dir string) {
			require.FileExists(t, manifestPath(dir)+".tmp")
			require.NoFileExists(t, manifestPath(dir))
		}},
		{"while-writing-bagit", "bagit.txt:1", manifestDone},
		{"while-writing-bag-info", "bag-info.txt:1", manifestDone},
		{"while-writing-payload-manifest", "manifest-sha256.txt:1", manifestDone},
		{"while-writing-tag-manifest", "tagmanifest-sha256.txt:1", func(t *testing.T, dir string) {
			manifestDone(t, dir)
			require.FileExists(t, filepath.Join(dir, "manifest-sha256.txt"))
		}},
		{"before-journal-removal", "journal-remove:1", func(t *testing.T, dir string) {
			manifestDone(t, dir)
			require.FileExists(t, filepath.Join(dir, "tagmanifest-sha256.txt"), "every BagIt file is there")
		}},
	}
}

// crashAndResume runs job with the faultinject build until crash point at kills it, checks the directory,
// and resumes. With twice, the resumed run is killed at the same point again (its Nth hit counts from
// the resumed run's start) before a last --resume.
func crashAndResume(t *testing.T, job *exportJob, c crashCase, twice bool) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "a")
	env := []string{"AXARCHIVE_CRASH_AT=" + c.at}
	r := run(t, faulty(t), env, job.cmd(dir, false)...)
	require.Equal(t, syscall.SIGKILL, r.Signal, "crash point %s not reached:\n%s", c.at, r)
	c.check(t, dir)
	requireIncomplete(t, dir)
	if twice {
		r = run(t, faulty(t), env, job.cmd(dir, true)...)
		if r.Signal == 0 {
			requireCode(t, r, 0) // the resumed run had less to do and never reached the point
		} else {
			require.Equal(t, syscall.SIGKILL, r.Signal, r)
			requireIncomplete(t, dir)
		}
	}
	if exists(journalPath(dir)) {
		job.finish(t, dir)
	} else {
		requireSameArchive(t, dir, job.ref)
	}
}

// TestExportCrashPoints: an export killed at each deliberate point of the commit protocol (mid-chunk, right
// after a chunk rename, while writing the journal, in the snapshot phase, while writing the manifest and
// each BagIt file, before the journal is removed), live and offline, leaves an incomplete archive that every
// command refuses, and --resume completes it equal to an uninterrupted run.
func TestExportCrashPoints(t *testing.T) {
	srv := newServer(t, 3000, 5)
	jobs := []struct {
		name string
		job  *exportJob
	}{
		{"live", liveJob(t, srv)},
		{"offline", offlineJob(t, newSegments(t, 3000, 6))},
	}
	for _, j := range jobs {
		for _, c := range exportCrashes() {
			if j.name == "offline" && (strings.Contains(c.name, "-bag") || strings.Contains(c.name, "-payload-")) {
				continue // the same code path as live; TestLongExportCrashPoints runs them
			}
			t.Run(j.name+"/"+c.name, func(t *testing.T) { crashAndResume(t, j.job, c, false) })
		}
	}
}

// TestLongExportCrashPoints adds a second crash in the resumed run, and more positions.
func TestLongExportCrashPoints(t *testing.T) {
	long(t)
	srv := newServer(t, 6000, 7)
	live := liveJob(t, srv)
	offline := offlineJob(t, newSegments(t, 6000, 8))
	cases := exportCrashes()
	for _, n := range []string{"1", "2", "7", "19"} {
		cases = append(cases,
			crashCase{"chunk-renamed-" + n, "chunk-renamed:" + n, func(*testing.T, string) {}},
			crashCase{"journal-" + n, "journal.json:" + n, func(*testing.T, string) {}},
		)
	}
	cases = append(cases, crashCase{"event-1", "event:1", func(*testing.T, string) {}},
		crashCase{"event-5999", "event:5999", func(*testing.T, string) {}},
		crashCase{"snapshot-1", "snapshot:1", func(*testing.T, string) {}})
	for _, j := range []struct {
		name string
		job  *exportJob
	}{{"live", live}, {"offline", offline}} {
		for _, c := range cases {
			if c.at == "journal.json:1" {
				continue // TestExportCrashBeforeFirstJournal
			}
			t.Run(j.name+"/"+c.name+"/twice", func(t *testing.T) { crashAndResume(t, j.job, c, true) })
		}
	}
}

// TestExportCrashBeforeFirstJournal: an export killed after it created the directory layout but before its
// first journal was in place (crash point journal.json:1) left nothing worth keeping: export --resume and a
// plain export both start it afresh and give the same archive as an uninterrupted run.
func TestExportCrashBeforeFirstJournal(t *testing.T) {
	srv := newServer(t, 1000, 9)
	for _, j := range []struct {
		name string
		job  *exportJob
	}{{"live", liveJob(t, srv)}, {"offline", offlineJob(t, newSegments(t, 1000, 10))}} {
		for _, resume := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/resume=%v", j.name, resume), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "a")
				r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=journal.json:1"}, j.job.cmd(dir, false)...)
				require.Equal(t, syscall.SIGKILL, r.Signal, r)
				require.NoFileExists(t, journalPath(dir))
				require.DirExists(t, filepath.Join(dir, "data", "events"))
				r = run(t, plain(t), nil, j.job.cmd(dir, resume)...)
				requireCode(t, r, 0)
				requireSameArchive(t, dir, j.job.ref)
			})
		}
	}
}

// TestExportSIGINT: Ctrl-C during a live export (stalled server) and an offline one exits 130, says how
// far it got and that --resume continues, leaves a journal and no manifest; --resume completes it. SIGTERM
// is handled the same way.
func TestExportSIGINT(t *testing.T) {
	t.Parallel() // mostly waiting on the server: run beside the other waiting tests
	srv := newServer(t, 20000, 11)
	live := liveJob(t, srv)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("live/"+sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			p := start(t, plain(t), nil, live.cmd(dir, false)...)
			require.True(t, p.WaitUntil(func() bool { return journalChunks(dir) >= 2 }), "export ended before two chunks were committed")
			srv.Stall()
			time.Sleep(100 * time.Millisecond)
			p.Signal(sig)
			r := p.Wait(processDeadline)
			srv.Unstall()
			requireInterrupted(t, r, dir)
			live.finish(t, dir)
		})
	}
	t.Run("offline", func(t *testing.T) {
		job := offlineJob(t, newSegments(t, 15000, 12), "--chunk-records", "100")
		dir := filepath.Join(t.TempDir(), "a")
		p := start(t, plain(t), nil, job.cmd(dir, false)...)
		require.True(t, p.WaitUntil(func() bool { return journalChunks(dir) >= 3 }), "export ended before three chunks were committed")
		p.Signal(syscall.SIGINT)
		r := p.Wait(processDeadline)
		if r.Code == 0 {
			t.Skip("the export completed before SIGINT arrived")
		}
		requireInterrupted(t, r, dir)
		job.finish(t, dir)
	})
}

// requireInterrupted checks an export that was interrupted: exit 130, the position and the way on, and a
// resumable directory.
func requireInterrupted(t testing.TB, r *result, dir string) {
	t.Helper()
	requireCode(t, r, 130)
	require.Regexp(t, `(?m)^axarchive: error: export interrupted before token \d+ \(\d+ events committed in `, r.Stderr)
	require.Regexp(t, `(?m)^axarchive: hint: run the same command with --resume`, r.Stderr)
	require.NoFileExists(t, manifestPath(dir))
	requireIncomplete(t, dir)
}

// TestLongExportSIGINTRandom: SIGINT at random points of a slowed-down live export, then --resume.
func TestLongExportSIGINTRandom(t *testing.T) {
	long(t)
	seed := testSeed(t)
	srv := newServer(t, 20000, 13)
	job := liveJob(t, srv)
	srv.SetDelay(50 * time.Microsecond)
	window := job.refDuration(t)
	for round := range uint64(6) {
		t.Run("", func(t *testing.T) {
			r := newRand(seed, 200+round)
			dir := filepath.Join(t.TempDir(), "a")
			p := start(t, plain(t), nil, job.cmd(dir, false)...)
			p.WaitUntil(func() bool { return exists(journalPath(dir)) })
			time.Sleep(time.Duration(r.Int64N(int64(window))))
			p.Signal(syscall.SIGINT)
			res := p.Wait(processDeadline)
			if res.Code == 0 {
				requireSameArchive(t, dir, job.ref)
				return
			}
			requireInterrupted(t, res, dir)
			job.finish(t, dir)
		})
	}
}
