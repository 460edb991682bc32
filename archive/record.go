package archive

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/encoding/json"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

// Record is one Axon Server event or snapshot, losslessly: every value the protobuf Event message can
// carry has exactly one Record, and every Record exactly one JSON line (see SPEC.md, "Records").
//
// Events and snapshots share the shape; they differ only in what Token means and in the JSON key that
// holds it ("token" for events, "position" for snapshots).
type Record struct {
	// Token is the global token of an event, or the position of a snapshot in its stream.
	Token int64

	MessageID     string
	AggregateID   string
	AggregateType string
	Sequence      int64

	// Timestamp is in milliseconds since the Unix epoch, exactly as the event carried it.
	Timestamp int64

	// Payload is nil when the event carried no payload message at all, which is not the same on the
	// wire as a payload whose fields are all empty.
	Payload *Object

	// Metadata keeps the entries in the order the source sent them: the order is not meaningful to Axon,
	// but it is part of the bytes, and the archive reproduces bytes.
	Metadata []Meta

	Snapshot bool

	// Extra holds protobuf fields of the Event that this version of axarchive does not know (added by a
	// newer server), verbatim, so that they survive the round trip.
	Extra []byte
}

// Object is a serialized object: an event payload, or a metadata value holding one.
type Object struct {
	Type     string
	Revision string // "" when absent: proto3 does not tell absent from empty
	Data     []byte
}

// MetaKind says which of the metadata value kinds a Meta holds.
type MetaKind uint8

// The metadata value kinds of Axon Server's MetaDataValue. MetaNone is an entry whose value has no
// member set, which Axon Server accepts and keeps.
const (
	MetaNone MetaKind = iota
	MetaText
	MetaNumber
	MetaBoolean
	MetaDouble
	MetaBytes
)

var metaKindNames = [...]string{"none", "text", "number", "boolean", "double", "bytes"}

func (k MetaKind) String() string {
	if int(k) < len(metaKindNames) {
		return metaKindNames[k]
	}
	return "MetaKind(" + strconv.Itoa(int(k)) + ")"
}

// Meta is one metadata entry. Only the field that Kind names is meaningful.
type Meta struct {
	Key     string
	Kind    MetaKind
	Text    string
	Number  int64
	Boolean bool
	Double  float64 // kept bit for bit: NaN payloads and -0 survive
	Bytes   Object
}

// The time range in which a timestamp also gets its human-readable "time" field: the years RFC 3339 can
// write. Outside it only "timestamp" is written.
const (
	minRFC3339Millis = -62135596800000 // 0001-01-01T00:00:00.000Z
	maxRFC3339Millis = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// javaNaN is the bit pattern of Java's Double.NaN, which Axon Server and Axon Framework produce; any other
// NaN is written with its bits so that nothing is lost.
const javaNaN = 0x7ff8000000000000

// AppendEventJSON appends the canonical JSON line of an event record, with its final LF, to dst.
func AppendEventJSON(dst []byte, r *Record) []byte { return appendRecord(dst, r, `{"token":`) }

// AppendSnapshotJSON appends the canonical JSON line of a snapshot record, with its final LF, to dst.
func AppendSnapshotJSON(dst []byte, r *Record) []byte { return appendRecord(dst, r, `{"position":`) }

func appendRecord(b []byte, r *Record, open string) []byte {
	b = append(b, open...)
	b = strconv.AppendInt(b, r.Token, 10)
	b = append(b, `,"messageId":`...)
	b = jsonline.AppendString(b, r.MessageID)
	if r.AggregateID != "" || r.AggregateType != "" || r.Sequence != 0 {
		b = append(b, `,"aggregateId":`...)
		b = jsonline.AppendString(b, r.AggregateID)
		b = append(b, `,"aggregateType":`...)
		b = jsonline.AppendString(b, r.AggregateType)
		b = append(b, `,"sequence":`...)
		b = strconv.AppendInt(b, r.Sequence, 10)
	}
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	if r.Timestamp >= minRFC3339Millis && r.Timestamp <= maxRFC3339Millis {
		b = append(b, `,"time":"`...)
		b = time.UnixMilli(r.Timestamp).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, '"')
	}
	if r.Payload != nil {
		b = append(b, `,"payload":`...)
		b = appendObject(b, r.Payload)
	}
	if len(r.Metadata) > 0 {
		b = append(b, `,"metadata":[`...)
		for i := range r.Metadata {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMeta(b, &r.Metadata[i])
		}
		b = append(b, ']')
	}
	if r.Snapshot {
		b = append(b, `,"snapshot":true`...)
	}
	if len(r.Extra) > 0 {
		b = append(b, `,"extra":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Extra)
		b = append(b, '"')
	}
	return append(b, '}', '\n')
}

func appendObject(b []byte, o *Object) []byte {
	b = append(b, `{"type":`...)
	b = jsonline.AppendString(b, o.Type)
	b = append(b, `,"revision":`...)
	b = jsonline.AppendString(b, o.Revision)
	if utf8.Valid(o.Data) {
		b = append(b, `,"encoding":"text","data":`...)
		b = jsonline.AppendString(b, o.Data)
	} else {
		b = append(b, `,"encoding":"base64","data":"`...)
		b = base64.StdEncoding.AppendEncode(b, o.Data)
		b = append(b, '"')
	}
	return append(b, '}')
}

func appendMeta(b []byte, m *Meta) []byte {
	b = append(b, `{"key":`...)
	b = jsonline.AppendString(b, m.Key)
	switch m.Kind {
	case MetaText:
		b = append(b, `,"text":`...)
		b = jsonline.AppendString(b, m.Text)
	case MetaNumber:
		b = append(b, `,"number":"`...)
		b = strconv.AppendInt(b, m.Number, 10)
		b = append(b, '"')
	case MetaBoolean:
		b = append(b, `,"boolean":`...)
		b = strconv.AppendBool(b, m.Boolean)
	case MetaDouble:
		b = append(b, `,"double":"`...)
		b = appendDouble(b, m.Double)
		b = append(b, '"')
	case MetaBytes:
		b = append(b, `,"bytes":`...)
		b = appendObject(b, &m.Bytes)
	default:
		b = append(b, `,"none":true`...)
	}
	return append(b, '}')
}

// appendDouble writes the shortest decimal that parses back to the same float64, and names the values
// JSON numbers cannot hold. The result is a JSON string's content, so jq keeps it exactly.
func appendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		if bits := math.Float64bits(f); bits != javaNaN {
			return fmt.Appendf(b, "NaN(0x%016x)", bits)
		}
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

func parseDouble(s string) (float64, error) {
	switch s {
	case "NaN":
		return math.Float64frombits(javaNaN), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	if strings.HasPrefix(s, "NaN(") { // Sscanf would reject every other double too, more slowly
		var bits uint64
		if n, _ := fmt.Sscanf(s, "NaN(0x%016x)", &bits); n == 1 {
			if f := math.Float64frombits(bits); math.IsNaN(f) {
				return f, nil
			}
			return 0, fmt.Errorf("double %q: not a NaN bit pattern", s)
		}
	}
	if f, ok := quickSubnormal(s); ok {
		return f, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("double %q: not a canonical double", s)
	}
	return f, nil
}

// quickSubnormal returns ParseFloat(s) when s is the shortest representation of a double below (or at the
// edge of) the normal range, written as [-]d[.ddd]e-3dd. ParseFloat takes microseconds for those (its fast
// path stops at the normal range) where a candidate computed with floats, formatted and compared takes
// nanoseconds: a shortest representation parses back to its double, so a candidate that formats to s
// is exactly what ParseFloat(s) returns. Any other s, and a miss, is left to ParseFloat.
func quickSubnormal(s string) (float64, bool) {
	e := strings.LastIndexByte(s, 'e')
	if e < 0 || len(s)-e != 5 || s[e+1] != '-' || s[e+2] != '3' {
		return 0, false
	}
	exp, err := strconv.Atoi(s[e+1:])
	if err != nil || exp > -307 || exp < -324 {
		return 0, false
	}
	mant, err := strconv.ParseFloat(s[:e], 64)
	if err != nil {
		return 0, false
	}
	c := mant * math.Pow10(exp+300) * 1e-300
	var buf [32]byte
	for _, f := range [3]float64{c, math.Nextafter(c, math.Inf(-1)), math.Nextafter(c, math.Inf(1))} {
		if string(strconv.AppendFloat(buf[:0], f, 'g', -1, 64)) == s {
			return f, true
		}
	}
	return 0, false
}

// jsonRecord mirrors the JSON shape for decoding. Pointers tell a missing key from a zero value; the
// canonical check afterwards (re-encode and compare) rejects every shape the encoder would not write.
type jsonRecord struct {
	Token         *int64      `json:"token"`
	Position      *int64      `json:"position"`
	MessageID     *string     `json:"messageId"`
	AggregateID   *string     `json:"aggregateId"`
	AggregateType *string     `json:"aggregateType"`
	Sequence      *int64      `json:"sequence"`
	Timestamp     *int64      `json:"timestamp"`
	Time          *string     `json:"time"`
	Payload       *jsonObject `json:"payload"`
	Metadata      []jsonMeta  `json:"metadata"`
	Snapshot      *bool       `json:"snapshot"`
	Extra         *string     `json:"extra"`
}

type jsonObject struct {
	Type     *string `json:"type"`
	Revision *string `json:"revision"`
	Encoding *string `json:"encoding"`
	Data     *string `json:"data"`
}

type jsonMeta struct {
	Key     *string     `json:"key"`
	Text    *string     `json:"text"`
	Number  *string     `json:"number"`
	Boolean *bool       `json:"boolean"`
	Double  *string     `json:"double"`
	Bytes   *jsonObject `json:"bytes"`
	None    *bool       `json:"none"`
}

// ParseEventJSON decodes one canonical event line (with or without its final LF) into r. Anything that
// is not exactly the line AppendEventJSON would write for the decoded record is rejected with
// ErrRecord, so a record that parses is also a record that reproduces its bytes.
func ParseEventJSON(line []byte, r *Record) error { return parseRecord(line, r, false) }

// ParseSnapshotJSON is ParseEventJSON for snapshot lines.
func ParseSnapshotJSON(line []byte, r *Record) error { return parseRecord(line, r, true) }

// parseScratch is reused by parseRecord for the canonical re-encoding.
func parseRecord(line []byte, r *Record, snapshot bool) error {
	body := line
	if n := len(body); n > 0 && body[n-1] == '\n' {
		body = body[:n-1]
	}
	if se := jsonline.CheckShape(body); se != nil {
		return fmt.Errorf("%w: %w", ErrRecord, se)
	}
	var j jsonRecord
	if err := json.Unmarshal(body, &j); err != nil {
		return fmt.Errorf("%w: invalid JSON: %v", ErrRecord, err)
	}
	*r = Record{}
	key, pos := "token", j.Token
	if snapshot {
		key, pos = "position", j.Position
	}
	if pos == nil {
		return fmt.Errorf("%w: missing %q", ErrRecord, key)
	}
	r.Token = *pos
	if j.MessageID == nil {
		return fmt.Errorf("%w: missing \"messageId\"", ErrRecord)
	}
	r.MessageID = *j.MessageID
	if j.AggregateID != nil {
		r.AggregateID = *j.AggregateID
	}
	if j.AggregateType != nil {
		r.AggregateType = *j.AggregateType
	}
	if j.Sequence != nil {
		r.Sequence = *j.Sequence
	}
	if j.Timestamp == nil {
		return fmt.Errorf("%w: missing \"timestamp\"", ErrRecord)
	}
	r.Timestamp = *j.Timestamp
	if j.Payload != nil {
		o, err := j.Payload.object()
		if err != nil {
			return fmt.Errorf("%w: payload: %v", ErrRecord, err)
		}
		r.Payload = &o
	}
	if j.Metadata != nil {
		r.Metadata = make([]Meta, len(j.Metadata))
		for i := range j.Metadata {
			if err := j.Metadata[i].meta(&r.Metadata[i]); err != nil {
				return fmt.Errorf("%w: metadata entry %d: %v", ErrRecord, i, err)
			}
		}
	}
	if j.Snapshot != nil {
		r.Snapshot = *j.Snapshot
	}
	if j.Extra != nil {
		extra, err := base64.StdEncoding.DecodeString(*j.Extra)
		if err != nil {
			return fmt.Errorf("%w: extra: %v", ErrRecord, err)
		}
		r.Extra = extra
	}
	var canon []byte
	if snapshot {
		canon = AppendSnapshotJSON(make([]byte, 0, len(line)+1), r)
	} else {
		canon = AppendEventJSON(make([]byte, 0, len(line)+1), r)
	}
	if string(canon[:len(canon)-1]) != string(body) {
		return fmt.Errorf("%w: not in canonical form (expected %s)", ErrRecord, jsonline.Excerpt(canon[:len(canon)-1]))
	}
	return nil
}

func (j *jsonObject) object() (Object, error) {
	if j.Type == nil || j.Revision == nil || j.Encoding == nil || j.Data == nil {
		return Object{}, fmt.Errorf("an object needs type, revision, encoding and data")
	}
	o := Object{Type: *j.Type, Revision: *j.Revision}
	switch *j.Encoding {
	case "text":
		o.Data = []byte(*j.Data)
	case "base64":
		data, err := base64.StdEncoding.DecodeString(*j.Data)
		if err != nil {
			return Object{}, fmt.Errorf("data: %v", err)
		}
		o.Data = data
	default:
		return Object{}, fmt.Errorf("unknown encoding %q", *j.Encoding)
	}
	return o, nil
}

func (j *jsonMeta) meta(m *Meta) error {
	if j.Key == nil {
		return fmt.Errorf("missing \"key\"")
	}
	m.Key = *j.Key
	kinds := 0
	if j.Text != nil {
		kinds++
		m.Kind, m.Text = MetaText, *j.Text
	}
	if j.Number != nil {
		kinds++
		n, err := strconv.ParseInt(*j.Number, 10, 64)
		if err != nil {
			return fmt.Errorf("number %q: not a 64-bit integer", *j.Number)
		}
		m.Kind, m.Number = MetaNumber, n
	}
	if j.Boolean != nil {
		kinds++
		m.Kind, m.Boolean = MetaBoolean, *j.Boolean
	}
	if j.Double != nil {
		kinds++
		f, err := parseDouble(*j.Double)
		if err != nil {
			return err
		}
		m.Kind, m.Double = MetaDouble, f
	}
	if j.Bytes != nil {
		kinds++
		o, err := j.Bytes.object()
		if err != nil {
			return fmt.Errorf("bytes: %v", err)
		}
		m.Kind, m.Bytes = MetaBytes, o
	}
	if j.None != nil {
		kinds++
		m.Kind = MetaNone
	}
	if kinds != 1 {
		return fmt.Errorf("an entry holds exactly one of text, number, boolean, double, bytes, none")
	}
	return nil
}
