package archive

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestTokenOrder walks the rules over a stream of events in range 10..30 with a gap 15..17, with and
// without a filter, and over snapshot positions.
func TestTokenOrder(t *testing.T) {
	gaps := []Gap{{From: 15, To: 17, Cause: "unavailable"}}
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
			o := newEventOrder(Range{First: 10, Last: 30}, gaps, tc.continuous)
			for i, tok := range tc.tokens {
				c := o.check(tok)
				c.gap, c.expected = Gap{}, 0
				assert.Equal(t, tc.want[i], c, "token %d", tok)
				if !c.notAfter {
					o.take(tok)
				}
			}
		})
	}
	o := newEventOrder(Range{First: 10, Last: 30}, gaps, true)
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
