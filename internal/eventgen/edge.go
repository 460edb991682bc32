package eventgen

import (
	"bytes"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// EdgeCases returns a fixed list of events, in store order, that holds every edge value an export and an
// import must carry byte for byte: empty and non-ASCII message ids, timestamps 0, -1 and the int64 limits,
// events without payload, with an empty payload type, with empty or binary or large data, revisions set
// and unset, every metadata value of edgeMeta (int64 limits, NaN, ±Inf, −0, the smallest double, empty
// strings and keys, "no value", bytes values with and without content) alone and all together in
// insertion order, a domain event with an empty aggregate id, non-domain events carrying any aggregate id
// and sequence (negative and the int64 limit included), NaNs with other bits, a field unknown to this API
// version (kept last, as the server re-serializes it), and an event stored with the snapshot flag. Its
// domain events form valid sequences from 0 (aggregate ids start with "edge-", which Generator never
// uses), so a server that validates sequences (AXON.md 2.3) accepts the list as one transaction, on an
// empty store or after any generated events.
func EdgeCases() [][]byte {
	var out [][]byte
	seq := map[string]int64{}
	domain := func(id, typ string, e Event) {
		e.AggregateID, e.AggregateType, e.AggregateSequence = id, typ, seq[id]
		seq[id]++
		out = append(out, Encode(&e))
	}
	other := func(e Event) { out = append(out, Encode(&e)) }
	const order = "edge-order-1"

	domain(order, "Order", Event{MessageID: "", Timestamp: 1672628645000, PayloadType: "com.example.OrderPlaced", PayloadData: []byte("<placed/>")})
	domain(order, "Order", Event{MessageID: "ä-ü-✓-🚚", Timestamp: 0, PayloadType: "com.example.Empty"})
	domain(order, "Order", Event{MessageID: "ts-minus-one", Timestamp: -1, PayloadType: "t", PayloadRevision: "1", PayloadData: []byte("{}")})
	domain(order, "Order", Event{MessageID: "ts-max", Timestamp: math.MaxInt64, PayloadType: "t", PayloadRevision: "", PayloadData: []byte{0}})
	domain(order, "Order", Event{MessageID: "ts-min", Timestamp: math.MinInt64, PayloadType: "[B", PayloadData: []byte{0x80, 0xff, 0xfe, 0x00, 0x0a}})
	domain(order, "Order", Event{MessageID: "no-payload", Timestamp: 1})
	domain(order, "Order", Event{MessageID: "empty-type", Timestamp: 2, PayloadData: []byte("data without a type")})
	domain(order, "Order", Event{MessageID: "revision-only", Timestamp: 3, PayloadRevision: "7"})
	domain(order, "Order", Event{MessageID: "large", Timestamp: 4, PayloadType: "blob", PayloadData: bytes.Repeat([]byte("0123456789abcdef"), 8192)})
	domain(order, "Order", Event{MessageID: "text-edges", Timestamp: 5, PayloadType: "t",
		PayloadData: []byte("line\nbreak\ttab \"quote\" \\backslash <tag> & amp \u2028 \u0000 nul")})
	for i, m := range edgeMeta {
		domain("edge-meta-"+strings.Repeat("x", i%3), "Meta", Event{MessageID: "meta-" + m.Key, Timestamp: int64(1000 + i),
			PayloadType: "t", PayloadData: []byte("<m/>"), Metadata: []Meta{m}})
	}
	all := slices.Clone(edgeMeta)
	slices.Reverse(all) // insertion order, not sorted
	domain(order, "Order", Event{MessageID: "all-meta", Timestamp: 6, PayloadType: "t", PayloadData: []byte("<all/>"), Metadata: all})
	domain("", "Anonymous", Event{MessageID: "empty-aggregate-id", Timestamp: 7, PayloadType: "t"})
	domain("edge-ünïcödé/id with spaces", "类型", Event{MessageID: "unicode-aggregate", Timestamp: 8, PayloadType: "com.example.Ereignis€"})

	other(Event{MessageID: "non-domain", Timestamp: 9, PayloadType: "com.example.Notification", PayloadData: []byte("<n/>")})
	other(Event{MessageID: "non-domain-with-id", AggregateID: order, AggregateSequence: 99, Timestamp: 10, PayloadType: "t"})
	other(Event{MessageID: "non-domain-negative-seq", AggregateID: "saga-1", AggregateSequence: -1, Timestamp: 11, PayloadType: "t"})
	other(Event{MessageID: "non-domain-max-seq", AggregateID: "saga-1", AggregateSequence: math.MaxInt64, Timestamp: 12, PayloadType: "t"})
	other(Event{})
	// A NaN with other bits than Java's Double.NaN, and a field this API version does not know (a newer
	// client's), which the server keeps and writes after the known fields.
	domain(order, "Order", Event{MessageID: "nan-bits", Timestamp: 14, PayloadType: "t",
		Metadata: []Meta{{Key: "signalingNaN", Kind: Double, Double: math.Float64frombits(0x7ff0000000000001)}, {Key: "negNaN", Kind: Double, Double: math.Float64frombits(0xfff8000000000000)}}})
	unknown := Encode(&Event{MessageID: "unknown-field", AggregateID: order, AggregateSequence: seq[order], AggregateType: "Order", Timestamp: 15, PayloadType: "t"})
	seq[order]++
	unknown = protowire.AppendTag(unknown, 100, protowire.VarintType)
	out = append(out, protowire.AppendVarint(unknown, 42))
	domain(order, "Order", Event{MessageID: "snapshot-flag", Timestamp: 13, PayloadType: "t", Snapshot: true})
	return out
}

// EdgeSnapshots returns snapshots of the aggregates of EdgeCases, in the order an application would store
// them, each at most its aggregate's last sequence in EdgeCases: for the order aggregate several (the
// newest with every metadata edge value), and one of an aggregate with an empty id. The snapshot flag is
// unset, as on disk.
func EdgeSnapshots() [][]byte {
	const order = "edge-order-1"
	return [][]byte{
		Encode(&Event{MessageID: "snap-0", AggregateID: order, AggregateSequence: 0, AggregateType: "Order", Timestamp: 100, PayloadType: "Order", PayloadData: []byte("<order v='0'/>")}),
		Encode(&Event{MessageID: "", AggregateID: order, AggregateSequence: 5, AggregateType: "Order", Timestamp: 0, PayloadType: "Order"}),
		Encode(&Event{MessageID: "snap-same-seq", AggregateID: order, AggregateSequence: 5, AggregateType: "Order", Timestamp: -1, PayloadType: "Order", PayloadRevision: "2", PayloadData: []byte{0xff, 0x00}}),
		Encode(&Event{MessageID: "snap-meta", AggregateID: order, AggregateSequence: 10, AggregateType: "Order", Timestamp: math.MaxInt64, PayloadType: "Order", PayloadData: []byte("<order/>"), Metadata: edgeMeta}),
		Encode(&Event{MessageID: "snap-anon", AggregateID: "", AggregateSequence: 0, AggregateType: "Anonymous", Timestamp: 7, PayloadType: "Anonymous"}),
	}
}
