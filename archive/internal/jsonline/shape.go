// Package jsonline holds what reading the JSON of an archive (its manifest, its journal, its record
// lines) needs below the record types: a check of a document's shape that runs before any decoder.
package jsonline

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// JSON read from an archive (the manifest, the journal, record lines) passes CheckShape before any
// decoder sees it. The decoders take the last of two members with the same name, other readers may take
// the first: a manifest with two "version" members would mean one thing to axarchive and another to jq,
// so a duplicate name anywhere is refused. And a decoder, or the schema validator after it, can spend
// time and memory that grow faster than the input with the nesting depth (100,000 nested arrays in a
// manifest took minutes of CPU), so depth and the members of an object are bounded first, in one pass
// that allocates nothing that grows with the input.
const (
	// maxJSONDepth is far above the deepest document SPEC.md allows (a record's metadata value: 4).
	maxJSONDepth = 32
	// maxJSONMembers bounds the members of one object: SPEC.md's objects have at most 16 (their lists
	// are arrays), and it keeps the duplicate check's memory small whatever the input.
	maxJSONMembers = 256
)

// ShapeError says where a JSON document breaks a shape rule. Offset is 0-based, Line 1-based.
type ShapeError struct {
	Offset int64
	Line   int64
	Msg    string
}

func (e *ShapeError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// CheckShape checks b, in time linear in its length, for a member name used twice in one object,
// nesting deeper than maxJSONDepth and objects of more than maxJSONMembers members. It does not check
// the syntax (the decoder that follows does) and never fails on what is not JSON. Member names with
// escapes are compared decoded ("a" and "\u0061" are the same name).
func CheckShape(b []byte) *ShapeError {
	type level struct {
		object    bool
		expectKey bool
		members   int
	}
	var stack [maxJSONDepth]level
	var keys [maxJSONDepth]map[string]string // folded names of the open objects, reused from object to object
	depth := 0
	line := int64(1)
	fail := func(i int, format string, args ...any) *ShapeError {
		return &ShapeError{Offset: int64(i), Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\n':
			line++
		case '{', '[':
			if depth == maxJSONDepth {
				return fail(i, "nested more than %d deep", maxJSONDepth)
			}
			stack[depth] = level{object: c == '{', expectKey: c == '{'}
			if c == '{' {
				if keys[depth] == nil {
					keys[depth] = make(map[string]string, 16)
				} else {
					clear(keys[depth])
				}
			}
			depth++
		case '}', ']':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth > 0 && stack[depth-1].object {
				stack[depth-1].expectKey = true
			}
		case '"':
			start := i
			escaped := false
			for i++; i < len(b) && b[i] != '"'; i++ {
				switch b[i] {
				case '\\':
					escaped = true
					i++
				case '\n':
					line++
				}
			}
			if i >= len(b) {
				return nil // unterminated: the decoder says so
			}
			if depth == 0 || !stack[depth-1].object || !stack[depth-1].expectKey {
				continue
			}
			lv := &stack[depth-1]
			lv.expectKey = false
			lv.members++
			if lv.members > maxJSONMembers {
				return fail(start, "object with more than %d members", maxJSONMembers)
			}
			raw := b[start+1 : i]
			var name string
			if escaped {
				if err := json.Unmarshal(b[start:i+1], &name); err != nil {
					continue // the decoder says so
				}
			} else {
				// The map only lives while b does: no copy of the name.
				name = unsafe.String(unsafe.SliceData(raw), len(raw))
			}
			// Go's decoder (and others) match member names to fields ignoring case: "Version" after
			// "version" overrides it there, and not in a case-sensitive reader.
			folded := foldName(name)
			if first, dup := keys[depth-1][folded]; dup {
				if first != name {
					return fail(start, "duplicate member name %s (%q ignoring case, as some decoders compare names)", Excerpt(b[start:i+1]), first)
				}
				return fail(start, "duplicate member name %s", Excerpt(b[start:i+1]))
			}
			keys[depth-1][folded] = name
		}
	}
	return nil
}

// foldName maps names that strings.EqualFold (and encoding/json's field matching) calls equal to the same
// string: each rune to the least rune of its simple case-folding orbit (for ASCII: its upper case).
func foldName(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			var b strings.Builder
			for _, r := range s {
				m := r
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					m = min(m, f)
				}
				b.WriteRune(m)
			}
			return b.String()
		}
	}
	return strings.ToUpper(s)
}

// Excerpt is b for an error message: at most its first 200 bytes.
func Excerpt(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
