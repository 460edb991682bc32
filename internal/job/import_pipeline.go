package job

import (
	"context"
	"math"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/ordered"
	"github.com/axarchive/axarchive/internal/reader"
)

// eventAggregate is the aggregate of an event as the import sends it: its id (valid only during the
// call it is passed to) and sequence, or domain false for an event without an aggregate type.
type eventAggregate struct {
	id       []byte
	sequence int64
	domain   bool
}

// eachEncodedEvent calls fn, in token order, with the token, the protobuf Event (as codec.Encode writes
// it) and, with aggregates, the aggregate (else a zero eventAggregate) of every archive event from token
// from on, across the chain, with the same errors as eachEvent. One goroutine reads (decompresses and hashes) the archive and the pipeline's
// workers parse and encode batches of lines on all cores. The event passed to fn is valid only during
// the call.
func (im *importer) eachEncodedEvent(ctx context.Context, from int64, aggregates bool, fn func(token int64, event []byte, agg eventAggregate) error) error {
	if ordered.Workers() < 2 {
		var buf, id []byte
		return im.eachEvent(ctx, from, func(r *archive.Record) error {
			buf = codec.Encode(buf[:0], r)
			var agg eventAggregate
			if aggregates {
				id = append(id[:0], r.AggregateID...)
				agg = eventAggregate{id: id, sequence: r.Sequence, domain: r.AggregateType != ""}
			}
			return fn(r.Token, buf, agg)
		})
	}
	err, readErr := pipeline(ctx, importBatch, 0, func() func(*batch) { return toEvents(aggregates) }, func(f *feed) error {
		err := im.src.Events(f.ctx, from, math.MaxInt64, func(e reader.Event) error {
			b, err := f.next()
			if err != nil {
				return err
			}
			b.paths = append(b.paths, e.Path)
			b.lineNo = append(b.lineNo, e.LineNo)
			_, err = f.add(e.Token, e.Line, false)
			return err
		})
		if err != nil {
			// The lines read before the error go on, ahead of it.
			if ferr := f.flush(); ferr != nil {
				return ferr
			}
		}
		return err
	}, func(b *batch) error {
		start, aggStart := 0, 0
		for i, end := range b.outEnds {
			var agg eventAggregate
			if aggregates {
				aggEnd := b.outAggEnds[i]
				agg = eventAggregate{id: b.outAgg[aggStart:aggEnd:aggEnd], sequence: b.outSeq[i], domain: b.outSeq[i] != noDomain}
				aggStart = aggEnd
			}
			if err := fn(b.outToken[i], b.out[start:end:end], agg); err != nil {
				return err
			}
			start = end
		}
		return b.err
	})
	if err == nil {
		err = readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}
