package reader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/internal/segmenttest"
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
		// A block whose checksum matches but whose event is not a protobuf Event.
		"crc-valid-garbage":           hostileBlockFile([][]byte{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, false),
		"crc-valid-length-past-event": hostileBlockFile([][]byte{{0x0a, 0x7f, 'a'}}, false),
		// A final block torn by a power cut: size and count written, the rest zeros.
		"torn-final-block": hostileBlockFile([][]byte{{0x0a, 0x01, 'a'}, {0x0a, 0x01, 'b'}}, true),
	}
}

// hostileBlockFile is a version-2 file of one block holding events, with its checksum computed, and 64 zero
// bytes after it (pre-allocated space); torn zeroes the block from its second entry on, checksum included.
func hostileBlockFile(events [][]byte, torn bool) []byte {
	b := []byte{2, 0, 0, 0, 0}
	size := 0
	for _, e := range events {
		size += 4 + len(e)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = append(b, 2)
	b = binary.BigEndian.AppendUint16(b, uint16(len(events)))
	entries := len(b)
	for _, e := range events {
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[entries:]))
	if torn {
		clear(b[entries+4+len(events[0]):])
	}
	return append(b, make([]byte, 64)...)
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

// TestHostileBlocks: a block whose checksum matches but whose event is no protobuf Event is damage in any
// file, with offset and token; a torn final block is a cut tail in the newest file and damage in an older one.
func TestHostileBlocks(t *testing.T) {
	scan := func(data []byte, newest bool) (*scanner, error) {
		sc := &scanner{maxBlock: DefaultMaxBlockSize}
		file := SegmentFile{Path: "x.events", Name: "00000000000000000100.events", Kind: EventSegments, First: 100}
		err := sc.start(bytes.NewReader(data), int64(len(data)), file, newest)
		for err == nil {
			var ok bool
			if ok, err = sc.nextBlock(); !ok {
				break
			}
		}
		return sc, err
	}
	seeds := fuzzSeeds(t)
	for _, name := range []string{"crc-valid-garbage", "crc-valid-length-past-event"} {
		for _, newest := range []bool{false, true} {
			_, err := scan(seeds[name], newest)
			var se *SegmentError
			require.ErrorAs(t, err, &se, name)
			require.ErrorIs(t, err, ErrCorrupt)
			require.Contains(t, err.Error(), "not a valid protobuf Event")
			require.Equal(t, int64(100), se.Token)
			require.Equal(t, int64(12), se.Offset, "the event's length prefix")
		}
	}
	sc, err := scan(seeds["torn-final-block"], true)
	require.NoError(t, err)
	require.NotNil(t, sc.cut)
	require.Equal(t, int64(100), sc.cut.Token)
	require.Equal(t, int64(5), sc.cut.Offset)
	_, err = scan(seeds["torn-final-block"], false)
	require.ErrorIs(t, err, ErrCorrupt)
}

// BenchmarkCheckEvent: the wire check every event of a verified block gets (a realistic event: ids,
// aggregate, a 200-byte payload, two metadata entries).
func BenchmarkCheckEvent(b *testing.B) {
	ev := protowire.AppendTag(nil, 1, protowire.BytesType)
	ev = protowire.AppendString(ev, "0a311055-3988-43a1-bf08-3879f01dd6d8")
	ev = protowire.AppendTag(ev, 2, protowire.BytesType)
	ev = protowire.AppendString(ev, "22258d54-10e1-436b-8c12-011be9174c98")
	ev = protowire.AppendTag(ev, 3, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 12)
	ev = protowire.AppendTag(ev, 5, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 1672628652031)
	payload := protowire.AppendTag(nil, 1, protowire.BytesType)
	payload = protowire.AppendString(payload, "com.example.logistics.api.ShipmentCreatedEvent")
	payload = protowire.AppendTag(payload, 3, protowire.BytesType)
	payload = protowire.AppendBytes(payload, make([]byte, 200))
	ev = protowire.AppendTag(ev, 6, protowire.BytesType)
	ev = protowire.AppendBytes(ev, payload)
	for range 2 {
		value := protowire.AppendTag(nil, 1, protowire.BytesType)
		value = protowire.AppendString(value, "b9532839-9111-4ead-86ee-ffdbf0c521df")
		entry := protowire.AppendTag(nil, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, "traceId")
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, value)
		ev = protowire.AppendTag(ev, 7, protowire.BytesType)
		ev = protowire.AppendBytes(ev, entry)
	}
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if err := checkEvent(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceCheck is checkEvent written with protowire's generic functions only.
func referenceCheck(b []byte, nested map[protowire.Number]any) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			if sub, ok := nested[num]; ok && !referenceCheck(v, sub.(map[protowire.Number]any)) {
				return false
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return true
}

var referenceEvent = func() map[protowire.Number]any {
	object := map[protowire.Number]any{}
	value := map[protowire.Number]any{5: object}
	entry := map[protowire.Number]any{2: value}
	return map[protowire.Number]any{6: object, 7: entry}
}()

// FuzzCheckEvent: the wire check of verified blocks (with its fast paths) accepts exactly what a check
// written with protowire's generic functions accepts, and never panics.
func FuzzCheckEvent(f *testing.F) {
	f.Add(segmenttest.SampleEvent(nil, 7, 20))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x0a, 0x7f, 'a'})
	f.Add([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})
	f.Add([]byte{0x3a, 0x04, 0x12, 0x02, 0x2a, 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := checkEvent(b) == nil, referenceCheck(b, referenceEvent); got != want {
			t.Fatalf("checkEvent accepts=%v, reference %v, for %x (%v)", got, want, b, checkEvent(b))
		}
	})
}
