package tokenstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// ErrTokenMap: the token map file is not one a renumbered import wrote.
var ErrTokenMap = errors.New("not a valid token map")

// The token map of a renumbered import (internal/job writes it; README "Importing"): a header line,
// "# target head before the import: N", then "ARCHIVE_TOKEN TARGET_TOKEN" per event, archive tokens
// increasing, target tokens consecutive from N+1.
const (
	tokenMapHeader     = "# axarchive token map: archive-token target-token"
	tokenMapHeadPrefix = "# target head before the import: "
	maxTokenMapLine    = 4096
)

// TokenMap is what a token map says about the positions a rewrite needs. Only those are kept, so that
// a map of any size is read in bounded memory.
type TokenMap struct {
	Path       string
	HeadBefore int64 // the target's last token before the import (-1: it was empty)
	resolved   map[int64]int64
	listed     map[int64]bool
}

// Target returns where position p goes. p means "event p has been handled, read on from p+1": the
// processor has handled every listed archive token up to p and none after it, so p goes to the target
// of the largest listed archive token not above p, or, when there is none, to the target's head before
// the import (it has handled none of the imported events).
func (m *TokenMap) Target(p int64) int64 { return m.resolved[p] }

// Listed reports whether p is an archive token of the map (not an event a filter left out).
func (m *TokenMap) Listed(p int64) bool { return m.listed[p] }

// ReadTokenMap reads the token map at path, resolving positions.
func ReadTokenMap(path string, positions []int64) (*TokenMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read token map: %w", err)
	}
	defer f.Close()
	return readTokenMap(path, f, positions)
}

func readTokenMap(path string, in io.Reader, positions []int64) (*TokenMap, error) {
	queries := append([]int64(nil), positions...)
	sort.Slice(queries, func(i, j int) bool { return queries[i] < queries[j] })
	m := &TokenMap{Path: path, resolved: map[int64]int64{}, listed: map[int64]bool{}}
	r := bufio.NewReaderSize(in, maxTokenMapLine)
	var lastArchive, lastTarget int64
	mapped := false
	headSeen := false
	qi := 0
	// below resolves the queries before archive token a: they go where the previous mapping went.
	below := func(a int64) {
		for qi < len(queries) && queries[qi] < a {
			if mapped {
				m.resolved[queries[qi]] = lastTarget
			} else {
				m.resolved[queries[qi]] = m.HeadBefore
			}
			qi++
		}
	}
	for lineNo := 1; ; lineNo++ {
		b, err := r.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			break // an incomplete last line (an import killed while writing it) was never confirmed
		}
		bad := func(why string) error {
			return fmt.Errorf("%w: %s line %d: %s", ErrTokenMap, path, lineNo, why)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, bad(fmt.Sprintf("longer than %d bytes", maxTokenMapLine))
		}
		if err != nil {
			return nil, fmt.Errorf("read token map %s: %w", path, err)
		}
		b = b[:len(b)-1]
		if lineNo > 1 && len(b) > 0 && b[0] != '#' {
			// A mapping: the bulk of the file, parsed without allocating.
			a, t, ok := parseMapping(b)
			if !ok {
				return nil, bad("want two tokens")
			}
			if !headSeen {
				return nil, bad("no head line before the first mapping")
			}
			want := m.HeadBefore + 1
			if mapped {
				want = lastTarget + 1
				if a <= lastArchive {
					return nil, bad(fmt.Sprintf("archive token %d after %d", a, lastArchive))
				}
			}
			if t != want {
				return nil, bad(fmt.Sprintf("target token %d where %d was due", t, want))
			}
			below(a)
			for qi < len(queries) && queries[qi] == a {
				m.resolved[a], m.listed[a] = t, true
				qi++
			}
			lastArchive, lastTarget, mapped = a, t, true
			continue
		}
		line := string(b)
		switch {
		case lineNo == 1:
			if line != tokenMapHeader {
				return nil, bad("not an axarchive token map")
			}
		case strings.HasPrefix(line, tokenMapHeadPrefix):
			v, err := strconv.ParseInt(strings.TrimPrefix(line, tokenMapHeadPrefix), 10, 64)
			if err != nil || lineNo != 2 || v < -1 {
				return nil, bad("malformed head line")
			}
			m.HeadBefore, headSeen = v, true
		case strings.HasPrefix(line, "#"):
		default:
			return nil, bad("want two tokens")
		}
	}
	if !headSeen {
		return nil, fmt.Errorf("%w: %s has no head line", ErrTokenMap, path)
	}
	below(1<<63 - 1)
	for ; qi < len(queries); qi++ { // only math.MaxInt64 itself
		m.resolved[queries[qi]] = lastTarget
	}
	return m, nil
}

// parseMapping parses "ARCHIVE TARGET": two non-negative decimal numbers and one space, as the import
// writes them.
func parseMapping(b []byte) (a, t int64, ok bool) {
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return 0, 0, false
	}
	a, ok1 := parseNonNegative(b[:sp])
	t, ok2 := parseNonNegative(b[sp+1:])
	return a, t, ok1 && ok2
}

func parseNonNegative(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 { // 18 digits cannot overflow an int64
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
