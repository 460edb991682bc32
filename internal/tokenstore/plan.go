package tokenstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Bounds are the event store's token range: First is the first event's token, Last the last event's
// (-1 when empty). A processor at Last has handled everything (TOKENSTORE.md section 3).
type Bounds struct {
	First, Last int64
	Source      string // where they come from, for messages
}

// Finding is a processor segment whose token does not fit the event store.
type Finding struct {
	Row     Row
	Token   string // the token, shown
	Problem string
	Fix     string // the rewrite that fixes it: "--to-head", "--to-tail" or "--token-map"
}

// Note is a row check or a rewrite left alone, and why.
type Note struct {
	Row  Row
	Note string
}

// Check compares every position of every processor with the store's bounds and, when tokenMap is not
// nil, with the archive tokens it lists. Rows it cannot read fully are notes (GapAwareTrackingToken
// belongs to another kind of event store) or, when their bytes are not what their type says, errors.
func Check(rows []Row, b Bounds, tokenMap *TokenMap) (findings []Finding, notes []Note, err error) {
	var errs []error
	for _, r := range rows {
		if r.Processor == ConfigProcessor {
			continue
		}
		tok, derr := r.Decode()
		if derr != nil {
			if errors.Is(derr, ErrUnsupported) {
				notes = append(notes, Note{r, "not checked: " + strings.TrimPrefix(derr.Error(), r.String()+": ")})
				continue
			}
			errs = append(errs, derr)
			continue
		}
		if tok == nil {
			continue // not started: reads from the store's first event
		}
		shown := tok.Root.String()
		var ahead, before, unlisted []int64
		for _, p := range tok.Positions() {
			switch {
			case p > b.Last:
				ahead = append(ahead, p)
			case p < b.First-1:
				before = append(before, p)
			}
			if tokenMap != nil && !tokenMap.Listed(p) {
				unlisted = append(unlisted, p)
			}
		}
		if len(ahead) > 0 {
			findings = append(findings, Finding{r, shown, fmt.Sprintf("%s past the store's last token %d: the processor handles nothing until the store reaches %d", positions(ahead), b.Last, slices.Max(ahead)+1), "--to-head"})
		}
		if len(before) > 0 {
			findings = append(findings, Finding{r, shown, fmt.Sprintf("%s before the store's first token %d: events %d to %d are not in the store", positions(before), b.First, slices.Min(before)+1, b.First-1), "--to-tail"})
		}
		if len(unlisted) > 0 {
			findings = append(findings, Finding{r, shown, fmt.Sprintf("%s not an archive token of %s (an event the import left out)", positions(unlisted), tokenMap.Path), "--token-map"})
		}
	}
	return findings, notes, errors.Join(errs...)
}

func positions(v []int64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	if len(v) == 1 {
		return "position " + s[0]
	}
	return "positions " + strings.Join(s, ", ")
}

// Mode is what a rewrite does to a position.
type Mode struct {
	name string
	// position maps one position; nil means the whole token becomes NULL.
	position func(int64) int64
	toNull   func(*Token) bool
}

// ToHead moves every position past last (the store's last token) to last; positions at or before it stay:
// moving those would make the processor skip events it has not handled. In an empty store the head is
// no token at all, so such a token becomes NULL.
func ToHead(last int64) Mode {
	return Mode{
		name:     fmt.Sprintf("to the head (%d)", last),
		position: func(p int64) int64 { return min(p, last) },
		toNull: func(t *Token) bool {
			return last < 0 && slices.ContainsFunc(t.Positions(), func(p int64) bool { return p > last })
		},
	}
}

// ToTail resets every token to NULL: the processor reads from the store's first event on.
func ToTail() Mode {
	return Mode{name: "to the tail (NULL: from the first event)", toNull: func(*Token) bool { return true }}
}

// ByTokenMap translates every position through a renumbered import's token map.
func ByTokenMap(m *TokenMap) Mode {
	return Mode{name: "through " + m.Path, position: m.Target, toNull: func(*Token) bool { return false }}
}

// Change is a row a rewrite changes.
type Change struct {
	Old, New         Row
	OldShow, NewShow string
}

// Options say which rows a rewrite may touch.
type Options struct {
	Processors   []string // none: all
	Force        bool     // rewrite claimed processors too
	ClaimTimeout time.Duration
	Now          time.Time
}

// Plan decides the changes of a rewrite. It refuses, naming the row, a token it cannot rewrite exactly,
// and, unless Force, a processor a node holds a live claim on.
func Plan(rows []Row, mode Mode, opts Options) ([]Change, error) {
	known := map[string]bool{}
	for _, r := range rows {
		known[r.Processor] = true
	}
	for _, p := range opts.Processors {
		if p == ConfigProcessor {
			return nil, fmt.Errorf("%s is Axon's storage identifier, not a processor: it is never rewritten", ConfigProcessor)
		}
		if !known[p] {
			return nil, fmt.Errorf("no processor %q in the token table", p)
		}
	}
	selected := func(p string) bool {
		return p != ConfigProcessor && (len(opts.Processors) == 0 || slices.Contains(opts.Processors, p))
	}
	var changes []Change
	var errs []error
	for _, r := range rows {
		if !selected(r.Processor) {
			continue
		}
		tok, err := r.Decode()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if tok == nil {
			continue
		}
		nr := r
		nr.Owner = nil
		ts := Timestamp(opts.Now)
		nr.Timestamp = &ts
		newShow := "null"
		if mode.toNull(tok) {
			nr.Token, nr.TokenType = nil, nil
		} else {
			nr.Token = tok.Rewrite(mode.position)
			if bytes.Equal(nr.Token, r.Token) {
				continue
			}
			nt, err := Decode(*r.TokenType, nr.Token)
			if err != nil { // cannot happen: only digits were replaced by digits
				return nil, fmt.Errorf("%s: rewritten token does not decode: %w", r, err)
			}
			newShow = nt.Root.String()
		}
		changes = append(changes, Change{Old: r, New: nr, OldShow: tok.Root.String(), NewShow: newShow})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("refusing to rewrite: %w", errors.Join(errs...))
	}
	if !opts.Force {
		touched := map[string]bool{}
		for _, c := range changes {
			touched[c.Old.Processor] = true
		}
		var claimed []string
		for _, r := range rows {
			if touched[r.Processor] && r.Claimed(opts.Now, opts.ClaimTimeout) {
				claimed = append(claimed, fmt.Sprintf("%s (owner %s, last stored %s)", r, deref(r.Owner), deref(r.Timestamp)))
			}
		}
		if len(claimed) > 0 {
			sort.Strings(claimed)
			return nil, fmt.Errorf("%w: %s", ErrClaimed, strings.Join(claimed, "; "))
		}
	}
	return changes, nil
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}
