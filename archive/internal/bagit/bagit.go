// Package bagit reads and writes the tag files of a BagIt 1.0 bag (RFC 8493) as an archive uses them:
// bagit.txt, bag-info.txt and the SHA-256 manifests. It knows the files' syntax; what their values must
// be is the archive's business.
package bagit

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
)

// Content is the one bagit.txt an archive has.
const Content = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

// Labels of bag-info.txt reserved by RFC 8493 that an archive writes and checks.
const (
	Agent = "Bag-Software-Agent"
	Date  = "Bagging-Date"
	Oxum  = "Payload-Oxum"
)

// Problem is a line of a tag file that does not parse (Line 1-based, 0 for the whole file).
type Problem struct {
	Line int64
	Msg  string
}

// File is one tag file, with its content.
type File struct {
	Path string
	Data []byte
}

// Entry is one line of a SHA-256 manifest: a file's path and its digest in lower-case hex.
type Entry struct {
	Line int64 // when parsed
	Sum  string
	Path string
}

// Field is one label of bag-info.txt with its value (continuation lines joined) and its line.
type Field struct {
	Label, Value string
	Line         int64
}

// Manifest returns a SHA-256 manifest of entries, sorted by path, in sha256sum's "sum  path" form.
func Manifest(entries []Entry) []byte {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s  %s\n", e.Sum, e.Path)
	}
	return b.Bytes()
}

// Info returns bag-info.txt of the fields, in their order, each value made to fit on its line.
func Info(fields []Field) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Label, value(f.Value))
	}
	return b.Bytes()
}

// TagManifest returns tagmanifest-sha256.txt of the files.
func TagManifest(files []File) []byte {
	entries := make([]Entry, len(files))
	for i, f := range files {
		entries[i] = Entry{Sum: fmt.Sprintf("%x", sha256.Sum256(f.Data)), Path: f.Path}
	}
	return Manifest(entries)
}

// value makes a value fit on one bag-info.txt line.
func value(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// ValidDeclaration reports whether b is exactly Content (CRLF tolerated).
func ValidDeclaration(b []byte) bool {
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	return len(lines) == 3 && lines[0] == "BagIt-Version: 1.0" && lines[1] == "Tag-File-Character-Encoding: UTF-8" && lines[2] == ""
}

// ParseManifest parses manifest-sha256.txt or tagmanifest-sha256.txt: lines of a SHA-256 in hex, white
// space and a path (sha256sum's "hash  path" and "hash *path" included; CRLF tolerated). Lines it cannot
// parse are returned as problems.
func ParseManifest(b []byte) ([]Entry, []Problem) {
	var out []Entry
	problems := eachLine(b, func(n int64, line string) *Problem {
		sum, path, ok := strings.Cut(line, " ")
		if !ok {
			sum, path, ok = strings.Cut(line, "\t")
		}
		path = strings.TrimLeft(path, " \t")
		path = strings.TrimPrefix(path, "*")
		if !ok || len(sum) != 64 || !IsHex(sum) || path == "" {
			return &Problem{n, fmt.Sprintf("not a %q line: %q", "sha256  path", excerpt(line))}
		}
		out = append(out, Entry{Line: n, Sum: strings.ToLower(sum), Path: path})
		return nil
	})
	return out, problems
}

// MaxProblems bounds the problems a parse returns: a hostile tag file of bad lines then costs memory
// for the first ones only, and the last problem says how many more lines were bad.
const MaxProblems = 100

// eachLine calls fn with every line of b but the empty one after the final LF, without its CR, and
// returns the problems: fn's and the empty lines, at most MaxProblems and one that counts the rest.
func eachLine(b []byte, fn func(n int64, line string) *Problem) []Problem {
	var problems []Problem
	var more int64
	add := func(p Problem) {
		if len(problems) < MaxProblems {
			problems = append(problems, p)
		} else {
			more++
		}
	}
	n := int64(0)
	for len(b) > 0 {
		n++
		raw := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			raw, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line := string(bytes.TrimSuffix(raw, []byte("\r")))
		if line == "" {
			add(Problem{n, "empty line"})
			continue
		}
		if p := fn(n, line); p != nil {
			add(*p)
		}
	}
	if more > 0 {
		problems = append(problems, Problem{0, fmt.Sprintf("and %d more lines that do not parse", more)})
	}
	return problems
}

// excerpt is s for an error message: at most its first 200 bytes.
func excerpt(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// IsHex reports whether s holds hexadecimal digits only.
func IsHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ParseInfo parses bag-info.txt into its fields; lines it cannot parse are returned as problems.
func ParseInfo(b []byte) ([]Field, []Problem) {
	var out []Field
	// The last field's value, its continuation lines joined as they come: joining by concatenation
	// would copy the value again for each line, quadratic in a hostile file of continuation lines.
	var value strings.Builder
	flush := func() {
		if len(out) > 0 {
			out[len(out)-1].Value = value.String()
		}
	}
	problems := eachLine(b, func(n int64, line string) *Problem {
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) == 0 {
				return &Problem{n, "continuation line without a label"}
			}
			value.WriteByte(' ')
			value.WriteString(strings.TrimSpace(line))
			return nil
		}
		label, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(label) == "" {
			return &Problem{n, fmt.Sprintf("not a %q line", "Label: value")}
		}
		flush()
		value = strings.Builder{}
		value.WriteString(strings.TrimSpace(v))
		out = append(out, Field{Label: strings.TrimSpace(label), Line: n})
		return nil
	})
	flush()
	return out, problems
}

// ValidDate reports whether s is a date written YYYY-MM-DD, as Bagging-Date is.
func ValidDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i, c := range s {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
