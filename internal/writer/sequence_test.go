package writer

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
)

func TestParseSequenceDetail(t *testing.T) {
	seq, id, want, ok := parseSequenceDetail("Invalid sequence number 5 for aggregate order, expected 7, expected 2")
	assert.True(t, ok)
	assert.Equal(t, int64(5), seq)
	assert.Equal(t, "order, expected 7", id, "the last \", expected \" ends the id")
	assert.Equal(t, int64(2), want)
	for _, bad := range []string{"", "Invalid sequence number x for aggregate a, expected 1", "Invalid sequence number 1 for aggregate a",
		"Invalid sequence number while storing snapshot. Highest aggregate a sequence number: -1, snapshot sequence 0."} {
		_, _, _, ok := parseSequenceDetail(bad)
		assert.False(t, ok, bad)
	}
}

func TestLocateNamed(t *testing.T) {
	tx := &transaction{tokens: []int64{10, 11, 12, 13}, events: [][]byte{
		encode(t, "a", 5), encode(t, "b", 0), encode(t, "b", 2), encode(t, "b", 0)}}
	// A break within the transaction: b's third event follows 2, not 0.
	err := locateNamed(tx, 0, "b", 3, assert.AnError)
	se := err.(*SequenceError)
	assert.Equal(t, int64(13), se.Token)
	// The first event of an aggregate that does not follow the store.
	se = locateNamed(tx, 5, "a", 2, assert.AnError).(*SequenceError)
	assert.Equal(t, int64(10), se.Token)
	// Nothing matches: the transaction is named.
	assert.ErrorContains(t, locateNamed(tx, 9, "c", 0, assert.AnError), "transaction of tokens 10-13")
}

func encode(t *testing.T, id string, seq int64) []byte {
	t.Helper()
	return codec.Encode(nil, &archive.Record{AggregateID: id, AggregateType: "Order", Sequence: seq})
}
