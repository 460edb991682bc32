package archive

import (
	"encoding/base64"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/schema"
)

// recordSchema checks records against schema/event.v1.json or schema/snapshot.v1.json on every record
// at a cost that verification can afford (see schema.RecordValidator). For a line that ParseEventJSON
// accepted, the line is AppendEventJSON of the parsed Record, so its JSON value, and the projection the
// validator needs, follow from the Record: appendProjection computes that projection without decoding
// the line again (TestProjectionFromRecord checks it against the projection of the decoded line). A
// line that is not canonical is decoded and validated as it is.
type recordSchema struct {
	v          *schema.RecordValidator
	position   string
	timeRE     *regexp.Regexp
	base64RE   *regexp.Regexp
	numberRE   *regexp.Regexp
	doubleRE   *regexp.Regexp
	snapshotOK bool
	// The strings appendProjection matches against timeRE, base64RE and numberRE are formatted by Go
	// (UTC times in the RFC 3339 range, standard base64 of at least one byte, int64s): with the schema's
	// v1 patterns every one of them matches, so the match need not run (TestKnownPatternsMatch). A
	// schema with other patterns gets them run.
	timeAlways, base64Always, numberAlways bool
}

// The v1 schema's patterns of the time member, of base64 data and of metadata numbers.
const (
	timePatternV1   = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$`
	base64PatternV1 = `^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$`
	numberPatternV1 = `^(0|-?[1-9][0-9]{0,18})$`
)

func newRecordSchema(stream string) *recordSchema {
	s := &recordSchema{v: schema.NewEventValidator(), position: "token"}
	if stream == manifest.StreamSnapshots {
		s.v, s.position = schema.NewSnapshotValidator(), "position"
	}
	s.timeRE, s.base64RE, s.numberRE, s.doubleRE = s.v.Patterns()
	s.timeAlways = s.timeRE.String() == timePatternV1
	s.base64Always = s.base64RE.String() == base64PatternV1
	s.numberAlways = s.numberRE.String() == numberPatternV1
	return s
}

// check validates a line; r is its parsed record when canonical is true. buf is scratch space, returned
// for reuse.
func (s *recordSchema) check(line []byte, r *Record, canonical bool, buf []byte) ([]byte, error) {
	if canonical {
		buf = s.appendProjection(buf[:0], r)
		if s.v.ValidateProjection(buf) {
			return buf, nil
		}
	}
	return buf, s.v.ValidateLine(line)
}

// appendProjection appends the JSON of the projection of the record's canonical line. The member order
// is fixed and the metadata entries are deduplicated and sorted, so equal projections give equal bytes.
func (s *recordSchema) appendProjection(b []byte, r *Record) []byte {
	b = append(b, `{"`...)
	b = append(b, s.position...)
	b = append(b, `":`...)
	if r.Token >= 0 {
		b = append(b, '0')
	} else {
		b = strconv.AppendInt(b, r.Token, 10)
	}
	b = append(b, `,"messageId":""`...)
	if r.AggregateID != "" || r.AggregateType != "" || r.Sequence != 0 {
		b = append(b, `,"aggregateId":"","aggregateType":"","sequence":0`...)
	}
	b = append(b, `,"timestamp":0`...)
	if r.Timestamp >= minRFC3339Millis && r.Timestamp <= maxRFC3339Millis {
		b = append(b, `,"time":`...)
		if s.timeAlways {
			b = jsonline.AppendString(b, schema.ExemplarTime)
		} else {
			var tb [32]byte
			t := time.UnixMilli(r.Timestamp).UTC().AppendFormat(tb[:0], "2006-01-02T15:04:05.000Z")
			b = s.patterned(b, t, s.timeRE, schema.ExemplarTime)
		}
	}
	if r.Payload != nil {
		b = append(b, `,"payload":`...)
		b = s.appendObject(b, r.Payload)
	}
	if len(r.Metadata) > 0 {
		b = append(b, `,"metadata":[`...)
		var items [][]byte
		for i := range r.Metadata {
			item := s.appendMeta(nil, &r.Metadata[i])
			if !slices.ContainsFunc(items, func(x []byte) bool { return string(x) == string(item) }) {
				items = append(items, item)
			}
		}
		slices.SortFunc(items, func(x, y []byte) int { return compareBytes(x, y) })
		for i, item := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, item...)
		}
		b = append(b, ']')
	}
	if r.Snapshot {
		b = append(b, `,"snapshot":true`...)
	}
	if len(r.Extra) > 0 {
		b = append(b, `,"extra":`...)
		b = s.appendBase64(b, r.Extra)
	}
	return append(b, '}')
}

func compareBytes(x, y []byte) int {
	switch {
	case string(x) < string(y):
		return -1
	case string(x) > string(y):
		return 1
	}
	return 0
}

// patterned appends the exemplar when v matches the pattern, else v itself as a JSON string.
func (s *recordSchema) patterned(b, v []byte, re *regexp.Regexp, exemplar string) []byte {
	if re.Match(v) {
		return jsonline.AppendString(b, exemplar)
	}
	return jsonline.AppendString(b, v)
}

func (s *recordSchema) appendObject(b []byte, o *Object) []byte {
	if utf8.Valid(o.Data) {
		return append(b, `{"type":"","revision":"","encoding":"text","data":""}`...)
	}
	b = append(b, `{"type":"","revision":"","encoding":"base64","data":`...)
	b = s.appendBase64(b, o.Data)
	return append(b, '}')
}

// appendBase64 is patterned for the base64 of data, which is never empty here (empty data is text).
func (s *recordSchema) appendBase64(b, data []byte) []byte {
	if s.base64Always && len(data) > 0 {
		return jsonline.AppendString(b, schema.ExemplarBase64)
	}
	return s.patterned(b, base64.StdEncoding.AppendEncode(nil, data), s.base64RE, schema.ExemplarBase64)
}

func (s *recordSchema) appendMeta(b []byte, m *Meta) []byte {
	b = append(b, `{"key":""`...)
	switch m.Kind {
	case MetaText:
		b = append(b, `,"text":""`...)
	case MetaNumber:
		b = append(b, `,"number":`...)
		if s.numberAlways {
			b = jsonline.AppendString(b, schema.ExemplarNumber)
		} else {
			b = s.patterned(b, strconv.AppendInt(nil, m.Number, 10), s.numberRE, schema.ExemplarNumber)
		}
	case MetaBoolean:
		b = append(b, `,"boolean":`...)
		b = strconv.AppendBool(b, m.Boolean)
	case MetaDouble:
		b = append(b, `,"double":`...)
		b = s.patterned(b, appendDouble(nil, m.Double), s.doubleRE, schema.ExemplarDouble)
	case MetaBytes:
		b = append(b, `,"bytes":`...)
		b = s.appendObject(b, &m.Bytes)
	default:
		b = append(b, `,"none":true`...)
	}
	return append(b, '}')
}
