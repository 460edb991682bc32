package jsonline

import (
	"bytes"
	"strconv"

	sjson "github.com/segmentio/encoding/json"
)

// The canonical record lines (SPEC.md, "Canonical encoding") are written and scanned byte by byte: these
// are the pieces that know JSON rather than records.

const hexDigits = "0123456789abcdef"

// needsEscape8 reports whether any of the 8 bytes packed in x is a control character, a quote or a
// backslash, with the word tricks of "Bit Twiddling Hacks" (determine if a word has a byte less than n,
// has a zero byte): a byte of 0x80 or more never counts.
func needsEscape8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ (ones * '"')
	backslash := x ^ (ones * '\\')
	return ((x-ones*0x20)&^x|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0
}

// SkipPlain returns the first index from i on where fewer than 8 bytes remain or a run of 8 holds a byte
// that needs escaping: the scanners then look at one byte at a time only where it matters.
func SkipPlain[S string | []byte](s S, i int) int {
	for i+8 <= len(s) && !needsEscape8(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
		uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
		i += 8
	}
	return i
}

// AppendString writes s as a JSON string. Only what JSON requires is escaped (quote, backslash, control
// characters), so XML and JSON payloads stay readable; the short escapes are used where JSON has them.
func AppendString[S string | []byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if i = SkipPlain(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// LeadingInt parses the integer that a canonical line starts with after prefix (EventPrefix or
// SnapshotPrefix) and the comma after it.
func LeadingInt(line []byte, prefix string) (int64, bool) {
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return 0, false
	}
	rest := line[len(prefix):]
	end := bytes.IndexByte(rest, ',')
	if end <= 0 || end > 20 {
		return 0, false
	}
	digits := rest[:end]
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, false
	}
	// canonical: no sign, no leading zero
	if digits[0] == '+' || (digits[0] == '0' && len(digits) > 1) || (digits[0] == '-' && (len(digits) == 1 || digits[1] == '0')) {
		return 0, false
	}
	return n, true
}

// What a canonical event line and a canonical snapshot line start with.
const (
	EventPrefix    = `{"token":`
	SnapshotPrefix = `{"position":`
)

// PayloadType finds the payload type in a canonical line without decoding it: the first occurrence of
// `,"payload":{"type":"` is the payload member (inside a JSON string every quote is escaped, so the
// pattern cannot occur within one). A line without payload gives "". The result aliases line unless
// the type has escapes.
var payloadKey = []byte(`,"payload":{"type":`)

func PayloadType(line []byte) []byte {
	i := bytes.Index(line, payloadKey)
	if i < 0 {
		return nil
	}
	s := line[i+len(payloadKey):] // starts at the opening quote
	escaped := false
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if !escaped {
				return s[1:j]
			}
			var t string
			if err := sjson.Unmarshal(s[:j+1], &t); err != nil {
				return nil
			}
			return []byte(t)
		}
	}
	return nil
}
