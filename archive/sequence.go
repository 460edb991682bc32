package archive

import (
	"math"
	"slices"

	"github.com/axarchive/axarchive/archive/manifest"
)

// The order rules of a stream's tokens (SPEC.md, "Tokens" and "Snapshot positions"), in one place: the
// Writer enforces them on the records it is given, Verify checks them on the records it reads, and an
// Iterator checks the part that needs no more than the chunk at hand. Each says in its own words what
// is wrong; what is wrong is decided here.
//
//   - Tokens (positions) strictly increase, within and across chunks, and lie within their chunk's range.
//   - Event tokens lie within the archive's range and never inside a declared gap; without a filter,
//     every token of the range is either present or inside a declared gap.
//   - The snapshot positions of a server export are their ordinals 0, 1, 2, ….

// tokenOrder follows the tokens of one stream, in order.
type tokenOrder struct {
	events     bool
	rng        manifest.Range // events: the archive's range
	gaps       []manifest.Gap // events: the declared gaps, in token order
	continuous bool           // events without a filter: no token of the range may be missing
	ordinals   bool           // snapshots of a server export
	prev       int64          // the last token taken, math.MinInt64 before the first
	next       int64          // events: the next token expected, past the gaps that start at it; snapshots: the next ordinal
	gapIdx     int            // events: the first gap not yet passed
}

// newEventOrder follows the event tokens of an archive of range rng with the declared gaps; continuous is
// false when a filter left tokens out.
func newEventOrder(rng manifest.Range, gaps []manifest.Gap, continuous bool) tokenOrder {
	o := tokenOrder{events: true, rng: rng, gaps: gaps, continuous: continuous, prev: math.MinInt64, next: rng.First}
	o.skipGaps()
	return o
}

// newSnapshotOrder follows the snapshot positions of an archive, which are ordinals in a server export.
func newSnapshotOrder(ordinals bool) tokenOrder {
	return tokenOrder{ordinals: ordinals, prev: math.MinInt64}
}

// orderCheck is what is wrong with a token that comes next.
type orderCheck struct {
	notAfter   bool // not greater than the last token: a duplicate, or out of order
	behind     bool // events: before the next token expected (not after the last, or in a gap passed)
	outOfRange bool // events: outside the archive's range
	inGap      bool // events: inside the declared gap gap
	gap        manifest.Gap
	missing    bool  // events: the tokens from next expected up to it are missing, and no gap is declared
	notOrdinal bool  // snapshots of a server export: not its ordinal (next)
	expected   int64 // the next token expected (events) or ordinal (snapshots)
}

// clean reports that tok, as the next token of the stream, breaks no rule, in the common cases (the next
// token expected; with a filter, any later one before the next gap) and without check's cost; false
// means that check must say.
func (o *tokenOrder) clean(tok int64) bool {
	if !o.events {
		return tok > o.prev && (!o.ordinals || tok == o.next)
	}
	return tok >= o.next && tok <= o.rng.Last && (tok == o.next || !o.continuous) &&
		(o.gapIdx == len(o.gaps) || tok < o.gaps[o.gapIdx].From)
}

// after reports whether tok is after the last token taken: the one rule every reader checks.
func (o *tokenOrder) after(tok int64) bool { return tok > o.prev }

// check applies the rules to tok as the next token of the stream, without taking it.
func (o *tokenOrder) check(tok int64) orderCheck {
	c := orderCheck{notAfter: !o.after(tok), expected: o.next}
	if !o.events {
		c.notOrdinal = o.ordinals && tok != o.next
		return c
	}
	c.behind = tok < o.next
	c.outOfRange = tok < o.rng.First || tok > o.rng.Last
	c.gap, c.inGap = o.inGap(tok)
	c.missing = o.continuous && tok > o.next
	return c
}

// take makes tok the last token.
func (o *tokenOrder) take(tok int64) {
	if !o.events {
		o.prev = max(o.prev, tok)
		o.next++
		return
	}
	o.prev = tok
	if tok >= o.next {
		o.next = tok + 1
		if o.gapIdx < len(o.gaps) {
			o.skipGaps()
		}
	}
}

// skipTo passes over tokens up to last that cannot be followed (a chunk that could not be read): they
// are neither checked nor reported missing.
func (o *tokenOrder) skipTo(last int64) {
	if o.events && last >= o.next {
		o.next = last + 1
		o.skipGaps()
	}
	o.prev = max(o.prev, last)
}

// passGap passes over the last of gaps, the declared gaps, which starts at the next token expected (or
// extends the gap before it to there).
func (o *tokenOrder) passGap(gaps []manifest.Gap) {
	o.gaps = gaps
	o.gapIdx = len(gaps)
	o.next = gaps[len(gaps)-1].To + 1
}

// finish passes over the rest of the range.
func (o *tokenOrder) finish() { o.next = o.rng.Last + 1 }

// missingAtEnd returns the tokens missing at the end of the range, without a gap declared for them,
// once the stream has ended.
func (o *tokenOrder) missingAtEnd() (from, to int64, missing bool) {
	return o.next, o.rng.Last, o.continuous && o.next <= o.rng.Last
}

// nextGap returns the first declared gap after the next token expected, if there is one.
func (o *tokenOrder) nextGap() (manifest.Gap, bool) {
	if o.gapIdx < len(o.gaps) {
		return o.gaps[o.gapIdx], true
	}
	return manifest.Gap{}, false
}

// skipGaps moves next past the declared gaps that start at or before it.
func (o *tokenOrder) skipGaps() {
	for o.gapIdx < len(o.gaps) && o.gaps[o.gapIdx].From <= o.next {
		if g := o.gaps[o.gapIdx]; g.To >= o.next {
			o.next = g.To + 1
		}
		o.gapIdx++
	}
}

func (o *tokenOrder) inGap(tok int64) (manifest.Gap, bool) {
	if len(o.gaps) == 0 {
		return manifest.Gap{}, false
	}
	i, found := slices.BinarySearchFunc(o.gaps, tok, func(g manifest.Gap, t int64) int {
		switch {
		case g.To < t:
			return -1
		case g.From > t:
			return 1
		}
		return 0
	})
	if found {
		return o.gaps[i], true
	}
	return manifest.Gap{}, false
}

// outsideChunk reports whether tok lies outside the range the manifest gives its chunk.
func outsideChunk(tok int64, c *manifest.ChunkInfo) bool { return tok < c.First || tok > c.Last }
