package writer

import (
	"context"
	"errors"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/ordered"
)

// recBatchSize is the number of lines parsed as one unit of work: channel hand-offs then cost nothing per
// event, and the batches in flight stay a few MiB.
const recBatchSize = 512

// recBatch carries archive lines from the reading goroutine to a worker, and the events encoded from them
// on to the caller of eachEncodedEvent.
type recBatch struct {
	tokens []int64
	lines  []byte
	ends   []int    // lines[ends[i-1]:ends[i]] is line i
	paths  []string // chunk path and line number of each line, for errors
	lineNo []int64

	events    []byte // the protobuf Events, one after the other
	eventEnds []int
	perr      error // the error parsing line perrAt; the lines before it parsed
	perrAt    int
	rerr      error // the error that ended the reading, after the lines of this batch
}

func (b *recBatch) Reset() {
	b.tokens, b.lines, b.ends, b.paths, b.lineNo = b.tokens[:0], b.lines[:0], b.ends[:0], b.paths[:0], b.lineNo[:0]
	b.events, b.eventEnds = b.events[:0], b.eventEnds[:0]
	b.perr, b.perrAt, b.rerr = nil, 0, nil
}

// encode parses each line and encodes its event, the record lent by the parser only for that.
func (b *recBatch) encode() {
	start := 0
	for i, end := range b.ends {
		err := archive.VisitEventJSON(b.lines[start:end], func(r *archive.Record) error {
			b.events = codec.Encode(b.events, r)
			return nil
		})
		if err != nil {
			b.perr = &archive.Error{Path: b.paths[i], Line: b.lineNo[i], Token: b.tokens[i], Err: err}
			b.perrAt = i
			return
		}
		b.eventEnds = append(b.eventEnds, len(b.events))
		start = end
	}
}

// eachEncodedEvent calls fn, in token order, with the token and the protobuf Event (as codec.Encode
// writes it) of every archive event from token from on, across the chain, with the same errors as
// eachEvent. One goroutine reads (decompresses and hashes) the archive and workers parse and encode
// batches of lines on all cores. The event passed to fn is valid only during the call.
func (im *importer) eachEncodedEvent(ctx context.Context, from int64, fn func(token int64, event []byte) error) error {
	if ordered.Workers() < 2 {
		var buf []byte
		return im.eachEvent(ctx, from, func(r *archive.Record) error {
			buf = codec.Encode(buf[:0], r)
			return fn(r.Token, buf)
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := ordered.New(func() *recBatch { return new(recBatch) }, func() func(*recBatch) {
		return func(b *recBatch) { b.encode() }
	})
	go func() {
		defer p.Finish()
		im.readBatches(ctx, from, p)
	}()
	err := p.Drain(func(b *recBatch) error { return deliver(b, fn) }, cancel)
	if err == nil {
		err = ctx.Err()
	}
	return err
}

func deliver(b *recBatch, fn func(int64, []byte) error) error {
	start := 0
	for i, end := range b.eventEnds {
		if err := fn(b.tokens[i], b.events[start:end:end]); err != nil {
			return err
		}
		start = end
	}
	if b.perr != nil {
		return b.perr
	}
	return b.rerr
}

// readBatches reads the archive's lines from token from on, across the chain, into batches of p, and
// submits each. An error ends the reading in the last batch submitted.
func (im *importer) readBatches(ctx context.Context, from int64, p *ordered.Pipeline[*recBatch]) {
	var s *ordered.Slot[*recBatch]
	err := im.walkEvents(ctx, from, func(it *archive.Iterator) error {
		if s == nil {
			var err error
			if s, err = p.Get(ctx); err != nil {
				return errStop
			}
		}
		b := s.Batch
		path, line := it.Path()
		b.tokens = append(b.tokens, it.Token())
		b.lines = append(b.lines, it.Line()...)
		b.ends = append(b.ends, len(b.lines))
		b.paths = append(b.paths, path)
		b.lineNo = append(b.lineNo, line)
		if len(b.tokens) < recBatchSize {
			return nil
		}
		err := p.Submit(ctx, s)
		s = nil
		if err != nil {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) { // the consumer stopped: nobody reads more
		return
	}
	if err != nil {
		if s == nil {
			var gerr error
			if s, gerr = p.Get(ctx); gerr != nil {
				return
			}
		}
		s.Batch.rerr = err
	}
	if s != nil && (len(s.Batch.tokens) > 0 || s.Batch.rerr != nil) {
		_ = p.Submit(ctx, s)
	}
}
