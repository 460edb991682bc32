package archive

import (
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
)

// TestTokenOrder walks the rules over a stream of events in range 10..30 with a gap 15..17, with and
// without a filter, and over snapshot positions.
func TestTokenOrder(t *testing.T) {
	gaps := []manifest.Gap{{From: 15, To: 17, Cause: "unavailable"}}
	for _, tc := range []struct {
		name       string
		continuous bool
		tokens     []int64
		want       []orderCheck // what check says of each token before it is taken (gap and expected aside)
	}{
		{"continuous", true, []int64{10, 11, 12, 13, 14, 18}, make([]orderCheck, 6)},
		{"missing", true, []int64{10, 12}, []orderCheck{{}, {missing: true}}},
		{"in-gap", true, []int64{10, 11, 12, 13, 14, 16}, []orderCheck{{}, {}, {}, {}, {}, {behind: true, inGap: true}}},
		{"not-after", true, []int64{10, 10}, []orderCheck{{}, {notAfter: true, behind: true}}},
		{"out-of-range", false, []int64{9, 31}, []orderCheck{{behind: true, outOfRange: true}, {outOfRange: true}}},
		{"filtered", false, []int64{10, 13, 18, 30}, make([]orderCheck, 4)},
		{"filtered-in-gap", false, []int64{14, 17}, []orderCheck{{}, {behind: true, inGap: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newEventOrder(manifest.Range{First: 10, Last: 30}, gaps, tc.continuous)
			for i, tok := range tc.tokens {
				c := o.check(tok)
				if o.clean(tok) {
					assert.Equal(t, orderCheck{expected: c.expected}, c, "clean(%d)", tok)
				}
				c.gap, c.expected = manifest.Gap{}, 0
				assert.Equal(t, tc.want[i], c, "token %d", tok)
				if !c.notAfter {
					o.take(tok)
				}
			}
		})
	}
	o := newEventOrder(manifest.Range{First: 10, Last: 30}, gaps, true)
	for _, tok := range []int64{10, 11, 12, 13, 14} {
		o.take(tok)
	}
	assert.Equal(t, int64(18), o.next, "the gap is passed")
	from, to, missing := o.missingAtEnd()
	assert.Equal(t, []any{int64(18), int64(30), true}, []any{from, to, missing})
	o.skipTo(30)
	_, _, missing = o.missingAtEnd()
	assert.False(t, missing)

	s := newSnapshotOrder(true)
	assert.Equal(t, orderCheck{}, s.check(0))
	s.take(0)
	assert.Equal(t, orderCheck{notOrdinal: true, expected: 1}, s.check(2))
	assert.Equal(t, orderCheck{notAfter: true, notOrdinal: true, expected: 1}, s.check(0))
	assert.True(t, s.after(1))
}

// clean is never true where check finds something, for every token around the range and the gaps, at
// every point of a stream; and it is true for the next token expected when that one is fine.
func TestTokenOrderClean(t *testing.T) {
	gaps := []manifest.Gap{{From: 15, To: 17, Cause: "x"}, {From: 20, To: 20, Cause: "y"}, {From: 25, To: 27, Cause: "z"}}
	for _, continuous := range []bool{true, false} {
		o := newEventOrder(manifest.Range{First: 10, Last: 30}, gaps, continuous)
		for _, taken := range []int64{10, 11, 14, 18, 19, 21, 24, 28, 30} {
			for tok := int64(5); tok <= 35; tok++ {
				c := o.check(tok)
				fine := c == (orderCheck{expected: c.expected})
				if o.clean(tok) {
					assert.True(t, fine, "continuous %v, after %d: %d", continuous, o.prev, tok)
				}
				if tok == o.next && fine {
					assert.True(t, o.clean(tok), "continuous %v, after %d: %d", continuous, o.prev, tok)
				}
			}
			if o.check(taken).notAfter {
				continue
			}
			o.take(taken)
		}
	}
	for _, ordinals := range []bool{true, false} {
		s := newSnapshotOrder(ordinals)
		for _, taken := range []int64{0, 1, 3, 4} {
			for tok := int64(-2); tok <= 6; tok++ {
				c := s.check(tok)
				assert.Equal(t, c == (orderCheck{expected: c.expected}), s.clean(tok), "ordinals %v, after %d: %d", ordinals, s.prev, tok)
			}
			s.take(taken)
		}
	}
}
