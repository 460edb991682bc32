package codec

import (
	"encoding/hex"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonpb"
)

func text(s string) *axonpb.MetaDataValue {
	return &axonpb.MetaDataValue{Data: &axonpb.MetaDataValue_TextValue{TextValue: s}}
}
func number(n int64) *axonpb.MetaDataValue {
	return &axonpb.MetaDataValue{Data: &axonpb.MetaDataValue_NumberValue{NumberValue: n}}
}
func double(f float64) *axonpb.MetaDataValue {
	return &axonpb.MetaDataValue{Data: &axonpb.MetaDataValue_DoubleValue{DoubleValue: f}}
}
func boolean(v bool) *axonpb.MetaDataValue {
	return &axonpb.MetaDataValue{Data: &axonpb.MetaDataValue_BooleanValue{BooleanValue: v}}
}
func object(typ, rev string, data []byte) *axonpb.MetaDataValue {
	return &axonpb.MetaDataValue{Data: &axonpb.MetaDataValue_BytesValue{BytesValue: &axonpb.SerializedObject{Type: typ, Revision: rev, Data: data}}}
}

// canonicalEvents are events as Axon Server would store them; Go's deterministic marshalling writes the
// same canonical form as Java (with sorted map keys).
var canonicalEvents = []struct {
	name string
	ev   *axonpb.Event
}{
	{"empty event", &axonpb.Event{}},
	{"legacy fixture shape", &axonpb.Event{AggregateIdentifier: "agg-1", Payload: &axonpb.SerializedObject{Type: "MyType", Revision: "1", Data: []byte("{}")}}},
	{"domain event", &axonpb.Event{MessageIdentifier: "9b0c6e0e-2d1b-4d4e-8d43-0a5f2d3c1b7a", AggregateIdentifier: "order-1",
		AggregateSequenceNumber: 41, AggregateType: "Order", Timestamp: 1700000000123,
		Payload: &axonpb.SerializedObject{Type: "com.example.OrderPlaced", Revision: "2", Data: []byte(`<com.example.OrderPlaced><id>1</id><note>&lt;x&gt; "q" \ é</note></com.example.OrderPlaced>`)}}},
	{"empty payload message", &axonpb.Event{MessageIdentifier: "m", Payload: &axonpb.SerializedObject{}}},
	{"binary payload", &axonpb.Event{Payload: &axonpb.SerializedObject{Type: "bin", Data: []byte{0xff, 0xfe, 0, 1, 0x80}}}},
	{"control characters", &axonpb.Event{Payload: &axonpb.SerializedObject{Data: []byte("a\x00b\x1fc\r\n\t\b\f\x7f\u2028")}}},
	{"negative values", &axonpb.Event{AggregateSequenceNumber: -1, Timestamp: math.MinInt64}},
	{"extreme values", &axonpb.Event{AggregateSequenceNumber: math.MaxInt64, Timestamp: math.MaxInt64}},
	{"snapshot flag", &axonpb.Event{AggregateIdentifier: "a", AggregateType: "T", Snapshot: true, Payload: &axonpb.SerializedObject{Type: "S"}}},
	{"every metadata kind", &axonpb.Event{MessageIdentifier: "m", MetaData: map[string]*axonpb.MetaDataValue{
		"":        text(""),
		"text":    text("héllo <&>"),
		"min":     number(math.MinInt64),
		"max":     number(math.MaxInt64),
		"zero":    number(0),
		"true":    boolean(true),
		"false":   boolean(false),
		"nan":     double(math.Float64frombits(javaNaNBits)),
		"goNaN":   double(math.NaN()),
		"inf":     double(math.Inf(1)),
		"-inf":    double(math.Inf(-1)),
		"negzero": double(math.Copysign(0, -1)),
		"zerod":   double(0),
		"pi":      double(math.Pi),
		"tiny":    double(math.SmallestNonzeroFloat64),
		"none":    {},
		"obj":     object("com.example.Obj", "3", []byte("<o/>")),
		"emptyo":  object("", "", nil),
		"binobj":  object("x", "", []byte{0xc3, 0x28}),
	}}},
}

const javaNaNBits = 0x7ff8000000000000

func TestRoundTripCanonical(t *testing.T) {
	for _, tc := range canonicalEvents {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.ev)
			require.NoError(t, err)

			r := archive.Record{Token: 7}
			require.NoError(t, Decode(raw, &r))
			assert.Equal(t, int64(7), r.Token, "Decode keeps the token")
			assert.Equal(t, hex.EncodeToString(raw), hex.EncodeToString(Encode(nil, &r)))
			assert.Equal(t, len(raw), Size(&r))

			// Through the archive's JSON line and back.
			line := archive.AppendEventJSON(nil, &r)
			var back archive.Record
			require.NoError(t, archive.ParseEventJSON(line, &back), "%s", line)
			assert.Equal(t, hex.EncodeToString(raw), hex.EncodeToString(Encode(nil, &back)), "%s", line)

			// And the generated code agrees on the content.
			var ev axonpb.Event
			require.NoError(t, proto.Unmarshal(Encode(nil, &back), &ev))
			assert.True(t, proto.Equal(tc.ev, &ev))
		})
	}
}

// Java keeps metadata in insertion order, not sorted: the record must keep whatever order it got.
func TestMetadataOrderKept(t *testing.T) {
	var raw []byte
	for _, kv := range []struct {
		k string
		v *axonpb.MetaDataValue
	}{{"zulu", text("z")}, {"alpha", number(1)}, {"mike", &axonpb.MetaDataValue{}}} {
		entry := protowire.AppendTag(nil, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, kv.k)
		val, err := proto.Marshal(kv.v)
		require.NoError(t, err)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendBytes(entry, val)
		raw = protowire.AppendTag(raw, 7, protowire.BytesType)
		raw = protowire.AppendBytes(raw, entry)
	}
	var r archive.Record
	require.NoError(t, Decode(raw, &r))
	require.Len(t, r.Metadata, 3)
	assert.Equal(t, []string{"zulu", "alpha", "mike"}, []string{r.Metadata[0].Key, r.Metadata[1].Key, r.Metadata[2].Key})
	assert.Equal(t, raw, Encode(nil, &r))
}

// Fields a newer server might add survive verbatim.
func TestUnknownFieldsKept(t *testing.T) {
	base, err := proto.Marshal(&axonpb.Event{MessageIdentifier: "m", Snapshot: true})
	require.NoError(t, err)
	raw := protowire.AppendTag(append([]byte(nil), base...), 9, protowire.BytesType)
	raw = protowire.AppendString(raw, "future")
	raw = protowire.AppendTag(raw, 12, protowire.VarintType)
	raw = protowire.AppendVarint(raw, 300)
	var r archive.Record
	require.NoError(t, Decode(raw, &r))
	assert.NotEmpty(t, r.Extra)
	assert.Equal(t, raw, Encode(nil, &r))

	line := archive.AppendEventJSON(nil, &r)
	var back archive.Record
	require.NoError(t, archive.ParseEventJSON(line, &back))
	assert.Equal(t, raw, Encode(nil, &back))
}

func TestNotCanonicalRefused(t *testing.T) {
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(nil, num, protowire.BytesType), s)
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	entry := func(body []byte) []byte { return protowire.AppendBytes(tag(nil, 7, protowire.BytesType), body) }
	cases := []struct {
		name string
		raw  []byte
	}{
		{"fields out of order", cat(str(2, "a"), str(1, "m"))},
		{"field repeated", cat(str(1, "a"), str(1, "b"))},
		{"empty string written", str(1, "")},
		{"zero varint written", protowire.AppendVarint(tag(nil, 3, protowire.VarintType), 0)},
		{"non-minimal varint", append(tag(nil, 3, protowire.VarintType), 0x81, 0x00)},
		{"non-minimal tag", []byte{0x8a, 0x00, 0x01, 'm'}},
		{"boolean 2", protowire.AppendVarint(tag(nil, 8, protowire.VarintType), 2)},
		{"invalid UTF-8 string", str(1, "\xff")},
		{"wrong wire type", protowire.AppendFixed64(tag(nil, 3, protowire.Fixed64Type), 1)},
		{"truncated length", []byte{0x0a, 0x05, 'a'}},
		{"truncated tag", []byte{0x80}},
		{"field zero", []byte{0x02, 0x00}},
		{"known after unknown", cat(str(9, "x"), str(1, "m"))},
		{"entry without value", entry(str(1, "k"))},
		{"entry value first", entry(cat(tag(nil, 2, protowire.BytesType), []byte{0}, str(1, "k")))},
		{"entry key omitted", entry(cat(tag(nil, 2, protowire.BytesType), []byte{0}))},
		{"two oneof members", entry(cat(str(1, "k"), protowire.AppendBytes(tag(nil, 2, protowire.BytesType), cat(str(1, "a"), str(1, "b")))))},
		{"unknown field in payload", protowire.AppendBytes(tag(nil, 6, protowire.BytesType), str(4, "x"))},
		{"empty data written in payload", protowire.AppendBytes(tag(nil, 6, protowire.BytesType), protowire.AppendBytes(tag(nil, 3, protowire.BytesType), nil))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r archive.Record
			err := Decode(tc.raw, &r)
			require.ErrorIs(t, err, ErrNotCanonical)
		})
	}
}

// FuzzDecode: whatever Decode accepts, Encode reproduces, and the archive's JSON line carries it exactly.
func FuzzDecode(f *testing.F) {
	for _, tc := range canonicalEvents {
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.ev)
		require.NoError(f, err)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r archive.Record
		if Decode(raw, &r) != nil {
			return
		}
		if got := Encode(nil, &r); string(got) != string(raw) {
			t.Fatalf("Encode(Decode(%x)) = %x", raw, got)
		}
		if Size(&r) != len(raw) {
			t.Fatalf("Size = %d, want %d", Size(&r), len(raw))
		}
		line := archive.AppendEventJSON(nil, &r)
		var back archive.Record
		if err := archive.ParseEventJSON(line, &back); err != nil {
			t.Fatalf("ParseEventJSON(%s): %v", line, err)
		}
		if got := Encode(nil, &back); string(got) != string(raw) {
			t.Fatalf("through JSON %s: %x, want %x", line, got, raw)
		}
		var ev axonpb.Event
		if err := proto.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("accepted bytes that protobuf refuses: %v", err)
		}
	})
}

func BenchmarkDecodeEncode(b *testing.B) {
	raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(canonicalEvents[2].ev)
	var r archive.Record
	var buf, line []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		_ = Decode(raw, &r)
		line = archive.AppendEventJSON(line[:0], &r)
		buf = Encode(buf[:0], &r)
	}
}
