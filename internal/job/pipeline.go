package job

import (
	"strings"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
)

// batchSize is the number of events converted as one unit of work: large enough that channel hand-offs
// cost nothing per event, small enough that a few batches in flight stay a few MiB.
const batchSize = 1024

// maxBatchAge bounds how long received events wait for their batch to fill.
const maxBatchAge = 200 * time.Millisecond

// batch carries raw events from a source to the converters and canonical lines on to the writer, through
// an ordered.Pipeline. Its buffers are reused, so the steady state allocates nothing per batch.
type batch struct {
	tokens []int64
	raw    []byte
	ends   []int  // raw[ends[i-1]:ends[i]] is event i
	txEnd  []bool // event i ends a transaction of the source

	lines     []byte
	lineEnds  []int
	lineToken []int64
	aggs      []string // aggregate ids of the domain events kept, in token order, repeats included
	rawBytes  int64
	err       error
}

func (b *batch) Reset() {
	b.tokens, b.raw, b.ends, b.txEnd = b.tokens[:0], b.raw[:0], b.ends[:0], b.txEnd[:0]
	b.lines, b.lineEnds, b.lineToken, b.aggs = b.lines[:0], b.lineEnds[:0], b.lineToken[:0], b.aggs[:0]
	b.rawBytes, b.err = 0, nil
}

func (b *batch) add(token int64, raw []byte, txEnd bool) {
	b.tokens = append(b.tokens, token)
	b.txEnd = append(b.txEnd, txEnd)
	b.raw = append(b.raw, raw...)
	b.ends = append(b.ends, len(b.raw))
}

func (b *batch) full() bool { return len(b.tokens) >= batchSize }

// converter turns raw events into canonical lines, applying the selection.
type converter struct {
	sel           *selection
	wantAggregate bool
}

func (c *converter) convert(b *batch) {
	var rec archive.Record
	var dec codec.Shared // rec shares b.raw, which stays put until the batch is recycled
	start := 0
	for i, end := range b.ends {
		raw := b.raw[start:end]
		start = end
		rec.Token = b.tokens[i]
		b.rawBytes += int64(len(raw))
		if err := dec.Decode(raw, &rec); err != nil {
			b.err = &TokenError{Token: rec.Token, Err: err}
			return
		}
		if !c.sel.keep(&rec) {
			continue
		}
		b.lines = archive.AppendEventJSON(b.lines, &rec)
		b.lineEnds = append(b.lineEnds, len(b.lines))
		b.lineToken = append(b.lineToken, rec.Token)
		if c.wantAggregate && rec.AggregateType != "" {
			b.aggs = append(b.aggs, strings.Clone(rec.AggregateID)) // the sink keeps it; b.raw is reused
		}
	}
}
