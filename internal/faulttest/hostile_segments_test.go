package faulttest

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/segmenttest"
)

// allocated returns the bytes fn allocates (the Go heap's total, so it counts what was freed again).
func allocated(fn func()) int64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// segHeader is a version-2 segment file header; blockHeader the 7 bytes before a block's entries.
func segHeader() []byte { return []byte{2, 0, 0, 0, 0} }

func blockHeader(size int32, count int16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(size))
	b = append(b, 2)
	return binary.BigEndian.AppendUint16(b, uint16(count))
}

// readSegments reads a segment store every way the program does: both iterators to their end and the
// backup checker. It returns the first error of the iterators.
func readSegments(t testing.TB, opts reader.SegmentsOptions) error {
	t.Helper()
	s, err := reader.OpenSegments(opts)
	if err != nil {
		return err
	}
	ev := s.Events(context.Background(), 0)
	for ev.Next() {
	}
	firstErr := ev.Err()
	ev.Close()
	sn := s.Snapshots(context.Background())
	for sn.Next() {
	}
	if firstErr == nil {
		firstErr = sn.Err()
	}
	sn.Close()
	_, err = reader.CheckSegments(opts)
	require.NoError(t, err, "the checker reports damage, it does not fail on it")
	return firstErr
}

// hostileSegment is a segment file whose sizes or counts claim far more than it holds.
type hostileSegment struct {
	name  string
	kind  string // segmenttest.Events or segmenttest.Snapshots
	bytes func() []byte
	size  int64 // if larger than the bytes: extend the file (sparsely) to this size
	max   int64 // SegmentsOptions.MaxBlockSize
}

// readBuffer is the reader's bufio buffer per scanner (internal/reader readBufferSize).
const readBuffer = 1 << 20

// allocationBound is what reading a store may allocate: per scanner (two iterators and the checker) its
// read buffer and one block buffer no larger than the bytes in the files and the block size limit, plus
// bookkeeping.
func allocationBound(fileBytes, maxBlock int64) int64 {
	if maxBlock == 0 {
		maxBlock = reader.DefaultMaxBlockSize
	}
	return 3 * (readBuffer + min(fileBytes, maxBlock) + 64<<10)
}

func hostileSegments() []hostileSegment {
	junk := make([]byte, 100)
	return []hostileSegment{
		{name: "block-of-2GiB-in-a-tiny-file", kind: segmenttest.Events, bytes: func() []byte {
			return append(append(segHeader(), blockHeader(0x7ffffff0, 32767)...), junk...)
		}},
		{name: "snapshot-block-of-2GiB-in-a-tiny-file", kind: segmenttest.Snapshots, bytes: func() []byte {
			return append(append(segHeader(), blockHeader(0x7ffffff0, 1)...), junk...)
		}},
		{name: "event-of-2GiB", kind: segmenttest.Events, bytes: func() []byte {
			b := append(segHeader(), blockHeader(104, 1)...)
			b = binary.BigEndian.AppendUint32(b, 0x7fffffff)
			return append(b, junk...)
		}},
		{name: "32767-events-in-8-bytes", kind: segmenttest.Events, bytes: func() []byte {
			entries := []byte{0, 0, 0, 0, 0, 0, 0, 0}
			b := append(append(segHeader(), blockHeader(8, 32767)...), entries...)
			b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(entries))
			return append(b, 0, 0, 0, 0)
		}},
		{name: "block-of-2GiB-in-a-sparse-1GiB-file", kind: segmenttest.Events, size: 1 << 30, max: 1 << 20, bytes: func() []byte {
			return append(segHeader(), blockHeader(0x7ffffff0, 1)...)
		}},
	}
}

// TestHostileSegmentsAllocation: a segment file whose block sizes, event counts or event lengths claim up to
// 2 GiB makes the reader fail (or cut the newest file's tail) after allocating no more than the bytes the
// file holds, capped by SegmentsOptions.MaxBlockSize: numbers read from the file never size an allocation
// unchecked. Each file is read as the newest of its store (where a cut block may end the data) and as an
// older one (followed by a good file, where it is damage).
func TestHostileSegmentsAllocation(t *testing.T) {
	for _, c := range hostileSegments() {
		for _, newest := range []bool{true, false} {
			name := c.name + "/older"
			if newest {
				name = c.name + "/newest"
			}
			t.Run(name, func(t *testing.T) {
				dir := writeHostileStore(t, c, newest)
				opts := reader.SegmentsOptions{Dir: dir, MaxBlockSize: c.max}
				var err error
				n := allocated(func() { err = readSegments(t, opts) })
				t.Logf("allocated %d KiB; %v", n>>10, err)
				size := fileSize(t, dir)
				require.Less(t, n, allocationBound(size, c.max), "bytes allocated reading %d bytes of files", size)
				if !newest {
					var se *reader.SegmentError
					require.ErrorAs(t, err, &se, "damage in an older file is an error")
				}
			})
		}
	}
}

// TestLongHostileSegmentsDefaultLimit: with the default MaxBlockSize (256 MiB) a sparse file claiming a 2 GiB
// block costs at most that limit, not what the file claims.
func TestLongHostileSegmentsDefaultLimit(t *testing.T) {
	long(t)
	c := hostileSegments()[4]
	c.max = 0
	dir := writeHostileStore(t, c, true)
	n := allocated(func() { _ = readSegments(t, reader.SegmentsOptions{Dir: dir}) })
	t.Logf("allocated %d MiB", n>>20)
	require.Less(t, n, allocationBound(fileSize(t, dir), 0))
}

// TestHostileSegmentsCLI: `axarchive segments` and `axarchive export --segments` on such files fail with a
// clear error naming the file (exit 3), within their deadline. (A child's peak RSS cannot be measured
// here: Linux carries the forking test process's high-water mark into it; TestHostileSegmentsAllocation
// measures the same reading in process.)
func TestHostileSegmentsCLI(t *testing.T) {
	for _, c := range hostileSegments()[:4] {
		t.Run(c.name, func(t *testing.T) {
			dir := writeHostileStore(t, c, false)
			r := run(t, plain(t), nil, "segments", dir)
			requireCode(t, r, 3)
			out := filepath.Join(t.TempDir(), "a")
			r = run(t, plain(t), nil, "export", "--segments", dir, "-o", out)
			requireCode(t, r, 3)
			require.Regexp(t, `axarchive: error: .*0000000000000000000[01]\.(events|snapshots)`, r.Stderr, r)
			// The damage is met after the archive was started: what the run wrote goes, a directory
			// it made with it, the content of an empty one it was given.
			require.Contains(t, r.Stderr, out+", which this run created, was removed", r)
			require.NoDirExists(t, out)
			given := filepath.Join(t.TempDir(), "given")
			require.NoError(t, os.Mkdir(given, 0o755))
			requireCode(t, run(t, plain(t), nil, "export", "--segments", dir, "-o", given), 3)
			entries, err := os.ReadDir(given)
			require.NoError(t, err)
			require.Empty(t, entries)
		})
	}
}

// writeHostileStore writes c as file 0 of a store; unless newest, a good file follows it.
func writeHostileStore(t *testing.T, c hostileSegment, newest bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "default")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, segmenttest.Name(0, c.kind))
	require.NoError(t, os.WriteFile(path, c.bytes(), 0o644))
	if c.size > 0 {
		require.NoError(t, os.Truncate(path, c.size))
	}
	if !newest {
		ev := segmenttest.SampleEvent(nil, 1, 10)
		_, err := segmenttest.WriteSegment(filepath.Join(dir, segmenttest.Name(1, c.kind)), 2, [][][]byte{{ev}}, nil)
		require.NoError(t, err)
	}
	return dir
}

func fileSize(t *testing.T, dir string) int64 {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		n += fi.Size()
	}
	return n
}

// TestHostileRecordsAllocation: a protobuf Event whose length prefixes claim 2^62 bytes, and an archive
// manifest whose counts and sizes claim 10^15 records, are refused without allocating what they claim.
func TestHostileRecordsAllocation(t *testing.T) {
	t.Run("protobuf-length", func(t *testing.T) {
		for _, field := range []protowire.Number{1, 2, 6, 7} {
			b := protowire.AppendTag(nil, field, protowire.BytesType)
			b = protowire.AppendVarint(b, 1<<62)
			b = append(b, "short"...)
			var err error
			var r archive.Record
			n := allocated(func() { err = codec.Decode(b, &r) })
			require.Error(t, err, "field %d", field)
			require.Less(t, n, int64(64<<10), "field %d", field)
		}
	})
	t.Run("manifest-counts", func(t *testing.T) {
		srv := newServer(t, 200, 52)
		h := &hostile{t: t, dir: hostileBase(t, srv)}
		const claimed = 1_000_000_000_000_000
		h.editManifest(func(m map[string]any) {
			ev := m["events"].(map[string]any)
			extra := claimed - num(ev["count"])
			ev["count"] = jsonInt(claimed)
			ev["lastToken"] = jsonInt(claimed - 1)
			tc := ev["types"].([]any)[0].(map[string]any)
			tc["count"] = jsonInt(num(tc["count"]) + extra)
			c := entry(m, h.last("events"))
			c["records"] = jsonInt(num(c["records"]) + extra)
			c["last"] = jsonInt(claimed - 1)
			c["rawSize"] = jsonInt(num(c["rawSize"]) * 1_000_000_000_000)
		})
		var err error
		n := allocated(func() {
			a, oerr := archive.Open(h.dir)
			if oerr != nil {
				err = oerr
				return
			}
			_, err = a.Verify(context.Background(), archive.VerifyOptions{})
		})
		t.Logf("allocated %d MiB: %v", n>>20, err)
		require.Error(t, err)
		require.Less(t, n, int64(64<<20))
	})
}

func jsonInt(n int64) any { return jsonNumber(n) }
