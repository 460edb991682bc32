package archive

import (
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
	jsonline.Scanner        // the line, piece by piece
	strs             []byte // string contents of the record, then one string
	bins             []byte // byte contents (payload data, bytes values, extra)
	metas            []pmeta

	// lend: the Record shares the buffers above (VisitEventJSON) instead of owning copies.
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
// and byte slices share the parser's buffers, valid only during the call. Readers that turn every record into something
// else at once (import encodes each as protobuf) are spared the allocations of a record that owns its
// memory. It returns the parse error, or fn's. It is safe for concurrent use.
func VisitEventJSON(line []byte, fn func(*Record) error) error {
	p := parsers.Get().(*recordParser)
	err := p.visitEvent(line, fn)
	parsers.Put(p) // not deferred: a parser lost to a panic in fn is only garbage
	return err
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
	p.Reset(body)
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
	if !p.Lit(open) {
		return false
	}
	if rec.Token, ok = p.Integer(); !ok || !p.Lit(`,"messageId":`) {
		return false
	}
	if msgID, ok = p.str(); !ok {
		return false
	}
	if p.Lit(`,"aggregateId":`) {
		if aggID, ok = p.str(); !ok || !p.Lit(`,"aggregateType":`) {
			return false
		}
		if aggType, ok = p.str(); !ok || !p.Lit(`,"sequence":`) {
			return false
		}
		if rec.Sequence, ok = p.Integer(); !ok {
			return false
		}
		if aggID.a == aggID.b && aggType.a == aggType.b && rec.Sequence == 0 {
			return false // the encoder leaves out an empty aggregate
		}
	}
	if !p.Lit(`,"timestamp":`) {
		return false
	}
	if rec.Timestamp, ok = p.Integer(); !ok {
		return false
	}
	if rec.Timestamp >= minRFC3339Millis && rec.Timestamp <= maxRFC3339Millis {
		var buf [48]byte
		t := append(buf[:0], `,"time":"`...)
		t = time.UnixMilli(rec.Timestamp).UTC().AppendFormat(t, "2006-01-02T15:04:05.000Z")
		if !p.LitBytes(append(t, '"')) {
			return false
		}
	}
	if p.Lit(`,"payload":`) {
		if payload, ok = p.object(); !ok {
			return false
		}
		hasPayload = true
	}
	if p.Lit(`,"metadata":[`) {
		for {
			m, ok := p.meta()
			if !ok {
				return false
			}
			p.metas = append(p.metas, m)
			if p.Lit(`]`) {
				break
			}
			if !p.Lit(`,`) {
				return false
			}
		}
	}
	if p.Lit(`,"snapshot":true`) {
		rec.Snapshot = true
	}
	if p.Lit(`,"extra":`) {
		if extra, ok = p.base64(); !ok || extra.a == extra.b {
			return false
		}
	}
	if !p.Lit(`}`) || !p.Done() {
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

// str parses a JSON string with only the escapes the canonical encoding uses, appending its content to
// strs; it returns the content's span there.
func (p *recordParser) str() (span, bool) {
	a := len(p.strs)
	var ok bool
	p.strs, ok = p.Quoted(p.strs)
	return span{a, len(p.strs)}, ok
}

// base64 parses a JSON string of standard base64 and appends the decoded bytes to bins.
func (p *recordParser) base64() (span, bool) {
	a := len(p.bins)
	var ok bool
	p.bins, ok = p.Base64(p.bins)
	return span{a, len(p.bins)}, ok
}

func (p *recordParser) object() (pobject, bool) {
	var o pobject
	var ok bool
	if !p.Lit(`{"type":`) {
		return o, false
	}
	if o.typ, ok = p.str(); !ok || !p.Lit(`,"revision":`) {
		return o, false
	}
	if o.rev, ok = p.str(); !ok {
		return o, false
	}
	switch {
	case p.Lit(`,"encoding":"text","data":`):
		// Always valid UTF-8: the line is, and escapes only add ASCII.
		a := len(p.bins)
		if p.bins, ok = p.Quoted(p.bins); !ok {
			return o, false
		}
		o.data = span{a, len(p.bins)}
	case p.Lit(`,"encoding":"base64","data":`):
		if o.data, ok = p.base64(); !ok || utf8.Valid(p.bins[o.data.a:o.data.b]) {
			return o, false // bytes that are UTF-8 are written as text
		}
	default:
		return o, false
	}
	return o, p.Lit(`}`)
}

func (p *recordParser) meta() (pmeta, bool) {
	var m pmeta
	var ok bool
	if !p.Lit(`{"key":`) {
		return m, false
	}
	if m.key, ok = p.str(); !ok {
		return m, false
	}
	switch {
	case p.Lit(`,"text":`):
		m.kind = MetaText
		if m.text, ok = p.str(); !ok {
			return m, false
		}
	case p.Lit(`,"number":"`):
		m.kind = MetaNumber
		if m.number, ok = p.Integer(); !ok || !p.Lit(`"`) {
			return m, false
		}
	case p.Lit(`,"boolean":true`):
		m.kind, m.boolean = MetaBoolean, true
	case p.Lit(`,"boolean":false`):
		m.kind = MetaBoolean
	case p.Lit(`,"double":`):
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
	case p.Lit(`,"bytes":`):
		m.kind = MetaBytes
		if m.obj, ok = p.object(); !ok {
			return m, false
		}
	case p.Lit(`,"none":true`):
		m.kind = MetaNone
	default:
		return m, false
	}
	return m, p.Lit(`}`)
}
