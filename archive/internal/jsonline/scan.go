package jsonline

import (
	"bytes"
	"encoding/base64"
	"math"
)

// Scanner reads a canonical JSON line (SPEC.md, "Canonical encoding") piece by piece, accepting each
// piece only written exactly as the canonical encoder writes it: a fast parser built on it accepts a
// line only if a general decoder followed by a canonical re-encoding would. The zero value is ready
// after Reset; a Scanner is not safe for concurrent use.
type Scanner struct {
	line []byte
	pos  int
}

// Reset starts scanning line.
func (s *Scanner) Reset(line []byte) { s.line, s.pos = line, 0 }

// Done reports whether the whole line was consumed.
func (s *Scanner) Done() bool { return s.pos == len(s.line) }

// LitBytes consumes lit if the line goes on with it.
func (s *Scanner) LitBytes(lit []byte) bool {
	if len(s.line)-s.pos >= len(lit) && bytes.Equal(s.line[s.pos:s.pos+len(lit)], lit) {
		s.pos += len(lit)
		return true
	}
	return false
}

// Lit consumes lit if the line goes on with it.
func (s *Scanner) Lit(lit string) bool {
	if len(s.line)-s.pos >= len(lit) && string(s.line[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return true
	}
	return false
}

// Integer consumes a canonical int64: optional '-', digits without leading zero.
func (s *Scanner) Integer() (int64, bool) {
	b := s.line[s.pos:]
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
	s.pos += j
	return v, true
}

// Quoted consumes a JSON string with only the escapes the canonical encoding uses, and appends its
// content to dst.
func (s *Scanner) Quoted(dst []byte) ([]byte, bool) {
	b := s.line
	if s.pos >= len(b) || b[s.pos] != '"' {
		return dst, false
	}
	j := s.pos + 1
	start := j
	for j < len(b) {
		if j = SkipPlain(b, j); j == len(b) {
			break
		}
		c := b[j]
		switch {
		case c == '"':
			dst = append(dst, b[start:j]...)
			s.pos = j + 1
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

// Base64 consumes a JSON string of standard base64 and appends the decoded bytes to dst; on failure dst
// is returned as it was.
func (s *Scanner) Base64(dst []byte) ([]byte, bool) {
	b := s.line
	if s.pos >= len(b) || b[s.pos] != '"' {
		return dst, false
	}
	end := bytes.IndexByte(b[s.pos+1:], '"')
	if end < 0 {
		return dst, false
	}
	enc := b[s.pos+1 : s.pos+1+end]
	a := len(dst)
	dst = append(dst, make([]byte, base64.StdEncoding.DecodedLen(len(enc)))...)
	// Strict: padding bits must be zero; the length check refuses the line breaks the decoder skips.
	n, err := strictBase64.Decode(dst[a:], enc)
	if err != nil || base64.StdEncoding.EncodedLen(n) != len(enc) {
		return dst[:a], false
	}
	s.pos += end + 2
	return dst[:a+n], true
}
