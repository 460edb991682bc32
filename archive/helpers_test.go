package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive/internal/zstdframe"
)

// testCreated is the creation time of every test archive, so that manifests are reproducible.
var testCreated = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// edgeEvents returns events that cover every edge of the record encoding, at tokens from first on.
func edgeEvents(first int64) []Record {
	bin := []byte{0x00, 0xff, 0xfe, 0x80, 'a', 0xc3} // not UTF-8
	evs := []Record{
		{ // a full domain event with every metadata kind
			MessageID: "5f0c4d1e-8a53-4c9b-9a51-0d7f3e2b1a00", AggregateID: "order-1", AggregateType: "Order", Sequence: 0,
			Timestamp: 1714564800123,
			Payload:   &Object{Type: "com.example.OrderPlaced", Revision: "1", Data: []byte(`{"id":"order-1","note":"<b>&amp;</b> ünïcödé ✓"}`)},
			Metadata: []Meta{
				{Key: "traceId", Kind: MetaText, Text: "abc"},
				{Key: "max", Kind: MetaNumber, Number: math.MaxInt64},
				{Key: "min", Kind: MetaNumber, Number: math.MinInt64},
				{Key: "zero", Kind: MetaNumber, Number: 0},
				{Key: "yes", Kind: MetaBoolean, Boolean: true},
				{Key: "no", Kind: MetaBoolean, Boolean: false},
				{Key: "pi", Kind: MetaDouble, Double: 3.141592653589793},
				{Key: "nan", Kind: MetaDouble, Double: math.Float64frombits(0x7ff8000000000000)},
				{Key: "nan2", Kind: MetaDouble, Double: math.Float64frombits(0x7ff0000000000001)},
				{Key: "inf", Kind: MetaDouble, Double: math.Inf(1)},
				{Key: "-inf", Kind: MetaDouble, Double: math.Inf(-1)},
				{Key: "negzero", Kind: MetaDouble, Double: math.Copysign(0, -1)},
				{Key: "zerod", Kind: MetaDouble, Double: 0},
				{Key: "tiny", Kind: MetaDouble, Double: 5e-324},
				{Key: "huge", Kind: MetaDouble, Double: math.MaxFloat64},
				{Key: "big", Kind: MetaDouble, Double: 1e21},
				{Key: "bytes", Kind: MetaBytes, Bytes: Object{Type: "com.example.Blob", Revision: "2", Data: bin}},
				{Key: "bytesText", Kind: MetaBytes, Bytes: Object{Type: "", Revision: "", Data: []byte("plain")}},
				{Key: "none", Kind: MetaNone},
			},
		},
		{MessageID: "", Timestamp: 0}, // empty message id, non-domain, no payload, epoch
		{MessageID: "m2", AggregateID: "order-1", AggregateType: "Order", Sequence: 1, Timestamp: 1714564800200, // binary payload
			Payload: &Object{Type: "com.example.Binary", Revision: "", Data: bin}},
		{MessageID: "m3 \"quoted\" \\ back", Timestamp: 1, // every escape
			Payload: &Object{Type: "com.example.Text", Revision: "v\t1", Data: []byte("tab\tnl\ncr\rbs\bff\fnul\x00us\x1fdel\x7fls\u2028ps\u2029 emoji 😀 <xml attr=\"1\">&</xml>")}},
		{MessageID: "m4", Timestamp: 2, Snapshot: true, Payload: &Object{Type: "com.example.Flagged"}}, // snapshot flag on an event
		{MessageID: "m5", Timestamp: 3, Extra: []byte{0x78, 0x01, 0x82, 0x01, 0x02, 'h', 'i'}},         // unknown protobuf fields
		{MessageID: "m6", Timestamp: -62135596800001},                                                  // before 0001-01-01
		{MessageID: "m7", Timestamp: 253402300800000},                                                  // after 9999-12-31
		{MessageID: "m8", Timestamp: math.MaxInt64},
		{MessageID: "m9", Timestamp: math.MinInt64},
		{MessageID: "m10", Timestamp: -1},                         // 1969-12-31T23:59:59.999Z
		{MessageID: "m11", AggregateType: "Orphan", Timestamp: 4}, // aggregate type only: all three written
		{MessageID: "m12", Sequence: 7, Timestamp: 5},             // sequence only
		{MessageID: "m13", AggregateID: "a", AggregateType: "A", Sequence: math.MaxInt64, Timestamp: 6, // empty payload object
			Payload: &Object{}},
		{MessageID: "m14", Timestamp: 7, Metadata: []Meta{ // duplicate and empty keys, order kept
			{Key: "k", Kind: MetaText, Text: "first"},
			{Key: "", Kind: MetaText, Text: ""},
			{Key: "k", Kind: MetaText, Text: "second"},
			{Key: "a", Kind: MetaNone},
		}},
		{MessageID: "m15", AggregateID: "neg", AggregateType: "Neg", Sequence: -1, Timestamp: 8},
	}
	for i := range evs {
		evs[i].Token = first + int64(i)
	}
	return evs
}

// plainEvents returns n ordinary events from token first on, of a few payload types.
func plainEvents(first int64, n int) []Record {
	evs := make([]Record, n)
	types := []string{"com.example.OrderPlaced", "com.example.OrderShipped", "com.example.OrderPaid"}
	for i := range evs {
		tok := first + int64(i)
		evs[i] = Record{
			Token: tok, MessageID: fmt.Sprintf("msg-%08d", tok),
			AggregateID: fmt.Sprintf("order-%d", tok%97), AggregateType: "Order", Sequence: tok / 97,
			Timestamp: 1714564800000 + tok*17,
			Payload:   &Object{Type: types[tok%3], Revision: "1", Data: []byte(fmt.Sprintf(`{"orderId":"order-%d","amount":%d,"currency":"EUR","lines":[{"sku":"SKU-%d","qty":%d}]}`, tok%97, tok*31%10007, tok%1000, tok%7+1))},
			Metadata:  []Meta{{Key: "correlationId", Kind: MetaText, Text: fmt.Sprintf("corr-%d", tok/10)}, {Key: "traceId", Kind: MetaText, Text: fmt.Sprintf("trace-%08x", tok*2654435761)}},
		}
	}
	return evs
}

func edgeSnapshots() []Record {
	return []Record{
		{Token: 0, MessageID: "s0", AggregateID: "order-1", AggregateType: "Order", Sequence: 1, Timestamp: 1714564800300,
			Payload: &Object{Type: "com.example.OrderState", Revision: "3", Data: []byte(`{"state":"placed"}`)}},
		{Token: 2, MessageID: "s2", AggregateID: "a", AggregateType: "A", Sequence: 9, Timestamp: 9, Snapshot: true,
			Payload: &Object{Type: "com.example.AState", Data: []byte{0xff}}},
		{Token: 5, MessageID: "", AggregateID: "neg", AggregateType: "Neg", Sequence: 0, Timestamp: -62135596800001,
			Metadata: []Meta{{Key: "d", Kind: MetaDouble, Double: math.Copysign(0, -1)}}},
	}
}

func testOptions(first, last int64) Options {
	return Options{
		Source:  manifest.Source{Kind: manifest.SourceSegments, Path: "/var/lib/axonserver/events", Context: "default"},
		Range:   manifest.Range{First: first, Last: last},
		Tool:    "axarchive test",
		Created: testCreated,
		NoSync:  true,
	}
}

// writeArchive writes a complete archive of the given records.
func writeArchive(t testing.TB, dir string, opts Options, events, snapshots []Record) {
	t.Helper()
	w, err := Create(dir, opts)
	require.NoError(t, err)
	for i := range events {
		require.NoError(t, w.WriteEvent(&events[i]))
	}
	require.NoError(t, w.FinishEvents())
	for i := range snapshots {
		require.NoError(t, w.WriteSnapshot(&snapshots[i]))
	}
	require.NoError(t, w.Close())
}

// readAll returns every line of a stream, verified.
func readAll(t testing.TB, a *Archive, stream string) []string {
	t.Helper()
	it := a.Events(context.Background(), math.MinInt64)
	if stream == manifest.StreamSnapshots {
		it = a.Snapshots(context.Background())
	}
	return readLines(t, it)
}

// readLines returns every line of it, which it closes, and fails on its error.
func readLines(t testing.TB, it *Iterator) []string {
	t.Helper()
	defer it.Close()
	var lines []string
	for it.Next() {
		lines = append(lines, string(it.Line()))
	}
	require.NoError(t, it.Err())
	return lines
}

// copyDir copies an archive directory (regular files and directories only).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}))
}

// reseal rewrites data/manifest.json after edit and regenerates the BagIt files, so that the archive is
// consistent again except for what edit made wrong: the way to forge an archive with one lie in it.
func reseal(t testing.TB, dir string, edit func(m *manifest.Manifest)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, manifestPath))
	require.NoError(t, err)
	var m manifest.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	if edit != nil {
		edit(&m)
	}
	data, err := marshalManifest(&m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, manifestPath), data, 0o644))
	for _, f := range bagFiles(&m, data) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f.Path), f.Data, 0o644))
	}
}

// rewriteChunk replaces the content of chunk i with raw (compressed as compress returns it, or by the
// writer's encoder when compress is nil) and reseals the archive so that sizes, digests, stream digests
// and fingerprint all describe the new content: only what is wrong inside raw (and the record count and
// tokens, which the manifest keeps) remains for readers to find.
func rewriteChunk(t testing.TB, dir string, i int, raw []byte, compress func([]byte) []byte) {
	t.Helper()
	if compress == nil {
		compress = zstdCompress
	}
	zb := compress(raw)
	reseal(t, dir, func(m *manifest.Manifest) {
		c := &m.Chunks[i]
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(archivePath(c.Path))), zb, 0o644))
		c.Size = int64(len(zb))
		c.SHA256 = sha256hex(zb)
		c.RawSize = int64(len(raw))
		c.RawSHA256 = sha256hex(raw)
		restreamDigests(t, dir, m, i, raw)
	})
}

// restreamDigests recomputes the stream digests and fingerprint of m, with chunk i's content replaced.
func restreamDigests(t testing.TB, dir string, m *manifest.Manifest, replaced int, raw []byte) {
	fp := new(Fingerprint)
	for j := range m.Chunks {
		c := &m.Chunks[j]
		content := raw
		if j != replaced {
			zb, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(archivePath(c.Path))))
			require.NoError(t, err)
			content = zstdDecompress(t, zb)
		}
		if c.Stream == manifest.StreamEvents {
			fp.WriteEventLine(content)
		} else {
			fp.WriteSnapshotLine(content)
		}
	}
	m.Events.SHA256, m.Snapshots.SHA256, m.Fingerprint = fp.eventsDigest(), fp.snapshotsDigest(), fp.Sum()
}

func zstdCompress(raw []byte) []byte {
	enc, err := zstdframe.NewEncoder(3)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	return enc.EncodeAll(raw, nil)
}

func zstdDecompress(t testing.TB, zb []byte) []byte {
	dec, err := zstd.NewReader(nil)
	require.NoError(t, err)
	defer dec.Close()
	raw, err := dec.DecodeAll(zb, nil)
	require.NoError(t, err)
	return raw
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// chunkRaw returns the decompressed content of chunk i.
func chunkRaw(t testing.TB, dir string, i int) []byte {
	t.Helper()
	a := mustOpen(t, dir)
	zb, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(archivePath(a.Manifest().Chunks[i].Path))))
	require.NoError(t, err)
	return zstdDecompress(t, zb)
}

// eventsDigest returns E in lower-case hex.
func (f *Fingerprint) eventsDigest() string { return hexSum(f.events) }

// snapshotsDigest returns S in lower-case hex.
func (f *Fingerprint) snapshotsDigest() string { return hexSum(f.snapshots) }
