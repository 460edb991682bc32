package archive

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/axarchive/axarchive/archive/manifest"

	sjson "github.com/segmentio/encoding/json"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

// The record checks of a full verification, on the workers: every line parsed as a canonical record
// and validated against the JSON Schema.

// names hands out one string for each payload type seen, so that a record the parser only lends need
// not be copied for its type to be counted.
type names map[string]string

// maxNames bounds names: hostile input could name a new type on every line.
const maxNames = 4096

func (n names) get(s string) string {
	if c, ok := n[s]; ok {
		return c
	}
	c := strings.Clone(s)
	if len(n) < maxNames {
		n[c] = c
	}
	return c
}

// validate checks the lines of a batch. The records are parsed into the parser's lent record, which
// nothing keeps beyond the line.
func (v *verifier) validate(b *vbatch, stream string, parser *recordParser, names names) {
	info := &v.a.m.Chunks[b.chunk]
	path := archivePath(info.Path)
	val := v.events
	var scratch []byte
	prefix, snapshot := jsonline.EventPrefix, false
	if stream == manifest.StreamSnapshots {
		val, prefix, snapshot = v.snapshots, jsonline.SnapshotPrefix, true
	}
	measure := v.opts.Measure
	if snapshot {
		measure = nil
	}
	start := 0
	for i, end := range b.ends {
		line := b.buf[start:end]
		start = end
		lineNo := b.firstLine + int64(i)
		tok, ok := jsonline.LeadingInt(line, prefix)
		if !ok {
			tok = -1
			if jsonline.CheckShape(line) == nil { // a line of another shape is not decoded at all
				tok = tokenOf(line, stream)
			}
		}
		typ := ""
		if !utf8.Valid(line) {
			b.problems = append(b.problems, linedError{i, &Error{Path: path, Line: lineNo, Token: tok, Err: fmt.Errorf("%w: not valid UTF-8 (at byte %d)", ErrRecord, invalidUTF8At(line))}})
			b.tokens = append(b.tokens, tok)
			b.types = append(b.types, string(jsonline.PayloadType(line)))
			if measure != nil {
				b.sizes = append(b.sizes, -1)
			}
			continue
		}
		rec, perr := parser.parseLent(line, snapshot)
		if perr != nil {
			b.problems = append(b.problems, linedError{i, &Error{Path: path, Line: lineNo, Token: tok, Err: perr}})
			typ = string(jsonline.PayloadType(line)) // best effort, so that counts do not repeat the problem
		} else {
			if rec.Payload != nil {
				typ = names.get(rec.Payload.Type)
			}
			tok = rec.Token
		}
		var err error
		if errors.As(perr, new(*jsonline.ShapeError)) {
			// Refused before decoding: the schema would decode it after all.
		} else if scratch, err = val.check(line, rec, perr == nil, scratch); err != nil {
			b.problems = append(b.problems, linedError{i, &Error{Path: path, Line: lineNo, Token: tok, Err: fmt.Errorf("%w: %v", ErrRecord, err)}})
		}
		b.tokens = append(b.tokens, tok)
		b.types = append(b.types, typ)
		if measure != nil {
			size := int64(-1)
			if perr == nil {
				size = measure(rec)
			}
			b.sizes = append(b.sizes, size)
		}
	}
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// tokenOf finds the token (or position) of a line that does not start with it, so that a problem in a
// non-canonical line is reported with its token and does not look like a gap; -1 if there is none.
func tokenOf(line []byte, stream string) int64 {
	var v struct {
		Token    *int64 `json:"token"`
		Position *int64 `json:"position"`
	}
	if err := sjson.Unmarshal(line, &v); err != nil {
		return -1
	}
	p := v.Token
	if stream == manifest.StreamSnapshots {
		p = v.Position
	}
	if p == nil {
		return -1
	}
	return *p
}
