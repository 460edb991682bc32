package jsonline

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJSONShape(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	members := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"k` + strings.Repeat("x", i) + `":0`)
		}
		return b.String() + "}"
	}
	for _, c := range []struct {
		name, doc, err string
	}{
		{"flat", `{"a":1,"b":[1,2,{"a":3}],"c":{"a":{"a":4}}}`, ""},
		{"same-name-in-sibling-objects", `[{"a":1},{"a":2}]`, ""},
		{"name-as-value", `{"a":"a","b":"a"}`, ""},
		{"braces-in-strings", `{"a":"{[\"a\":","b":"]]]}}"}`, ""},
		{"top-level-duplicate", `{"version":1,"version":2}`, `duplicate member name "version" at byte 13`},
		{"nested-duplicate", `{"a":{"b":1,"c":{},"b":2}}`, `duplicate member name "b" at byte 19`},
		{"duplicate-in-array-object", `[{"x":1},{"y":1,"y":1}]`, `duplicate member name "y" at byte 16`},
		{"escaped-duplicate", `{"version":1,"\u0076ersion":2}`, `duplicate member name "\u0076ersion" at byte 13`},
		{"duplicate-after-nested-object", `{"a":{"a":{"a":1}},"a":2}`, `duplicate member name "a" at byte 19`},
		{"empty-name-twice", `{"":1,"":2}`, `duplicate member name "" at byte 6`},
		{"case-variant", `{"version":1,"Version":2}`, `duplicate member name "Version" ("version" ignoring case, as some decoders compare names) at byte 13`},
		{"case-variant-kelvin", "{\"k\":1,\"\u212a\":2}", `duplicate member name`},
		{"case-variant-long-s", "{\"s\":1,\"\u017f\":2}", `duplicate member name`},
		{"different-names", `{"ab":1,"aB ":2,"ba":3}`, ""},
		{"depth-32", deep(32), ""},
		{"depth-33", deep(33), "nested more than 32 deep at byte 32"},
		{"deep-objects", strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), "nested more than 32 deep at byte 160"},
		{"members-256", members(256), ""},
		{"members-257", members(257), "object with more than 256 members"},
		{"not-json", `{"a":1,"a`, ""},
		{"unbalanced", `]]]}}}{"a":1}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckShape([]byte(c.doc))
			if c.err == "" {
				require.Nil(t, err)
				return
			}
			require.NotNil(t, err)
			require.Contains(t, err.Error(), c.err)
		})
	}
}

// TestJSONShapeStopsEarly: the check refuses a cost bomb where it starts, without reading on: 100,000
// nested arrays fail at byte 32, an object of a million members at its 257th. Every reader runs it before
// decoding, so no decoder or schema validator sees such a document.
func TestJSONShapeStopsEarly(t *testing.T) {
	bomb := []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000))
	err := CheckShape(bomb)
	require.NotNil(t, err)
	require.EqualValues(t, maxJSONDepth, err.Offset)

	var b bytes.Buffer
	b.WriteString("{")
	for i := range 1000000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + strings.Repeat("a", 8) + string(rune('a'+i%26)) + `":0`)
	}
	b.WriteString("}")
	err = CheckShape(b.Bytes())
	require.NotNil(t, err)
	require.Less(t, err.Offset, int64(257*16))
}

// referenceShape finds the same problems as CheckShape in valid JSON with encoding/json's tokenizer.
func referenceShape(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type level struct {
		object  bool
		key     bool // a member's name was read, its value comes next
		names   map[string]bool
		members int
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return true // not JSON: not the shape check's to judge
		}
		top := func() *level {
			if len(stack) == 0 {
				return nil
			}
			return stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if l := top(); l != nil && l.object {
					l.key = false // the value of the member just named
				}
				if len(stack) == maxJSONDepth {
					return false
				}
				stack = append(stack, &level{object: v == '{', names: map[string]bool{}})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if l := top(); l != nil && l.object && !l.key {
				for name := range l.names {
					if strings.EqualFold(name, v) {
						return false
					}
				}
				l.names[v] = true
				l.key = true
				if l.members++; l.members > maxJSONMembers {
					return false
				}
				continue
			}
		}
		if l := top(); l != nil && l.object {
			l.key = false
		}
	}
}

// FuzzJSONShape: on valid JSON, CheckShape refuses exactly what a tokenizing reference refuses; on
// anything else it never panics.
func FuzzJSONShape(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[{"a":2},{"b":"\"a\""}],"c":{"a":{"\u0061":1}}}`))
	f.Add([]byte(`{"version":1,"version":2}`))
	f.Add([]byte(`{"a":1,"\u0061":2}`))
	f.Add([]byte(strings.Repeat("[", 40) + strings.Repeat("]", 40)))
	f.Add([]byte(`[{"x":"}{","x":1}]`))
	f.Add([]byte(`{"fingerprint":"a","FINGERprint":"b"}`))
	f.Add([]byte("{\"k\":1,\"\u212a\":2}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := CheckShape(b) == nil
		if !json.Valid(b) {
			return
		}
		if want := referenceShape(b); got != want {
			t.Fatalf("CheckShape accepts=%v, reference %v, for %q", got, want, b)
		}
	})
}
