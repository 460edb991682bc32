package faulttest

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/internal/segmenttest"
)

// segDirCase is a context directory of segment files that must not pass as a usable backup.
type segDirCase struct {
	name  string
	build func(t *testing.T, dir, outside string)
	// want must match the stderr of `axarchive segments` and of `axarchive export --segments` (both exit 3).
	want string
	// segments, if set, is what `axarchive segments` prints instead (its report, on stdout and stderr).
	segments string
	// noResume: the error's hint must not suggest --resume (damage that resuming would meet again).
	noResume bool
}

// goodStore writes three event files of 10 one-event blocks each (tokens 0-29).
func goodStore(t *testing.T, dir string) {
	for f := range 3 {
		var blocks [][][]byte
		for i := range 10 {
			blocks = append(blocks, [][]byte{segmenttest.SampleEvent(nil, int64(f*10+i), 20)})
		}
		_, err := segmenttest.WriteSegment(filepath.Join(dir, segmenttest.Name(int64(f*10), ".events")), 2, blocks, nil)
		require.NoError(t, err)
	}
}

// rewriteMiddle rewrites file 10 (tokens 10-19) with block 5 replaced by the given events.
func rewriteMiddle(t *testing.T, dir string, events [][]byte) {
	var blocks [][][]byte
	for i := range 10 {
		blocks = append(blocks, [][]byte{segmenttest.SampleEvent(nil, int64(10+i), 20)})
	}
	blocks[5] = events
	_, err := segmenttest.WriteSegment(filepath.Join(dir, segmenttest.Name(10, ".events")), 2, blocks, nil)
	require.NoError(t, err)
}

func segDirCases() []segDirCase {
	name := func(n string) string { return regexp.QuoteMeta(n) }
	return []segDirCase{
		{name: "fifo-named-like-a-segment", build: func(t *testing.T, dir, _ string) {
			require.NoError(t, syscall.Mkfifo(filepath.Join(dir, segmenttest.Name(30, ".events")), 0o644))
		}, want: name(segmenttest.Name(30, ".events")) + `.*not a usable segment file: not a regular file`},
		{name: "fifo-snapshots", build: func(t *testing.T, dir, _ string) {
			require.NoError(t, syscall.Mkfifo(filepath.Join(dir, segmenttest.Name(0, ".snapshots")), 0o644))
		}, want: name(segmenttest.Name(0, ".snapshots")) + `.*not a usable segment file: not a regular file`},
		{name: "symlink-to-a-device", build: func(t *testing.T, dir, _ string) {
			require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, segmenttest.Name(30, ".events"))))
		}, want: name(segmenttest.Name(30, ".events")) + `.*not a usable segment file: a symbolic link to /dev/zero`},
		{name: "symlink-outside-the-directory", build: func(t *testing.T, dir, outside string) {
			victim := filepath.Join(outside, "victim.events")
			_, err := segmenttest.WriteSegment(victim, 2, [][][]byte{{segmenttest.SampleEvent(nil, 30, 20)}}, nil)
			require.NoError(t, err)
			require.NoError(t, os.Symlink(victim, filepath.Join(dir, segmenttest.Name(30, ".events"))))
		}, want: name(segmenttest.Name(30, ".events")) + `.*not a usable segment file: a symbolic link to .*victim\.events, outside the directory`},
		{name: "directory-named-like-a-segment", build: func(t *testing.T, dir, _ string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, segmenttest.Name(30, ".events")), 0o755))
		}, want: name(segmenttest.Name(30, ".events")) + `.*not a usable segment file: not a regular file`},
		{name: "name-over-int64", build: func(t *testing.T, dir, _ string) {
			_, err := segmenttest.WriteSegment(filepath.Join(dir, "99999999999999999999.events"), 2, [][][]byte{{segmenttest.SampleEvent(nil, 30, 20)}}, nil)
			require.NoError(t, err)
		}, want: `99999999999999999999\.events.*not a usable segment file: the name is not a segment number`},
		{name: "name-near-int64-max", build: func(t *testing.T, dir, _ string) {
			_, err := segmenttest.WriteSegment(filepath.Join(dir, "09223372036854775807.events"), 2, [][][]byte{{segmenttest.SampleEvent(nil, 30, 20)}}, nil)
			require.NoError(t, err)
		}, want: `09223372036854775807\.events.*not a usable segment file: the name is not a segment number`},
		{name: "name-not-digits", build: func(t *testing.T, dir, _ string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "backup-copy.events"), []byte{2, 0, 0, 0, 0}, 0o644))
		}, want: `backup-copy\.events.*not a usable segment file: the name is not a segment number`},
		{name: "crc-valid-garbage-protobuf", noResume: true, build: func(t *testing.T, dir, _ string) {
			rewriteMiddle(t, dir, [][]byte{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
		}, want: name(segmenttest.Name(10, ".events")) + ` at offset \d+ \(token 15\): corrupt segment data: event is not a valid protobuf Event`},
		{name: "crc-valid-protobuf-field-past-the-event", noResume: true, build: func(t *testing.T, dir, _ string) {
			ev := protowire.AppendTag(nil, 1, protowire.BytesType)
			ev = protowire.AppendVarint(ev, 1000)
			rewriteMiddle(t, dir, [][]byte{append(ev, "short"...)})
		}, want: name(segmenttest.Name(10, ".events")) + ` at offset \d+ \(token 15\): corrupt segment data: event is not a valid protobuf Event`},
		{name: "crc-valid-second-event-garbage", noResume: true, build: func(t *testing.T, dir, _ string) {
			rewriteMiddle(t, dir, [][]byte{segmenttest.SampleEvent(nil, 15, 20), {0x0a}})
		}, want: name(segmenttest.Name(10, ".events")) + ` at offset \d+ \(token 16\): corrupt segment data: event is not a valid protobuf Event`},
		{name: "event-length-past-the-block", noResume: true, build: func(t *testing.T, dir, _ string) {
			path := filepath.Join(dir, segmenttest.Name(10, ".events"))
			var blocks [][][]byte
			for i := range 10 {
				blocks = append(blocks, [][]byte{segmenttest.SampleEvent(nil, int64(10+i), 20)})
			}
			lay, err := segmenttest.WriteSegment(path, 2, blocks, nil)
			require.NoError(t, err)
			// The length prefix of block 5's event claims more than the block holds; the CRC is made to
			// match again.
			bl := lay.Blocks[5]
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			binary.BigEndian.PutUint32(b[bl.Events[0]:], uint32(bl.Size+100))
			entries := b[bl.Offset+7 : bl.Checksum]
			binary.BigEndian.PutUint32(b[bl.Checksum:], crc32.ChecksumIEEE(entries))
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}, want: name(segmenttest.Name(10, ".events")) + ` at offset \d+ \(token 15\): corrupt segment data: event length \d+ runs past the end of its block`},
	}
}

// TestHostileSegmentDirs: a segment directory with an entry named like a segment file that is none (a FIFO, a
// directory, a symbolic link to a device or out of the directory, a name that is no token), or with a block
// whose checksum is right but whose content is not an event, is not a usable backup: `axarchive segments`
// says so (exit 3) and `axarchive export --segments` refuses it (exit 3), naming the file (and offset and
// token where there are), without waiting on the FIFO, without touching anything outside, and without
// leaving an archive behind.
func TestHostileSegmentDirs(t *testing.T) {
	for _, c := range segDirCases() {
		t.Run(c.name, func(t *testing.T) {
			sandbox := t.TempDir()
			dir, outside := filepath.Join(sandbox, "default"), filepath.Join(sandbox, "outside")
			require.NoError(t, os.Mkdir(dir, 0o755))
			require.NoError(t, os.Mkdir(outside, 0o755))
			goodStore(t, dir)
			c.build(t, dir, outside)
			before := snapshotFiles(t, sandbox)

			r := run(t, plain(t), nil, "segments", dir)
			requireCode(t, r, 3)
			want := c.want
			if c.segments != "" {
				want = c.segments
			}
			require.Regexp(t, want, r.Stdout+r.Stderr, r)
			require.Less(t, r.Elapsed, 30*time.Second) // a generous bound: a hang on the FIFO is the failure

			out := filepath.Join(t.TempDir(), "archive")
			r = run(t, plain(t), nil, "export", "--segments", dir, "-o", out)
			requireCode(t, r, 3)
			require.Regexp(t, `axarchive: error: .*`+c.want, r.Stderr, r)
			if c.noResume {
				require.NotContains(t, r.Stderr, "--resume", r)
			}
			_, err := os.Lstat(out)
			require.ErrorIs(t, err, os.ErrNotExist, "export left its directory behind")
			require.Equal(t, before, snapshotFiles(t, sandbox), "segments and export changed files")
			if os.Getenv("AXARCHIVE_SHOW") != "" {
				t.Logf("export:\n%s", r.Stderr)
			}
		})
	}
}

// TestTornFinalBlock: the newest file's final block torn by a power cut (its size and count written, the rest
// of it still the zeros of the pre-allocated file, no end marker) is a cut tail like a short copy: `segments`
// says tail-cut (exit 0), and `export --segments` warns, records the tail-cut note and exports every event
// before the block.
func TestTornFinalBlock(t *testing.T) {
	for _, c := range []struct {
		name   string
		events int     // events in the torn block
		keep   float64 // the fraction of the block's entries written before the cut
	}{
		{"one-event-second-half-zeros", 1, 0.5},
		{"three-events-second-half-zeros", 3, 0.5},
		{"three-events-only-first-length-written", 3, 0.05},
		{"entries-all-zeros", 2, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "default")
			require.NoError(t, os.Mkdir(dir, 0o755))
			goodStore(t, dir)
			path := filepath.Join(dir, segmenttest.Name(20, ".events"))
			var blocks [][][]byte
			for i := range 9 {
				blocks = append(blocks, [][]byte{segmenttest.SampleEvent(nil, int64(20+i), 20)})
			}
			var torn [][]byte
			for i := range c.events {
				torn = append(torn, segmenttest.SampleEvent(nil, int64(29+i), 40))
			}
			blocks = append(blocks, torn)
			lay, err := segmenttest.WriteSegment(path, 2, blocks, &segmenttest.Options{NoMarker: true, Size: 64 << 10})
			require.NoError(t, err)
			bl := lay.Blocks[9]
			entries := bl.Offset + 7
			from := entries + int64(float64(bl.Checksum-entries)*c.keep)
			require.NoError(t, segmenttest.WriteAt(path, from, make([]byte, bl.Checksum+4-from)))

			r := run(t, plain(t), nil, "segments", dir)
			requireCode(t, r, 0)
			require.Contains(t, r.Stdout, "tail-cut", r)

			out := filepath.Join(t.TempDir(), "archive")
			r = run(t, plain(t), nil, "export", "--segments", dir, "-o", out)
			requireCode(t, r, 0)
			require.Regexp(t, `axarchive: warning: tail of .*00000000000000000020\.events cut at offset \d+, from token 29 on`, r.Stderr, r)
			require.Contains(t, r.Stdout, "tokens 0-28", r)
			r = run(t, plain(t), nil, "inspect", out)
			requireCode(t, r, 0)
			require.Contains(t, r.Stdout, "tail-cut", r)
		})
	}
}
