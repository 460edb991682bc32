package writer

import (
	"context"
	"errors"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/ordered"
)

// recBatchSize is the number of lines parsed as one unit of work: channel hand-offs then cost nothing per
// event, and the batches in flight stay a few MiB.
const recBatchSize = 512

// recBatch carries archive lines from the reading goroutine to a parsing worker, and their records on to
// the caller of eachEventParallel.
type recBatch struct {
	tokens []int64
	lines  []byte
	ends   []int    // lines[ends[i-1]:ends[i]] is line i
	paths  []string // chunk path and line number of each line, for errors
	lineNo []int64

	recs   []archive.Record
	perr   error // the error parsing line perrAt; the lines before it parsed
	perrAt int
	rerr   error // the error that ended the reading, after the lines of this batch
}

func (b *recBatch) Reset() {
	b.tokens, b.lines, b.ends, b.paths, b.lineNo = b.tokens[:0], b.lines[:0], b.ends[:0], b.paths[:0], b.lineNo[:0]
	b.perr, b.perrAt, b.rerr = nil, 0, nil
}

func (b *recBatch) parse(p *archive.Parser) {
	if cap(b.recs) < len(b.tokens) {
		b.recs = make([]archive.Record, len(b.tokens))
	}
	b.recs = b.recs[:len(b.tokens)]
	start := 0
	for i, end := range b.ends {
		if err := p.ParseEvent(b.lines[start:end], &b.recs[i]); err != nil {
			b.perr = &archive.Error{Path: b.paths[i], Line: b.lineNo[i], Token: b.tokens[i], Err: err}
			b.perrAt = i
			return
		}
		start = end
	}
}

// eachEventParallel is eachEvent with the lines parsed on all cores: one goroutine reads (decompresses and
// hashes) the archive, workers parse batches of lines, and fn is called on the calling goroutine for every
// record in token order, with the same records and errors as eachEvent. The record passed to fn is valid
// only during the call.
func (im *importer) eachEventParallel(ctx context.Context, from int64, fn func(*archive.Record) error) error {
	if ordered.Workers() < 2 {
		return im.eachEvent(ctx, from, fn)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := ordered.New(func() *recBatch { return new(recBatch) }, func() func(*recBatch) {
		var parser archive.Parser // one per worker: it reuses its buffers
		return func(b *recBatch) { b.parse(&parser) }
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

func deliver(b *recBatch, fn func(*archive.Record) error) error {
	for i := range b.recs {
		if b.perr != nil && i == b.perrAt {
			return b.perr
		}
		if err := fn(&b.recs[i]); err != nil {
			return err
		}
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
