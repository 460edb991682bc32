// Package eventgen generates realistic Axon Server events for tests and benchmarks, deterministically from
// a seed: XStream-style XML, JSON and binary payloads, aggregates with long contiguous sequences,
// non-domain events, typed metadata with edge values, and snapshots.
//
// Events come as the exact protobuf bytes of an Event message (AXON.md 1.3), encoded canonically as Go's
// deterministic marshalling or Java would write them. Metadata entries are written in insertion order for
// about half of the events (Java keeps insertion order, so real stores hold unsorted keys) and sorted by
// key for the others. A Generator is not safe for concurrent use.
package eventgen

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Options tunes a Generator. The zero value gives the default mix.
type Options struct {
	// Aggregates is how many aggregates domain events are spread over; 0 means 1000. A few aggregates get
	// most of the events, as in real stores.
	Aggregates int
	// NonDomainPercent is the share of non-domain events (empty aggregate type); 0 means 5, negative none.
	NonDomainPercent int
	// StartMillis is the timestamp around which the first event is dated; 0 means 2023-01-02T03:04:05Z.
	StartMillis int64
}

// Aggregate describes one aggregate the generator has produced events for.
type Aggregate struct {
	ID   string
	Type string
	// LastSequence is the sequence number of the aggregate's last event so far.
	LastSequence int64

	model *model
	slot  int
}

// Generator produces events. Create it with New.
type Generator struct {
	seed      uint64
	rnd       *rand.Rand
	opts      Options
	slots     []*Aggregate // by slot; nil until first used
	order     []*Aggregate // in order of creation
	now       int64
	generated int
}

// New returns a generator whose output depends only on seed and opts.
func New(seed uint64, opts Options) *Generator {
	if opts.Aggregates <= 0 {
		opts.Aggregates = 1000
	}
	if opts.NonDomainPercent == 0 {
		opts.NonDomainPercent = 5
	}
	if opts.StartMillis == 0 {
		opts.StartMillis = 1672628645000
	}
	return &Generator{
		seed:  seed,
		rnd:   rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		opts:  opts,
		slots: make([]*Aggregate, opts.Aggregates),
		now:   opts.StartMillis,
	}
}

// Next returns the encoding of the next event.
func (g *Generator) Next() []byte {
	e := g.NextEvent()
	return AppendEvent(make([]byte, 0, len(e.PayloadData)+320), &e)
}

// Generate returns the encodings of the next n events.
func (g *Generator) Generate(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

// NextEvent returns the next event as a struct; Encode gives its bytes.
func (g *Generator) NextEvent() Event {
	r := g.rnd
	g.generated++
	g.advanceClock()
	e := Event{MessageID: g.uuid(), Timestamp: g.now}
	if r.IntN(100) == 0 {
		e.MessageID = "" // Axon Server accepts, and stores, empty ids
	}
	if r.IntN(200) == 0 {
		e.Timestamp = 0
	}
	if g.opts.NonDomainPercent > 0 && r.IntN(100) < g.opts.NonDomainPercent {
		g.nonDomain(&e)
	} else {
		g.domain(&e)
	}
	e.Metadata = g.metadata()
	return e
}

// advanceClock moves time forward a little, and now and then jitters it back: timestamps are
// client-supplied and not monotonic in token order.
func (g *Generator) advanceClock() {
	g.now += int64(g.rnd.IntN(2000))
	if g.rnd.IntN(50) == 0 {
		g.now -= int64(g.rnd.IntN(5000))
	}
}

func (g *Generator) domain(e *Event) {
	r := g.rnd
	// Cubing a uniform number skews the choice towards low slots: a few hot aggregates with long histories.
	u := r.Float64()
	slot := int(u * u * u * float64(len(g.slots)))
	a := g.slots[slot]
	if a == nil {
		m := &models[r.IntN(len(models))]
		a = &Aggregate{ID: g.aggregateID(m, slot), Type: m.aggregateType, LastSequence: -1, model: m, slot: slot}
		g.slots[slot] = a
		g.order = append(g.order, a)
	}
	a.LastSequence++
	e.AggregateID = a.ID
	e.AggregateType = a.Type
	e.AggregateSequence = a.LastSequence
	var ev string
	if a.LastSequence == 0 {
		ev = a.model.created
	} else {
		ev = a.model.events[r.IntN(len(a.model.events))]
	}
	g.payload(e, a.model.pkg+"."+ev, a.model.binary && r.IntN(3) == 0)
}

func (g *Generator) nonDomain(e *Event) {
	r := g.rnd
	ev := nonDomainEvents[r.IntN(len(nonDomainEvents))]
	if r.IntN(10) == 0 {
		// A saga or process id without an aggregate type: never validated, never indexed.
		e.AggregateID = g.uuid()
		e.AggregateSequence = int64(r.IntN(3))
	}
	g.payload(e, ev, false)
}

// aggregateID names a new aggregate; the readable forms include the slot, which keeps them unique.
func (g *Generator) aggregateID(m *model, slot int) string {
	switch g.rnd.IntN(10) {
	case 0:
		return fmt.Sprintf("%s-%06d", strings.ToUpper(m.short[:3]), slot)
	case 1:
		return fmt.Sprintf("kunde-müller-%d", slot)
	default:
		return g.uuid()
	}
}

func (g *Generator) uuid() string { return uuidFrom(g.rnd) }

var revisions = []string{"1", "1.0", "2", "3.1", "20230101"}

func (g *Generator) payload(e *Event, typ string, binary bool) {
	r := g.rnd
	e.PayloadType = typ
	if r.IntN(5) < 2 {
		e.PayloadRevision = revisions[r.IntN(len(revisions))]
	}
	switch {
	case binary || r.IntN(20) == 0:
		e.PayloadData = g.binaryData()
		if r.IntN(4) == 0 {
			e.PayloadType = "[B" // what Axon names a byte[] payload
		}
	case r.IntN(100) == 0:
		e.PayloadData = nil // an event without payload bytes
	case r.IntN(3) == 0:
		e.PayloadData = g.jsonData()
	default:
		e.PayloadData = g.xmlData(typ)
	}
}

// binaryData returns bytes that are not UTF-8, shaped like an image or a protobuf blob.
func (g *Generator) binaryData() []byte {
	r := g.rnd
	n := 64 + r.IntN(900)
	if r.IntN(20) == 0 {
		n += 2000 + r.IntN(3000)
	}
	headers := [][]byte{{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, {0xff, 0xd8, 0xff, 0xe0}, {0x0a, 0xff, 0xfe}}
	b := append([]byte(nil), headers[r.IntN(len(headers))]...)
	for len(b) < n {
		b = append(b, byte(r.Uint32()))
	}
	return b
}

var (
	names   = []string{"Anna Müller", "João Silva", "Zoë O'Brien", "Łukasz Wójcik", "山田 太郎", "Ahmed <Ali> & Sons", "Olga Ivanova", "Bob"}
	cities  = []string{"Amsterdam", "Köln", "São Paulo", "東京", "Zürich", "New York", "Reykjavík"}
	skus    = []string{"SKU-1001", "SKU-2002", "BOOK-978-0134190440", "TSHIRT-XL-RED", "MUG-☕"}
	notes   = []string{"", "leave at the door", "fragile: glass & ceramics", "deliver after 18:00 <urgent>", "🚚 express", "contains \"quotes\" and 'apostrophes'"}
	amounts = []string{"0.00", "12.50", "99.99", "1234.56", "-5.00", "1.0E7"}
)

// xmlData writes an XStream-style document: the class name as the root element and one element per field,
// pretty-printed with two-space indentation as XStream does by default.
func (g *Generator) xmlData(typ string) []byte {
	r := g.rnd
	b := make([]byte, 0, 512)
	field := func(indent, name, value string) {
		b = append(b, indent...)
		b = append(b, '<')
		b = append(b, name...)
		b = append(b, '>')
		b = appendXMLEscaped(b, value)
		b = append(b, "</"...)
		b = append(b, name...)
		b = append(b, ">\n"...)
	}
	b = append(b, '<')
	b = append(b, typ...)
	b = append(b, ">\n"...)
	field("  ", "id", g.uuid())
	field("  ", "customerName", names[r.IntN(len(names))])
	field("  ", "amount", amounts[r.IntN(len(amounts))])
	if r.IntN(2) == 0 {
		field("  ", "city", cities[r.IntN(len(cities))])
		field("  ", "note", notes[r.IntN(len(notes))])
	}
	if r.IntN(3) == 0 {
		b = append(b, "  <lines>\n"...)
		n := 1 + r.IntN(2)
		if r.IntN(25) == 0 {
			n += 10 + r.IntN(30)
		}
		for range n {
			b = append(b, "    <"...)
			b = append(b, typ...)
			b = append(b, ".Line>\n"...)
			field("      ", "sku", skus[r.IntN(len(skus))])
			field("      ", "quantity", strconv.Itoa(1+r.IntN(9)))
			field("      ", "price", amounts[r.IntN(len(amounts))])
			b = append(b, "    </"...)
			b = append(b, typ...)
			b = append(b, ".Line>\n"...)
		}
		b = append(b, "  </lines>\n"...)
	}
	if r.IntN(4) == 0 {
		b = append(b, "  <previous class=\"null\"/>\n"...)
	}
	b = append(b, "</"...)
	b = append(b, typ...)
	return append(b, '>')
}

// appendXMLEscaped appends s with XML's special characters escaped.
func appendXMLEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\'':
			b = append(b, "&apos;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// jsonData writes a compact Jackson-style document.
func (g *Generator) jsonData() []byte {
	r := g.rnd
	b := make([]byte, 0, 384)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, g.uuid())
	b = append(b, `,"customerName":`...)
	b = strconv.AppendQuote(b, names[r.IntN(len(names))])
	b = append(b, `,"amount":`...)
	b = append(b, amounts[r.IntN(len(amounts))]...)
	if r.IntN(2) == 0 {
		b = append(b, `,"address":{"city":`...)
		b = strconv.AppendQuote(b, cities[r.IntN(len(cities))])
		b = append(b, `,"note":`...)
		b = strconv.AppendQuote(b, notes[r.IntN(len(notes))])
		b = append(b, '}')
	}
	n := r.IntN(3)
	if r.IntN(25) == 0 {
		n += 10 + r.IntN(30)
	}
	b = append(b, `,"lines":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sku":`...)
		b = strconv.AppendQuote(b, skus[r.IntN(len(skus))])
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(1+r.IntN(9)), 10)
		b = append(b, `,"price":`...)
		b = append(b, amounts[r.IntN(len(amounts))]...)
		b = append(b, '}')
	}
	b = append(b, `],"createdAt":"2023-`...)
	for i, n := range []int{1 + r.IntN(12), 1 + r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60)} {
		if n < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "-T::Z"[i])
	}
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, int64(r.IntN(5)), 10)
	return append(b, '}')
}

// edgeMeta lists metadata values at the edges of each kind.
var edgeMeta = []Meta{
	{Key: "retries", Kind: Number, Number: 0},
	{Key: "minLong", Kind: Number, Number: math.MinInt64},
	{Key: "maxLong", Kind: Number, Number: math.MaxInt64},
	{Key: "offset", Kind: Number, Number: -1},
	{Key: "nan", Kind: Double, Double: math.Float64frombits(0x7ff8000000000000)}, // Java's Double.NaN
	{Key: "posInf", Kind: Double, Double: math.Inf(1)},
	{Key: "negInf", Kind: Double, Double: math.Inf(-1)},
	{Key: "negZero", Kind: Double, Double: math.Copysign(0, -1)},
	{Key: "zero", Kind: Double, Double: 0},
	{Key: "ratio", Kind: Double, Double: 0.1},
	{Key: "tiny", Kind: Double, Double: math.SmallestNonzeroFloat64},
	{Key: "empty", Kind: Text, Text: ""},
	{Key: "none", Kind: NoValue},
	{Key: "blob", Kind: Bytes, BytesType: "[B", BytesData: []byte{0x00, 0xff, 0xfe, 0x80}},
	{Key: "blobEmpty", Kind: Bytes},
	{Key: "serialized", Kind: Bytes, BytesType: "java.util.UUID", BytesRevision: "1", BytesData: []byte("<uuid>x</uuid>")},
	{Key: "active", Kind: Boolean, Bool: true},
	{Key: "deleted", Kind: Boolean, Bool: false},
	{Key: "", Kind: Text, Text: "the key is empty"},
	{Key: "größe", Kind: Text, Text: "groß ✓"},
}

func (g *Generator) metadata() []Meta {
	r := g.rnd
	var md []Meta
	if r.IntN(10) != 0 {
		md = append(md, Meta{Key: "traceId", Kind: Text, Text: g.uuid()}, Meta{Key: "correlationId", Kind: Text, Text: g.uuid()})
	}
	if r.IntN(3) == 0 {
		md = append(md, Meta{Key: "userId", Kind: Text, Text: names[r.IntN(len(names))]})
	}
	if r.IntN(6) == 0 {
		for range 1 + r.IntN(5) {
			m := edgeMeta[r.IntN(len(edgeMeta))]
			if !slices.ContainsFunc(md, func(x Meta) bool { return x.Key == m.Key }) {
				md = append(md, m)
			}
		}
	}
	if r.IntN(2) == 0 {
		// Sorted, as Go's deterministic marshalling writes them.
		slices.SortFunc(md, func(a, b Meta) int { return strings.Compare(a.Key, b.Key) })
	}
	return md
}

// Aggregates returns the aggregates generated so far, in order of their first event.
func (g *Generator) Aggregates() []Aggregate {
	out := make([]Aggregate, len(g.order))
	for i, a := range g.order {
		out[i] = *a
	}
	return out
}

// Snapshots returns snapshots for about a third of the aggregates generated so far, in the order an
// application would have stored them per aggregate (ascending sequence). Every snapshot's sequence is at
// most its aggregate's last event sequence, so a server that checks snapshot sequences (AXON.md 2.4)
// accepts them once the events are in. The snapshot flag is left unset, as stored on disk. The result
// depends only on the seed and the events generated so far, and calling Snapshots does not change what
// Next returns.
func (g *Generator) Snapshots() [][]byte {
	var out [][]byte
	for _, a := range g.order {
		if a.slot%3 != 0 || a.LastSequence < 0 {
			continue
		}
		r := rand.New(rand.NewPCG(g.seed, uint64(a.slot)))
		var seqs []int64
		for s := int64(9); s <= a.LastSequence; s += 10 {
			seqs = append(seqs, s)
		}
		if a.slot%6 == 0 && (len(seqs) == 0 || seqs[len(seqs)-1] != a.LastSequence) {
			seqs = append(seqs, a.LastSequence)
		}
		if len(seqs) > 3 {
			seqs = seqs[len(seqs)-3:]
		}
		for _, s := range seqs {
			e := Event{
				MessageID:         uuidFrom(r),
				AggregateID:       a.ID,
				AggregateSequence: s,
				AggregateType:     a.Type,
				Timestamp:         g.opts.StartMillis + int64(r.IntN(86400000)),
				PayloadType:       a.Type,
				PayloadData:       snapshotState(r, a, s),
			}
			if r.IntN(2) == 0 {
				e.PayloadRevision = "1"
			}
			out = append(out, Encode(&e))
		}
	}
	return out
}

// uuidFrom returns a random (version 4, RFC 4122 variant) UUID.
func uuidFrom(r *rand.Rand) string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], r.Uint64())
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}

// snapshotState writes the aggregate's state as XStream would.
func snapshotState(r *rand.Rand, a *Aggregate, seq int64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<%s>\n  <id>%s</id>\n  <version>%d</version>\n  <items>\n", a.Type, xmlEscape(a.ID), seq)
	for i := range 1 + r.IntN(20) {
		fmt.Fprintf(&b, "    <item>\n      <sku>%s</sku>\n      <quantity>%d</quantity>\n    </item>\n", xmlEscape(skus[(i+int(seq))%len(skus)]), 1+r.IntN(9))
	}
	fmt.Fprintf(&b, "  </items>\n</%s>", a.Type)
	return []byte(b.String())
}

// xmlEscape returns s with XML's special characters escaped.
func xmlEscape(s string) string { return string(appendXMLEscaped(nil, s)) }
