package reader

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzSeeds are small seeds from the real fixtures: both legacy files whole, and the first bytes of a
// version-2 events file and a snapshots file, so the cut lands inside a block. The same seeds are committed
// under testdata/fuzz/FuzzSegment.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	tb.Helper()
	read := func(dir, name string, n int) []byte {
		b, err := os.ReadFile(filepath.Join(fixture(dir), name))
		require.NoError(tb, err)
		if n > 0 && n < len(b) {
			b = b[:n]
		}
		return b
	}
	return map[string][]byte{
		"legacy-0":           read("legacy-v0", "00000000000000000000.events", 0),
		"legacy-14":          read("legacy-v0", "00000000000000000014.events", 0),
		"three-segments-cut": read("three-segments", "00000000000000000924.events", 2000),
		"snapshots-cut":      read("snapshots", "00000000000000000462.snapshots", 1500),
		"header-only":        {2, 0, 0, 0, 0},
	}
}

// FuzzSegment feeds arbitrary bytes to the block scanner, as the newest file and as an older one. It must
// never panic, never hand out bytes that are not in the input, and never grow a buffer beyond what the input
// could fill.
func FuzzSegment(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	// One scanner for all inputs, as an iterator reuses one for all files: stale state must not leak
	// from one file into the next.
	sc := &scanner{maxBlock: DefaultMaxBlockSize}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newest := range []bool{false, true} {
			sc.buf = nil // measure this input's growth alone
			file := SegmentFile{Path: "fuzz.events", Name: "00000000000000000100.events", Kind: EventSegments, First: 100}
			err := sc.start(bytes.NewReader(data), int64(len(data)), file, newest)
			var n int64
			for err == nil {
				var ok bool
				if ok, err = sc.nextBlock(); !ok {
					break
				}
				for k := range sc.entries {
					ev, off := sc.event(k)
					end := off + 4 + int64(len(ev))
					require.LessOrEqual(t, end, int64(len(data)))
					require.Equal(t, data[off+4:end], ev)
				}
				n += int64(len(sc.entries))
				require.Equal(t, 100+n, sc.next)
			}
			require.LessOrEqual(t, cap(sc.buf), 2*max(len(data), 4<<10), "buffer grown beyond the input")
			if err != nil {
				var se *SegmentError
				require.ErrorAs(t, err, &se)
				require.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrChecksum) || errors.Is(err, ErrTruncated) ||
					errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge), "unexpected cause: %v", err)
				require.Nil(t, sc.cut)
				require.LessOrEqual(t, se.Offset, int64(len(data)))
				continue
			}
			if sc.cut != nil {
				require.True(t, newest, "only the newest file may be cut")
				require.Equal(t, sc.next, sc.cut.Token)
				require.LessOrEqual(t, sc.cut.Offset, int64(len(data)))
				continue
			}
			require.Contains(t, []EndState{EndActive, EndClosed, EndNoMarker}, sc.end)
		}
	})
}
