package faulttest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// TestHostileChains: archives that do not form a chain (a previous fingerprint or last token that does not
// match, the wrong order, one archive twice, another context) are invalid input for every command that takes
// a chain: verify, import and diff exit 3 naming both archives, and import sends nothing. An incremental
// archive imported alone is refused with a hint naming the archive it continues.
func TestHostileChains(t *testing.T) {
	srv := newServer(t, 300, 53)
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	requireCode(t, run(t, plain(t), nil, "export", "-o", a, "--server", srv.Addr(), "--context", srcContext, "--to-token", "149"), 0)
	requireCode(t, run(t, plain(t), nil, "export", "-o", b, "--server", srv.Addr(), "--context", srcContext, "--since", a), 0)
	requireCode(t, run(t, plain(t), nil, "verify", a, b), 0)
	aFingerprint := (&hostile{t: t, dir: a}).manifest()["fingerprint"].(string)

	for i, c := range []struct {
		name  string
		edit  func(h *hostile) // applied to a copy of b
		order func(a, b string) []string
		want  string
	}{
		{"previous-fingerprint-differs", func(h *hostile) {
			h.editManifest(func(m map[string]any) {
				m["previous"].(map[string]any)["fingerprint"] = strings.Repeat("0", 64)
			})
		}, nil, `archives do not form a chain: .*b after .*a: links to fingerprint 0{64}, but .*a has [0-9a-f]{64}`},
		{"previous-last-token-differs", func(h *hostile) {
			h.editManifest(func(m map[string]any) {
				m["previous"].(map[string]any)["lastToken"] = jsonNumber(148)
				m["events"].(map[string]any)["firstToken"] = jsonNumber(149)
				m["events"].(map[string]any)["filtered"] = jsonNumber(1)
				m["filter"] = map[string]any{"includeTypes": []any{"x"}}
			})
		}, nil, `archives do not form a chain: .*b after .*a: links to last token 148, but .*a ends at 149`},
		{"wrong-order", nil, func(a, b string) []string { return []string{b, a} }, `archives do not form a chain: .*a after .*b: not an incremental archive`},
		{"same-archive-twice", nil, func(a, b string) []string { return []string{a, b, b} }, `archives do not form a chain: .*b after .*b: links to fingerprint`},
		{"other-context", func(h *hostile) {
			h.editManifest(func(m map[string]any) { m["source"].(map[string]any)["context"] = "other" })
		}, nil, `archives do not form a chain: .*b after .*a: context "other", but .*a has "default"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			sandbox := t.TempDir()
			h := &hostile{t: t, dir: filepath.Join(sandbox, "b")}
			require.NoError(t, os.CopyFS(h.dir, os.DirFS(b)))
			if c.edit != nil {
				c.edit(h)
			}
			args := []string{a, h.dir}
			if c.order != nil {
				args = c.order(a, h.dir)
			}
			before := snapshotFiles(t, sandbox)
			r := run(t, plain(t), nil, append([]string{"verify"}, args...)...)
			requireCode(t, r, 3)
			require.Regexp(t, c.want, r.Stderr, r)
			target := fmt.Sprintf("chain-%d", i)
			r = run(t, plain(t), nil, append([]string{"import", "--server", srv.Addr(), "--context", target}, args...)...)
			requireCode(t, r, 3)
			require.Regexp(t, c.want, r.Stderr, r)
			require.NotContains(t, r.Stderr, "chain: archives do not form a chain", "the cause is said once")
			require.Zero(t, srv.EventCount(target), "import sent events")
			r = run(t, plain(t), nil, append([]string{"diff", "--server", srv.Addr(), "--context", srcContext}, args...)...)
			requireCode(t, r, 3)
			require.Regexp(t, c.want, r.Stderr, r)
			require.Equal(t, before, snapshotFiles(t, sandbox))
		})
	}

	t.Run("incremental-alone", func(t *testing.T) {
		r := run(t, plain(t), nil, "import", "--server", srv.Addr(), "--context", "chain-alone", b)
		requireCode(t, r, 1)
		require.Contains(t, r.Stderr, "is an incremental archive: it starts at token 150 and continues the archive with fingerprint "+aFingerprint, r)
		require.Regexp(t, `axarchive: hint: import the chain in one command, oldest first: axarchive import \[flags\] ARCHIVE_`+aFingerprint[:8]+`… .*b`, r.Stderr, r)
		require.Zero(t, srv.EventCount("chain-alone"))
	})
}
