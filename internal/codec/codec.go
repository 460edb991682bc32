// Package codec converts Axon Server Event messages, as protobuf bytes, to archive records and back,
// byte for byte.
//
// Axon Server stores its own (Java) serialization of every event, which is canonical: fields in number
// order, zero-valued scalars left out, every set message and oneof member written, metadata map entries
// with both key and value, minimal varints. Decode accepts exactly that form and Encode writes exactly that
// form, keeping the metadata entries in their original order, so Encode(Decode(b)) == b for every b that
// Decode accepts. Bytes in any other form are refused with ErrNotCanonical rather than silently changed:
// an archive that cannot reproduce an event must not pretend to.
//
// The conversion works on the wire format directly (protowire), not on generated structs: it is the hot
// path of export and import.
package codec

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/archive"
)

// ErrNotCanonical is returned by Decode for bytes that are a valid or invalid protobuf Event but not in
// the canonical form, so that re-encoding the record would not give the same bytes.
var ErrNotCanonical = errors.New("event is not canonically encoded")

// Field numbers of io.axoniq.axonserver.grpc.event.Event and its nested messages (AXON.md 1.3).
const (
	evMessageID   = 1
	evAggregateID = 2
	evSequence    = 3
	evAggType     = 4
	evTimestamp   = 5
	evPayload     = 6
	evMetaData    = 7
	evSnapshot    = 8

	objType     = 1
	objRevision = 2
	objData     = 3

	mvText    = 1
	mvNumber  = 2
	mvBoolean = 3
	mvDouble  = 4
	mvBytes   = 5

	entryKey   = 1
	entryValue = 2
)

type decodeError struct {
	off int
	msg string
}

func (e *decodeError) Error() string { return fmt.Sprintf("at byte %d: %s", e.off, e.msg) }
func (e *decodeError) Unwrap() error { return ErrNotCanonical }

// Decode parses the canonical protobuf bytes of one Event into r, leaving r.Token as it was (the token is
// not part of the Event). Strings and byte slices in r are copies: b may be reused afterwards.
func Decode(b []byte, r *archive.Record) error { return decode(b, r, nil) }

// Shared decodes canonical protobuf Events like Decode, but the strings and byte slices of the records it
// fills share the memory of the bytes decoded, so that decoding allocates almost nothing: the hot path of
// an export, which turns each record into its JSON line at once. A record filled by Shared is valid only
// while the bytes it was decoded from are neither modified nor reused. A Shared is not safe for
// concurrent use; its zero value is ready.
type Shared struct {
	payload archive.Object
}

// Decode is Decode with shared memory (see Shared).
func (s *Shared) Decode(b []byte, r *archive.Record) error { return decode(b, r, s) }

func decode(b []byte, r *archive.Record, shared *Shared) error {
	token := r.Token
	meta := r.Metadata[:0]
	*r = archive.Record{Token: token}
	d := decoder{b: b, shared: shared != nil}
	last := protowire.Number(0)
	for d.off < len(d.b) {
		num, typ, start := d.tag()
		if d.err != nil {
			return d.err
		}
		if num > evSnapshot {
			// A field this version does not know: keep it and everything after it verbatim. Java writes
			// unknown fields after known ones, so a known field after this point is not canonical.
			d.skip(num, typ)
			for d.err == nil && d.off < len(d.b) {
				n, t, _ := d.tagAt()
				if d.err != nil {
					return d.err
				}
				if n <= evSnapshot {
					return d.fail(start, fmt.Sprintf("known field %d after unknown fields", n))
				}
				d.skip(n, t)
			}
			if d.err != nil {
				return d.err
			}
			r.Extra = append([]byte(nil), b[start:]...)
			break
		}
		if num < last || (num == last && num != evMetaData) {
			return d.fail(start, fmt.Sprintf("field %d out of order", num))
		}
		last = num
		switch num {
		case evMessageID:
			r.MessageID = d.str(typ, start)
		case evAggregateID:
			r.AggregateID = d.str(typ, start)
		case evSequence:
			r.Sequence = int64(d.varint(typ, start))
		case evAggType:
			r.AggregateType = d.str(typ, start)
		case evTimestamp:
			r.Timestamp = int64(d.varint(typ, start))
		case evPayload:
			body := d.bytes(typ, start, true)
			if d.err == nil {
				if shared != nil {
					shared.payload = archive.Object{}
					r.Payload = &shared.payload
				} else {
					r.Payload = new(archive.Object)
				}
				d.object(body, r.Payload)
			}
		case evMetaData:
			body := d.bytes(typ, start, true)
			if d.err == nil {
				meta = append(meta, archive.Meta{})
				d.entry(body, &meta[len(meta)-1])
			}
		case evSnapshot:
			r.Snapshot = d.boolean(typ, start)
		default:
			return d.fail(start, fmt.Sprintf("invalid field number %d", num))
		}
		if d.err != nil {
			return d.err
		}
	}
	if len(meta) > 0 {
		r.Metadata = meta
	}
	return nil
}

type decoder struct {
	b      []byte
	off    int
	base   int // offset of b within the outermost message, for error positions
	err    error
	shared bool // strings and slices alias b instead of copying it
}

// string returns body as a string: a copy, or with shared set the same memory.
func (d *decoder) string(body []byte) string {
	if d.shared {
		return unsafe.String(unsafe.SliceData(body), len(body))
	}
	return string(body)
}

func (d *decoder) fail(at int, msg string) error {
	if d.err == nil {
		d.err = &decodeError{off: d.base + at, msg: msg}
	}
	return d.err
}

// tag reads a field tag and insists on the minimal encoding.
func (d *decoder) tag() (protowire.Number, protowire.Type, int) {
	start := d.off
	num, typ, _ := d.tagAt()
	return num, typ, start
}

func (d *decoder) tagAt() (protowire.Number, protowire.Type, int) {
	start := d.off
	v, n := protowire.ConsumeVarint(d.b[d.off:])
	if n < 0 {
		d.fail(start, "truncated or invalid tag")
		return 0, 0, start
	}
	if n != protowire.SizeVarint(v) {
		d.fail(start, "tag is not minimally encoded")
		return 0, 0, start
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		d.fail(start, fmt.Sprintf("invalid field number %d", num))
		return 0, 0, start
	}
	d.off += n
	return num, typ, start
}

func (d *decoder) skip(num protowire.Number, typ protowire.Type) {
	n := protowire.ConsumeFieldValue(num, typ, d.b[d.off:])
	if n < 0 {
		d.fail(d.off, fmt.Sprintf("invalid value of field %d", num))
		return
	}
	d.off += n
}

func (d *decoder) varint(typ protowire.Type, start int) uint64 {
	if typ != protowire.VarintType {
		d.fail(start, "wrong wire type for a varint field")
		return 0
	}
	v, n := protowire.ConsumeVarint(d.b[d.off:])
	if n < 0 {
		d.fail(d.off, "truncated varint")
		return 0
	}
	if n != protowire.SizeVarint(v) {
		d.fail(d.off, "varint is not minimally encoded")
		return 0
	}
	if v == 0 {
		d.fail(start, "zero value written for a proto3 scalar")
		return 0
	}
	d.off += n
	return v
}

// oneofVarint reads a varint of a oneof member, where zero is written explicitly.
func (d *decoder) oneofVarint(typ protowire.Type, start int) uint64 {
	if typ != protowire.VarintType {
		d.fail(start, "wrong wire type for a varint field")
		return 0
	}
	v, n := protowire.ConsumeVarint(d.b[d.off:])
	if n < 0 || n != protowire.SizeVarint(v) {
		d.fail(d.off, "truncated or non-minimal varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) boolean(typ protowire.Type, start int) bool {
	if v := d.varint(typ, start); v != 1 && d.err == nil {
		d.fail(start, "boolean is not 0 or 1")
	}
	return d.err == nil
}

// bytes reads a length-delimited value. allowEmpty is false for proto3 scalars, which Java leaves out
// when empty.
func (d *decoder) bytes(typ protowire.Type, start int, allowEmpty bool) []byte {
	if typ != protowire.BytesType {
		d.fail(start, "wrong wire type for a length-delimited field")
		return nil
	}
	v, n := protowire.ConsumeVarint(d.b[d.off:])
	if n < 0 {
		d.fail(d.off, "truncated length")
		return nil
	}
	if n != protowire.SizeVarint(v) {
		d.fail(d.off, "length is not minimally encoded")
		return nil
	}
	if v > uint64(len(d.b)-d.off-n) {
		d.fail(d.off, fmt.Sprintf("length %d runs past the end", v))
		return nil
	}
	if v == 0 && !allowEmpty {
		d.fail(start, "empty value written for a proto3 scalar")
		return nil
	}
	d.off += n
	body := d.b[d.off : d.off+int(v)]
	d.off += int(v)
	return body
}

func (d *decoder) str(typ protowire.Type, start int) string {
	body := d.bytes(typ, start, false)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(body) {
		d.fail(start, "string is not valid UTF-8")
		return ""
	}
	return d.string(body)
}

// sub returns a decoder for a nested message so that error offsets stay relative to the outer message.
func (d *decoder) sub(body []byte) decoder {
	return decoder{b: body, base: d.base + d.off - len(body), shared: d.shared}
}

func (d *decoder) object(body []byte, o *archive.Object) {
	s := d.sub(body)
	last := protowire.Number(0)
	for s.off < len(s.b) && s.err == nil {
		num, typ, start := s.tag()
		if s.err != nil {
			break
		}
		if num <= last {
			s.fail(start, fmt.Sprintf("serialized object field %d out of order", num))
			break
		}
		last = num
		switch num {
		case objType:
			o.Type = s.str(typ, start)
		case objRevision:
			o.Revision = s.str(typ, start)
		case objData:
			if data := s.bytes(typ, start, false); s.shared {
				o.Data = data[:len(data):len(data)]
			} else {
				o.Data = append([]byte(nil), data...)
			}
		default:
			s.fail(start, fmt.Sprintf("unknown serialized object field %d", num))
		}
	}
	if s.err != nil {
		d.err = s.err
	}
}

func (d *decoder) entry(body []byte, m *archive.Meta) {
	s := d.sub(body)
	num, typ, start := s.tag()
	if s.err == nil && num != entryKey {
		s.fail(start, "metadata entry does not start with its key")
	}
	if s.err == nil {
		key := s.bytes(typ, start, true)
		if s.err == nil && !utf8.Valid(key) {
			s.fail(start, "metadata key is not valid UTF-8")
		}
		m.Key = s.string(key)
	}
	if s.err == nil && s.off == len(s.b) {
		s.fail(s.off, "metadata entry has no value")
	}
	if s.err == nil {
		num, typ, start = s.tag()
		if s.err == nil && num != entryValue {
			s.fail(start, "metadata entry value is not field 2")
		}
	}
	var value []byte
	if s.err == nil {
		value = s.bytes(typ, start, true)
	}
	if s.err == nil && s.off != len(s.b) {
		s.fail(s.off, "metadata entry has fields after its value")
	}
	if s.err == nil {
		s.metaValue(value, m)
	}
	if s.err != nil {
		d.err = s.err
	}
}

func (d *decoder) metaValue(body []byte, m *archive.Meta) {
	m.Kind = archive.MetaNone
	if len(body) == 0 {
		return
	}
	s := d.sub(body)
	num, typ, start := s.tag()
	if s.err == nil {
		switch num {
		case mvText:
			v := s.bytes(typ, start, true)
			if s.err == nil && !utf8.Valid(v) {
				s.fail(start, "metadata text is not valid UTF-8")
			}
			m.Kind, m.Text = archive.MetaText, s.string(v)
		case mvNumber:
			m.Kind, m.Number = archive.MetaNumber, protowire.DecodeZigZag(s.oneofVarint(typ, start))
		case mvBoolean:
			v := s.oneofVarint(typ, start)
			if s.err == nil && v > 1 {
				s.fail(start, "boolean is not 0 or 1")
			}
			m.Kind, m.Boolean = archive.MetaBoolean, v == 1
		case mvDouble:
			if typ != protowire.Fixed64Type {
				s.fail(start, "wrong wire type for a double")
				break
			}
			v, n := protowire.ConsumeFixed64(s.b[s.off:])
			if n < 0 {
				s.fail(s.off, "truncated double")
				break
			}
			s.off += n
			m.Kind, m.Double = archive.MetaDouble, math.Float64frombits(v)
		case mvBytes:
			v := s.bytes(typ, start, true)
			if s.err == nil {
				m.Kind = archive.MetaBytes
				s.object(v, &m.Bytes)
			}
		default:
			s.fail(start, fmt.Sprintf("unknown metadata value field %d", num))
		}
	}
	if s.err == nil && s.off != len(s.b) {
		s.fail(s.off, "metadata value holds more than one member")
	}
	if s.err != nil {
		d.err = s.err
	}
}

// Encode appends the canonical protobuf bytes of r's Event (without its token) to dst.
func Encode(dst []byte, r *archive.Record) []byte {
	b := dst
	if r.MessageID != "" {
		b = appendString(b, evMessageID, r.MessageID)
	}
	if r.AggregateID != "" {
		b = appendString(b, evAggregateID, r.AggregateID)
	}
	if r.Sequence != 0 {
		b = protowire.AppendTag(b, evSequence, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.Sequence))
	}
	if r.AggregateType != "" {
		b = appendString(b, evAggType, r.AggregateType)
	}
	if r.Timestamp != 0 {
		b = protowire.AppendTag(b, evTimestamp, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.Timestamp))
	}
	if r.Payload != nil {
		b = protowire.AppendTag(b, evPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(objectSize(r.Payload)))
		b = appendObject(b, r.Payload)
	}
	for i := range r.Metadata {
		m := &r.Metadata[i]
		vs := metaValueSize(m)
		es := protowire.SizeTag(entryKey) + protowire.SizeBytes(len(m.Key)) + protowire.SizeTag(entryValue) + protowire.SizeBytes(vs)
		b = protowire.AppendTag(b, evMetaData, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(es))
		b = protowire.AppendTag(b, entryKey, protowire.BytesType)
		b = protowire.AppendString(b, m.Key)
		b = protowire.AppendTag(b, entryValue, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(vs))
		b = appendMetaValue(b, m)
	}
	if r.Snapshot {
		b = protowire.AppendTag(b, evSnapshot, protowire.VarintType)
		b = append(b, 1)
	}
	return append(b, r.Extra...)
}

// Size returns len(Encode(nil, r)) without encoding.
func Size(r *archive.Record) int {
	n := 0
	if r.MessageID != "" {
		n += 1 + protowire.SizeBytes(len(r.MessageID))
	}
	if r.AggregateID != "" {
		n += 1 + protowire.SizeBytes(len(r.AggregateID))
	}
	if r.Sequence != 0 {
		n += 1 + protowire.SizeVarint(uint64(r.Sequence))
	}
	if r.AggregateType != "" {
		n += 1 + protowire.SizeBytes(len(r.AggregateType))
	}
	if r.Timestamp != 0 {
		n += 1 + protowire.SizeVarint(uint64(r.Timestamp))
	}
	if r.Payload != nil {
		n += 1 + protowire.SizeBytes(objectSize(r.Payload))
	}
	for i := range r.Metadata {
		m := &r.Metadata[i]
		es := 1 + protowire.SizeBytes(len(m.Key)) + 1 + protowire.SizeBytes(metaValueSize(m))
		n += 1 + protowire.SizeBytes(es)
	}
	if r.Snapshot {
		n += 2
	}
	return n + len(r.Extra)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func objectSize(o *archive.Object) int {
	n := 0
	if o.Type != "" {
		n += 1 + protowire.SizeBytes(len(o.Type))
	}
	if o.Revision != "" {
		n += 1 + protowire.SizeBytes(len(o.Revision))
	}
	if len(o.Data) > 0 {
		n += 1 + protowire.SizeBytes(len(o.Data))
	}
	return n
}

func appendObject(b []byte, o *archive.Object) []byte {
	if o.Type != "" {
		b = appendString(b, objType, o.Type)
	}
	if o.Revision != "" {
		b = appendString(b, objRevision, o.Revision)
	}
	if len(o.Data) > 0 {
		b = protowire.AppendTag(b, objData, protowire.BytesType)
		b = protowire.AppendBytes(b, o.Data)
	}
	return b
}

func metaValueSize(m *archive.Meta) int {
	switch m.Kind {
	case archive.MetaText:
		return 1 + protowire.SizeBytes(len(m.Text))
	case archive.MetaNumber:
		return 1 + protowire.SizeVarint(protowire.EncodeZigZag(m.Number))
	case archive.MetaBoolean:
		return 2
	case archive.MetaDouble:
		return 1 + 8
	case archive.MetaBytes:
		return 1 + protowire.SizeBytes(objectSize(&m.Bytes))
	}
	return 0
}

func appendMetaValue(b []byte, m *archive.Meta) []byte {
	switch m.Kind {
	case archive.MetaText:
		b = appendString(b, mvText, m.Text)
	case archive.MetaNumber:
		b = protowire.AppendTag(b, mvNumber, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(m.Number))
	case archive.MetaBoolean:
		b = protowire.AppendTag(b, mvBoolean, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(m.Boolean))
	case archive.MetaDouble:
		b = protowire.AppendTag(b, mvDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(m.Double))
	case archive.MetaBytes:
		b = protowire.AppendTag(b, mvBytes, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(objectSize(&m.Bytes)))
		b = appendObject(b, &m.Bytes)
	}
	return b
}
