package archive

import (
	"bytes"
	"encoding/base64"
	"math"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

// recordParser parses canonical record lines fast: readers and verification parse every record, and
// ParseEventJSON (a general JSON decoder, then a canonical re-encoding) spends most of their time. The
// parser follows only the canonical grammar (SPEC.md, "Canonical encoding") and checks, piece by piece
// as it goes, that each piece is written the way the encoder writes it (escapes, numbers, the derived
// time, the payload's encoding, doubles), so it accepts a line only if ParseEventJSON accepts it, with
// the same Record, without re-encoding the record (FuzzEventJSON and TestFastParser check both
// directions). It gathers all strings of a record in one allocation. Anything it does not accept goes to
// ParseEventJSON, whose error says what is wrong. A recordParser is not safe for concurrent use; the
// Records it fills own their memory.
type recordParser struct {
	line  []byte
	i     int
	strs  []byte // string contents of the record, then one string
	bins  []byte // byte contents (payload data, bytes values, extra)
	metas []pmeta

	// lend: the Record shares the buffers above (VisitEvent) instead of owning copies.
	lend     bool
	lentRec  Record
	lentMeta []Meta
	lentObj  Object
}

type span struct{ a, b int }

type pobject struct {
	typ, rev span
	data     span // in bins
}

type pmeta struct {
	key     span
	kind    MetaKind
	text    span
	number  int64
	boolean bool
	double  float64
	obj     pobject
}

// parsers keeps recordParsers, with their buffers, for VisitEventJSON.
var parsers = sync.Pool{New: func() any { return new(recordParser) }}

// VisitEventJSON parses an event line as ParseEventJSON does, with the same results and the same errors,
// several times faster, and lends the record to fn, which must not keep it or anything in it: its strings
// and byte slices share buffers that the next call reuses. Readers that turn every record into something
// else at once (import encodes each as protobuf) are spared the allocations of a record that owns its
// memory. It returns the parse error, or fn's. It is safe for concurrent use.
func VisitEventJSON(line []byte, fn func(*Record) error) error {
	p := parsers.Get().(*recordParser)
	defer parsers.Put(p)
	return p.visitEvent(line, fn)
}

// visitEvent is VisitEventJSON with the parser's own buffers.
func (p *recordParser) visitEvent(line []byte, fn func(*Record) error) error {
	r, err := p.parseLent(line, false)
	if err != nil {
		return err
	}
	return fn(r)
}

// parseLent is parse into a record the parser lends: valid until the next call.
func (p *recordParser) parseLent(line []byte, snapshot bool) (*Record, error) {
	p.lend = true
	err := p.parse(line, &p.lentRec, snapshot)
	p.lend = false
	return &p.lentRec, err
}

// parse parses line (with or without its final LF) into r. It reports an error exactly when
// ParseEventJSON (ParseSnapshotJSON) would, and then returns that function's error.
func (p *recordParser) parse(line []byte, r *Record, snapshot bool) error {
	if p.fast(line, r, snapshot) {
		return nil
	}
	if snapshot {
		return ParseSnapshotJSON(line, r)
	}
	return ParseEventJSON(line, r)
}

func (p *recordParser) fast(line []byte, r *Record, snapshot bool) bool {
	body := line
	if n := len(body); n > 0 && body[n-1] == '\n' {
		body = body[:n-1]
	}
	if !utf8.Valid(body) {
		return false
	}
	p.line, p.i = body, 0
	p.strs, p.bins, p.metas = p.strs[:0], p.bins[:0], p.metas[:0]

	open := `{"token":`
	if snapshot {
		open = `{"position":`
	}
	var rec Record
	var ok bool
	var msgID, aggID, aggType span
	var payload pobject
	hasPayload := false
	var extra span
	if !p.lit(open) {
		return false
	}
	if rec.Token, ok = p.integer(); !ok || !p.lit(`,"messageId":`) {
		return false
	}
	if msgID, ok = p.str(); !ok {
		return false
	}
	if p.lit(`,"aggregateId":`) {
		if aggID, ok = p.str(); !ok || !p.lit(`,"aggregateType":`) {
			return false
		}
		if aggType, ok = p.str(); !ok || !p.lit(`,"sequence":`) {
			return false
		}
		if rec.Sequence, ok = p.integer(); !ok {
			return false
		}
		if aggID.a == aggID.b && aggType.a == aggType.b && rec.Sequence == 0 {
			return false // the encoder leaves out an empty aggregate
		}
	}
	if !p.lit(`,"timestamp":`) {
		return false
	}
	if rec.Timestamp, ok = p.integer(); !ok {
		return false
	}
	if rec.Timestamp >= minRFC3339Millis && rec.Timestamp <= maxRFC3339Millis {
		var buf [48]byte
		t := append(buf[:0], `,"time":"`...)
		t = time.UnixMilli(rec.Timestamp).UTC().AppendFormat(t, "2006-01-02T15:04:05.000Z")
		if !p.litBytes(append(t, '"')) {
			return false
		}
	}
	if p.lit(`,"payload":`) {
		if payload, ok = p.object(); !ok {
			return false
		}
		hasPayload = true
	}
	if p.lit(`,"metadata":[`) {
		for {
			m, ok := p.meta()
			if !ok {
				return false
			}
			p.metas = append(p.metas, m)
			if p.lit(`]`) {
				break
			}
			if !p.lit(`,`) {
				return false
			}
		}
	}
	if p.lit(`,"snapshot":true`) {
		rec.Snapshot = true
	}
	if p.lit(`,"extra":`) {
		if extra, ok = p.base64(); !ok || extra.a == extra.b {
			return false
		}
	}
	if !p.lit(`}`) || p.i != len(p.line) {
		return false
	}

	// Materialise: one string for all strings, one slice for all bytes; or, lending, no copy at all.
	var s string
	var bins []byte
	if p.lend {
		s, bins = unsafe.String(unsafe.SliceData(p.strs), len(p.strs)), p.bins
	} else {
		s = string(p.strs)
		if len(p.bins) > 0 {
			bins = append([]byte(nil), p.bins...)
		}
	}
	str := func(x span) string { return s[x.a:x.b] }
	bin := func(x span) []byte { return bins[x.a:x.b:x.b] }
	obj := func(o pobject) Object {
		data := bin(o.data)
		if data == nil {
			data = []byte{}
		}
		return Object{Type: str(o.typ), Revision: str(o.rev), Data: data}
	}
	rec.MessageID, rec.AggregateID, rec.AggregateType = str(msgID), str(aggID), str(aggType)
	if hasPayload {
		if p.lend {
			p.lentObj = obj(payload)
			rec.Payload = &p.lentObj
		} else {
			o := obj(payload)
			rec.Payload = &o
		}
	}
	if len(p.metas) > 0 {
		if p.lend {
			p.lentMeta = slices.Grow(p.lentMeta[:0], len(p.metas))[:len(p.metas)]
			rec.Metadata = p.lentMeta
		} else {
			rec.Metadata = make([]Meta, len(p.metas))
		}
		for i, m := range p.metas {
			out := &rec.Metadata[i]
			*out = Meta{Key: str(m.key), Kind: m.kind} // a lent one may hold the last line's values
			switch m.kind {
			case MetaText:
				out.Text = str(m.text)
			case MetaNumber:
				out.Number = m.number
			case MetaBoolean:
				out.Boolean = m.boolean
			case MetaDouble:
				out.Double = m.double
			case MetaBytes:
				out.Bytes = obj(m.obj)
			}
		}
	}
	if extra.b > extra.a {
		rec.Extra = bin(extra)
	}

	*r = rec
	return true
}

func (p *recordParser) litBytes(s []byte) bool {
	if len(p.line)-p.i >= len(s) && bytes.Equal(p.line[p.i:p.i+len(s)], s) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *recordParser) lit(s string) bool {
	if len(p.line)-p.i >= len(s) && string(p.line[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// integer parses a canonical int64: optional '-', digits without leading zero.
func (p *recordParser) integer() (int64, bool) {
	b := p.line[p.i:]
	neg := len(b) > 0 && b[0] == '-'
	j := 0
	if neg {
		j = 1
	}
	start := j
	var u uint64
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(b[j]-'0')
		j++
	}
	n := j - start
	if n == 0 || n > 19 || (n > 1 && b[start] == '0') {
		return 0, false
	}
	var v int64
	switch {
	case !neg && u <= math.MaxInt64:
		v = int64(u)
	case neg && u == 0:
		return 0, false // "-0" is not canonical
	case neg && u <= 1<<63:
		v = -int64(u-1) - 1
	default:
		return 0, false
	}
	p.i += j
	return v, true
}

// str parses a JSON string with only the escapes the canonical encoding uses, appending its content to
// strs; it returns the content's span there.
func (p *recordParser) str() (span, bool) {
	a := len(p.strs)
	var ok bool
	p.strs, ok = p.unquote(p.strs)
	return span{a, len(p.strs)}, ok
}

func (p *recordParser) unquote(dst []byte) ([]byte, bool) {
	b := p.line
	if p.i >= len(b) || b[p.i] != '"' {
		return dst, false
	}
	j := p.i + 1
	start := j
	for j < len(b) {
		if j = jsonline.SkipPlain(b, j); j == len(b) {
			break
		}
		c := b[j]
		switch {
		case c == '"':
			dst = append(dst, b[start:j]...)
			p.i = j + 1
			return dst, true
		case c < 0x20:
			return dst, false
		case c == '\\':
			dst = append(dst, b[start:j]...)
			if j+1 >= len(b) {
				return dst, false
			}
			switch b[j+1] {
			case '"', '\\':
				dst = append(dst, b[j+1])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u': // only \u00XX for control characters without a short escape is canonical
				if j+5 >= len(b) || b[j+2] != '0' || b[j+3] != '0' {
					return dst, false
				}
				hi, lo := unhex(b[j+4]), unhex(b[j+5])
				if hi < 0 || lo < 0 {
					return dst, false
				}
				c := byte(hi<<4 | lo)
				if c >= 0x20 || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f' {
					return dst, false
				}
				dst = append(dst, c)
				j += 4
			default:
				return dst, false
			}
			j += 2
			start = j
		default:
			j++
		}
	}
	return dst, false
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1 // upper case is not canonical
}

var strictBase64 = base64.StdEncoding.Strict()

// base64 parses a JSON string of standard base64 and appends the decoded bytes to bins.
func (p *recordParser) base64() (span, bool) {
	b := p.line
	if p.i >= len(b) || b[p.i] != '"' {
		return span{}, false
	}
	end := bytes.IndexByte(b[p.i+1:], '"')
	if end < 0 {
		return span{}, false
	}
	enc := b[p.i+1 : p.i+1+end]
	a := len(p.bins)
	p.bins = append(p.bins, make([]byte, base64.StdEncoding.DecodedLen(len(enc)))...)
	// Strict: padding bits must be zero; the length check refuses the line breaks the decoder skips.
	n, err := strictBase64.Decode(p.bins[a:], enc)
	if err != nil || base64.StdEncoding.EncodedLen(n) != len(enc) {
		p.bins = p.bins[:a]
		return span{}, false
	}
	p.bins = p.bins[:a+n]
	p.i += end + 2
	return span{a, a + n}, true
}

func (p *recordParser) object() (pobject, bool) {
	var o pobject
	var ok bool
	if !p.lit(`{"type":`) {
		return o, false
	}
	if o.typ, ok = p.str(); !ok || !p.lit(`,"revision":`) {
		return o, false
	}
	if o.rev, ok = p.str(); !ok {
		return o, false
	}
	switch {
	case p.lit(`,"encoding":"text","data":`):
		// Always valid UTF-8: the line is, and escapes only add ASCII.
		a := len(p.bins)
		if p.bins, ok = p.unquote(p.bins); !ok {
			return o, false
		}
		o.data = span{a, len(p.bins)}
	case p.lit(`,"encoding":"base64","data":`):
		if o.data, ok = p.base64(); !ok || utf8.Valid(p.bins[o.data.a:o.data.b]) {
			return o, false // bytes that are UTF-8 are written as text
		}
	default:
		return o, false
	}
	return o, p.lit(`}`)
}

func (p *recordParser) meta() (pmeta, bool) {
	var m pmeta
	var ok bool
	if !p.lit(`{"key":`) {
		return m, false
	}
	if m.key, ok = p.str(); !ok {
		return m, false
	}
	switch {
	case p.lit(`,"text":`):
		m.kind = MetaText
		if m.text, ok = p.str(); !ok {
			return m, false
		}
	case p.lit(`,"number":"`):
		m.kind = MetaNumber
		if m.number, ok = p.integer(); !ok || !p.lit(`"`) {
			return m, false
		}
	case p.lit(`,"boolean":true`):
		m.kind, m.boolean = MetaBoolean, true
	case p.lit(`,"boolean":false`):
		m.kind = MetaBoolean
	case p.lit(`,"double":`):
		m.kind = MetaDouble
		mark := len(p.strs)
		if _, ok = p.str(); !ok {
			return m, false
		}
		f, err := parseDouble(string(p.strs[mark:]))
		if err != nil {
			return m, false
		}
		var buf [32]byte
		if string(appendDouble(buf[:0], f)) != string(p.strs[mark:]) {
			return m, false // "1.0", "1e0" and the like parse but are not how the encoder writes 1
		}
		p.strs = p.strs[:mark]
		m.double = f
	case p.lit(`,"bytes":`):
		m.kind = MetaBytes
		if m.obj, ok = p.object(); !ok {
			return m, false
		}
	case p.lit(`,"none":true`):
		m.kind = MetaNone
	default:
		return m, false
	}
	return m, p.lit(`}`)
}
