package faulttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs with the given options (e.g. "size=1m") on a new directory and returns it; it is
// unmounted when the test ends. Without the right to mount (not root, no CAP_SYS_ADMIN) the test is
// skipped.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a size-limited tmpfs here (%v: %s); disk faults need root", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput()
	require.NoError(t, err, "remount %s %s: %s", opts, dir, out)
}

// used returns the bytes in use on the file system of dir.
func used(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// snapshotFiles returns every file under dir with its size and content digest, to prove a failed run
// changed nothing.
func snapshotFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fmt.Sprintf("%s %s", fi.Mode(), fi.ModTime().Format(time.RFC3339Nano))
		if fi.Mode().IsRegular() && fi.Size() > 16<<20 {
			desc += fmt.Sprintf(" %d", fi.Size()) // a sparse giant: size and time say enough
		} else if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %x", len(b), sha256Sum(b))
		} else if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		out[rel] = desc
		return nil
	}))
	return out
}

// requireDiskError checks an export that failed for lack of room (or a read-only disk): exit 1, the
// cause, the position and --resume as the way on, and a resumable directory.
func requireDiskError(t *testing.T, r *result, dir, cause string) {
	t.Helper()
	requireCode(t, r, 1)
	t.Logf("%s", r.Stderr)
	require.Contains(t, r.Stderr, cause, r)
	require.Regexp(t, `(?m)^axarchive: error: export stopped before token \d+ \(\d+ events committed in `, r.Stderr)
	require.Regexp(t, `(?m)^axarchive: hint: run the same command with --resume`, r.Stderr)
	require.NoFileExists(t, manifestPath(dir))
	requireIncomplete(t, dir)
}

// TestExportDiskFull: an export that runs out of disk space (a 1 MiB tmpfs, for a 3 MiB archive) stops
// with a clear error and leaves a resumable directory; once there is room, --resume completes it equal to
// an uninterrupted export. The same holds when the disk fills up while the manifest is written, the last
// step.
func TestExportDiskFull(t *testing.T) {
	srv := newServer(t, 12000, 41)
	job := liveJob(t, srv)
	t.Run("events", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=1m")
		dir := filepath.Join(mnt, "a")
		r := run(t, plain(t), nil, job.cmd(dir, false)...)
		requireDiskError(t, r, dir, "no space left on device")
		remount(t, mnt, "size=64m")
		job.finish(t, dir)
	})
	t.Run("manifest", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=64m")
		dir := filepath.Join(mnt, "a")
		// Everything committed, the manifest about to be written: then leave room for the journal
		// and not one page more.
		r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=data/manifest.json:1"}, job.cmd(dir, false)...)
		require.Equal(t, syscall.SIGKILL, r.Signal, r)
		require.NoError(t, os.Remove(manifestPath(dir)+".tmp"))
		remount(t, mnt, fmt.Sprintf("size=%d", used(t, mnt)+4096))
		r = run(t, plain(t), nil, job.cmd(dir, true)...)
		requireDiskError(t, r, dir, "no space left on device")
		remount(t, mnt, "size=64m")
		job.finish(t, dir)
	})
}

// TestLongExportDiskFull fills disks of many sizes, live and offline, and resumes on a disk still too
// small before giving it room.
func TestLongExportDiskFull(t *testing.T) {
	long(t)
	srv := newServer(t, 20000, 42)
	for _, j := range []struct {
		name string
		job  *exportJob
	}{{"live", liveJob(t, srv)}, {"offline", offlineJob(t, newSegments(t, 20000, 43))}} {
		for _, size := range []string{"300k", "700k", "1m", "2m", "3m", "4m"} {
			t.Run(j.name+"/"+size, func(t *testing.T) {
				mnt := mountTmpfs(t, "size="+size)
				dir := filepath.Join(mnt, "a")
				r := run(t, plain(t), nil, j.job.cmd(dir, false)...)
				if r.Code == 0 {
					requireSameArchive(t, dir, j.job.ref)
					return
				}
				requireDiskError(t, r, dir, "no space left on device")
				before := journalChunks(dir)
				remount(t, mnt, fmt.Sprintf("size=%d", used(t, mnt)+512<<10))
				r = run(t, plain(t), nil, j.job.cmd(dir, true)...)
				if r.Code != 0 {
					requireDiskError(t, r, dir, "no space left on device")
					require.GreaterOrEqual(t, journalChunks(dir), before, "a failed resume keeps what was committed")
				}
				remount(t, mnt, "size=64m")
				j.job.finish(t, dir)
			})
		}
	}
}

// TestExportReadOnlyOutput: an export into a read-only file system fails at once with the cause and
// creates nothing; --resume of an interrupted export whose directory became read-only fails with the
// cause and changes nothing, and succeeds once the disk is writable again.
func TestExportReadOnlyOutput(t *testing.T) {
	srv := newServer(t, 3000, 44)
	job := liveJob(t, srv)
	t.Run("new", func(t *testing.T) {
		mnt := mountTmpfs(t, "ro,size=1m")
		dir := filepath.Join(mnt, "a")
		r := run(t, plain(t), nil, job.cmd(dir, false)...)
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "read-only file system", r)
		require.NoDirExists(t, dir)
	})
	t.Run("resume", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=64m")
		dir := filepath.Join(mnt, "a")
		r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=chunk-renamed:3"}, job.cmd(dir, false)...)
		require.Equal(t, syscall.SIGKILL, r.Signal, r)
		remount(t, mnt, "ro")
		before := snapshotFiles(t, dir)
		r = run(t, plain(t), nil, job.cmd(dir, true)...)
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "read-only file system", r)
		require.Equal(t, before, snapshotFiles(t, dir), "a failed resume changes nothing")
		requireIncomplete(t, dir)
		remount(t, mnt, "rw")
		job.finish(t, dir)
	})
}
