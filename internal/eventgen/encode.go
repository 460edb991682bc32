package eventgen

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Event is the content of one generated event, in the fields of the protobuf Event (AXON.md 1.3). Encode
// writes it canonically, except that Metadata keeps its order.
type Event struct {
	MessageID         string // field 1
	AggregateID       string // field 2
	AggregateSequence int64  // field 3
	AggregateType     string // field 4; empty for a non-domain event
	Timestamp         int64  // field 5, epoch milliseconds
	PayloadType       string // field 6.1
	PayloadRevision   string // field 6.2
	PayloadData       []byte // field 6.3
	Metadata          []Meta // field 7, written in this order
	Snapshot          bool   // field 8
}

// Kind is the member of a MetaDataValue's oneof that is set.
type Kind int

// The kinds of metadata values (AXON.md 1.3, MetaDataValue).
const (
	NoValue Kind = iota // no member of the oneof set
	Text
	Number
	Boolean
	Double
	Bytes
)

// Meta is one metadata entry.
type Meta struct {
	Key  string
	Kind Kind
	// The value: the field that matches Kind is written, even when it is the zero value.
	Text   string
	Number int64
	Bool   bool
	Double float64
	// BytesType, BytesRevision and BytesData are the SerializedObject of a Bytes value.
	BytesType, BytesRevision string
	BytesData                []byte
}

// Encode returns the protobuf encoding of e as Go's deterministic marshalling and Java would produce it:
// fields in number order, zero scalars and empty strings omitted, a set oneof member always written, map
// entries always with key and value. The one difference is that metadata entries are written in the order
// of e.Metadata, as Java keeps them, rather than sorted by key.
func Encode(e *Event) []byte {
	return AppendEvent(nil, e)
}

// AppendEvent appends the encoding of e (see Encode) to b.
func AppendEvent(b []byte, e *Event) []byte {
	b = appendString(b, 1, e.MessageID)
	b = appendString(b, 2, e.AggregateID)
	if e.AggregateSequence != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.AggregateSequence))
	}
	b = appendString(b, 4, e.AggregateType)
	if e.Timestamp != 0 {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Timestamp))
	}
	if e.PayloadType != "" || e.PayloadRevision != "" || len(e.PayloadData) > 0 {
		b = appendMessage(b, 6, func(b []byte) []byte {
			return appendSerializedObject(b, e.PayloadType, e.PayloadRevision, e.PayloadData)
		})
	}
	for i := range e.Metadata {
		m := &e.Metadata[i]
		b = appendMessage(b, 7, func(b []byte) []byte {
			// Map entries always carry both key and value, even when empty.
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, m.Key)
			return appendMessage(b, 2, func(b []byte) []byte { return appendMetaValue(b, m) })
		})
	}
	if e.Snapshot {
		b = protowire.AppendTag(b, 8, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

func appendMetaValue(b []byte, m *Meta) []byte {
	switch m.Kind {
	case Text:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, m.Text)
	case Number:
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(m.Number))
	case Boolean:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(m.Bool))
	case Double:
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(m.Double))
	case Bytes:
		b = appendMessage(b, 5, func(b []byte) []byte {
			return appendSerializedObject(b, m.BytesType, m.BytesRevision, m.BytesData)
		})
	}
	return b
}

func appendSerializedObject(b []byte, typ, revision string, data []byte) []byte {
	b = appendString(b, 1, typ)
	b = appendString(b, 2, revision)
	if len(data) > 0 {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessage appends a length-delimited field whose content body writes, sizing it afterwards so that
// nothing is encoded twice.
func appendMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	// Reserve one length byte, the common case; move the body if the length needs more.
	at := len(b)
	b = append(b, 0)
	b = body(b)
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size-1)...)
	copy(b[at+size:], b[at+1:at+1+n])
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}
