package faulttest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// The segment import (import --segments, issue 17) killed at its checkpoints, out of disk space, on a
// read-only file system: it stops with the cause, never leaves anything a server would load as a store,
// and --resume completes files byte-identical to an uninterrupted run.

// segmentJob is an archive of an offline export (which records transactions) and the segment files of an
// uninterrupted import of it.
type segmentJob struct {
	archive, ref string
}

const segmentSizeFlag = "262144"

func newSegmentJob(t *testing.T) *segmentJob {
	t.Helper()
	j := &segmentJob{archive: filepath.Join(t.TempDir(), "archive"), ref: filepath.Join(t.TempDir(), "ref")}
	requireCode(t, run(t, plain(t), nil, "export", "--segments", newSegments(t, 20000, 51), "-o", j.archive), 0)
	requireCode(t, run(t, plain(t), nil, j.cmd(j.ref, false)...), 0)
	return j
}

func (j *segmentJob) cmd(dir string, resume bool) []string {
	args := []string{"import", "--segments", dir, "--segment-size", segmentSizeFlag, j.archive}
	if resume {
		args = append(args, "--resume")
	}
	return args
}

// requireSameStore compares every file of dir with the uninterrupted run's.
func (j *segmentJob) requireSameStore(t *testing.T, dir string) {
	t.Helper()
	want, err := os.ReadDir(j.ref)
	require.NoError(t, err)
	got, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := func(es []os.DirEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	require.Equal(t, names(want), names(got))
	for _, e := range want {
		w, err := os.ReadFile(filepath.Join(j.ref, e.Name()))
		require.NoError(t, err)
		g, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.True(t, string(w) == string(g), "%s differs from the uninterrupted run's", e.Name())
	}
}

// requireNoStore checks that an interrupted directory holds nothing Axon Server loads (no *.events or
// *.snapshots name) and the journal that makes it resumable.
func requireNoStore(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	journal := false
	for _, e := range es {
		n := e.Name()
		require.False(t, strings.HasSuffix(n, ".events") || strings.HasSuffix(n, ".snapshots"), "%s: a server would load it", n)
		journal = journal || n == "axarchive-segments.json"
	}
	require.True(t, journal, "no journal in %s", dir)
}

func TestSegmentImportKilled(t *testing.T) {
	j := newSegmentJob(t)
	for _, at := range []string{"segments-synced:1", "segments-synced:4", "segments-complete:1"} {
		t.Run(at, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "default")
			r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=" + at}, j.cmd(dir, false)...)
			require.Equal(t, syscall.SIGKILL, r.Signal, r)
			requireNoStore(t, dir)
			r = run(t, plain(t), nil, j.cmd(dir, false)...)
			requireCode(t, r, 1)
			require.Contains(t, r.Stderr, "holds an interrupted import", r)
			requireCode(t, run(t, plain(t), nil, j.cmd(dir, true)...), 0)
			j.requireSameStore(t, dir)
		})
	}
}

func TestSegmentImportDiskFull(t *testing.T) {
	j := newSegmentJob(t)
	t.Run("refused before writing", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=256k")
		dir := filepath.Join(mnt, "default")
		r := run(t, plain(t), nil, j.cmd(dir, false)...)
		requireCode(t, r, 1)
		require.Regexp(t, `(?m)^axarchive: error: not enough free space: the store needs about \d+ bytes, the file system of .* has \d+ free$`, r.Stderr)
		require.NoDirExists(t, dir)
	})
	t.Run("while writing", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=64m")
		dir := filepath.Join(mnt, "default")
		r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=segments-synced:3"}, j.cmd(dir, false)...)
		require.Equal(t, syscall.SIGKILL, r.Signal, r)
		// The disk fills up while the resumed run writes.
		remount(t, mnt, fmt.Sprintf("size=%d", used(t, mnt)+128<<10))
		r = run(t, plain(t), nil, j.cmd(dir, true)...)
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "no space left on device", r)
		require.Regexp(t, `(?m)^axarchive: error: segment import into .* stopped before token \d+: `, r.Stderr)
		require.Regexp(t, `(?m)^axarchive: hint: to continue, run: axarchive import --segments .* --resume `, r.Stderr)
		requireNoStore(t, dir)
		remount(t, mnt, "size=64m")
		requireCode(t, run(t, plain(t), nil, j.cmd(dir, true)...), 0)
		j.requireSameStore(t, dir)
	})
	t.Run("read-only", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=64m")
		remount(t, mnt, "ro")
		dir := filepath.Join(mnt, "default")
		r := run(t, plain(t), nil, j.cmd(dir, false)...)
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "read-only file system", r)
		require.NoDirExists(t, dir)
	})
}

// TestSegmentImportCheckFails: a file changed between the interrupted run and --resume (here, one
// character of the first event's message id, its block's checksum made to match, so that the file
// reads as intact) is found by the check that reads the files back: exit 4, what differs named, and the
// journal stays, so the directory never looks like a store to start a server on.
func TestSegmentImportCheckFails(t *testing.T) {
	j := newSegmentJob(t)
	dir := filepath.Join(t.TempDir(), "default")
	r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=segments-complete:1"}, j.cmd(dir, false)...)
	require.Equal(t, syscall.SIGKILL, r.Signal, r)

	// The file header (5 bytes), then the first block: size, version, count (7 bytes), the first event's
	// length (4), its protobuf: field 1, the message id (tag, length, characters).
	part := filepath.Join(dir, "00000000000000000000.events.part")
	b, err := os.ReadFile(part)
	require.NoError(t, err)
	size := int(binary.BigEndian.Uint32(b[5:]))
	require.Equal(t, byte(0x0a), b[16], "the first event starts with its message id")
	b[18] ^= 1
	binary.BigEndian.PutUint32(b[12+size:], crc32.ChecksumIEEE(b[12:12+size]))
	require.NoError(t, os.WriteFile(part, b, 0o644))

	for _, compare := range []bool{false, true} {
		args := j.cmd(dir, true)
		if compare {
			args = append(args, "--compare")
		}
		r = run(t, plain(t), nil, args...)
		requireCode(t, r, 4)
		require.Regexp(t, `(?m)^axarchive: error: the segment files in .* are not what was written: the events files hold other blocks than were written \(their checksums differ\)$`, r.Stderr)
		require.Contains(t, r.Stderr, "axarchive: hint: do not start a server on "+dir, r)
		// --resume never removes the journal of files that fail the check.
		require.FileExists(t, filepath.Join(dir, "axarchive-segments.json"))
	}

	// With the check left out the damage goes unseen: the reason the check is the default.
	r = run(t, plain(t), nil, append(j.cmd(dir, true), "--no-check")...)
	requireCode(t, r, 0)
	require.NoFileExists(t, filepath.Join(dir, "axarchive-segments.json"))
}

// TestSegmentImportCheckUnreadable: files that cannot be read back at all (here an entry named like a
// segment file that is none, put beside them before --resume) fail the check as files that differ do:
// exit 4, the cause named, the journal kept.
func TestSegmentImportCheckUnreadable(t *testing.T) {
	j := newSegmentJob(t)
	dir := filepath.Join(t.TempDir(), "default")
	r := run(t, faulty(t), []string{"AXARCHIVE_CRASH_AT=segments-complete:1"}, j.cmd(dir, false)...)
	require.Equal(t, syscall.SIGKILL, r.Signal, r)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "00000000000099999999.events"), 0o755))
	r = run(t, plain(t), nil, j.cmd(dir, true)...)
	requireCode(t, r, 4)
	require.Regexp(t, `(?m)^axarchive: error: the segment files in .* are not what was written: the files cannot be read back: .*00000000000099999999\.events`, r.Stderr)
	require.FileExists(t, filepath.Join(dir, "axarchive-segments.json"))
}
