package archive

import (
	"errors"
	"strconv"
	"strings"
)

// ErrRecord is returned, wrapped in an *Error that says where, for a JSON line that is not a valid
// canonical record.
var ErrRecord = errors.New("invalid record")

// Error locates a problem in an archive: the file (relative to the archive root), the line within the
// decompressed chunk (1-based, 0 when not about a line) and the token or position of the record, when
// known (-1 otherwise).
type Error struct {
	Path  string
	Line  int64
	Token int64
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.FormatInt(e.Line, 10))
	}
	if e.Token >= 0 {
		b.WriteString(" (token ")
		b.WriteString(strconv.FormatInt(e.Token, 10))
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
