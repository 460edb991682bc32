package job

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/ordered"
)

// The one order-keeping pipeline of the jobs. A producer (a source's events: the server's, the segment
// files', the archive's lines) fills batches through a feed, workers convert each batch on every core
// (raw protobuf to canonical lines, applying the selection; or lines to protobuf), and a consumer (the
// sink, or the proof) takes them in token order. A fixed set of batches circulates (internal/ordered),
// so memory stays bounded whatever the length of the stream.

// Batch sizes: large enough that hand-offs cost nothing per event, small enough that the batches in
// flight stay a few MiB.
const (
	// exportBatch is an export's: the archive writer compresses on one core while the workers convert.
	exportBatch = 1024
	// importBatch is an import's: lines parsed and encoded for the appends or the segment files.
	importBatch = 512
	// proofBatch is the proof's, which runs beside an import: its batches in flight stay a few MB.
	proofBatch = 256
)

// maxBatchAge bounds how long an export's received events wait for their batch to fill: a slow server
// still sees its events committed (and an interrupted export keeps them) instead of waiting for a full
// batch.
const maxBatchAge = 200 * time.Millisecond

// batch carries records from a producer to a worker and what the worker made of them on to the
// consumer. Its buffers are reused, so the steady state allocates nothing per batch.
type batch struct {
	// What the producer added: record i is in[ends[i-1]:ends[i]].
	tokens []int64
	in     []byte
	ends   []int
	txEnd  []bool   // record i ends a transaction of the source
	paths  []string // for lines read from an archive: the chunk and line number of each, for errors
	lineNo []int64

	// What the worker made: output j is out[outEnds[j-1]:outEnds[j]], of the record with token
	// outToken[j] (a selection leaves records out).
	out      []byte
	outEnds  []int
	outToken []int64
	errs     []error  // with tolerant conversion: the error converting record i, or nil
	aggs     []string // aggregate ids of the domain events kept, in token order, repeats included
	inBytes  int64
	err      error // the error that stopped the conversion at record errAt; the records before it converted
	errAt    int
	// For an import, of output j: its aggregate id outAgg[outAggEnds[j-1]:outAggEnds[j]] and sequence
	// outSeq[j], noDomain for an event that is not a domain event.
	outAgg     []byte
	outAggEnds []int
	outSeq     []int64
}

func (b *batch) Reset() {
	b.tokens, b.in, b.ends, b.txEnd, b.paths, b.lineNo = b.tokens[:0], b.in[:0], b.ends[:0], b.txEnd[:0], b.paths[:0], b.lineNo[:0]
	b.out, b.outEnds, b.outToken, b.errs, b.aggs = b.out[:0], b.outEnds[:0], b.outToken[:0], b.errs[:0], b.aggs[:0]
	b.outAgg, b.outAggEnds, b.outSeq = b.outAgg[:0], b.outAggEnds[:0], b.outSeq[:0]
	b.inBytes, b.err, b.errAt = 0, nil, 0
}

func (b *batch) add(token int64, in []byte, txEnd bool) {
	b.tokens = append(b.tokens, token)
	b.txEnd = append(b.txEnd, txEnd)
	b.in = append(b.in, in...)
	b.ends = append(b.ends, len(b.in))
}

// feed is how a producer fills the pipeline's batches.
type feed struct {
	ctx     context.Context
	p       *ordered.Pipeline[*batch]
	s       *ordered.Slot[*batch]
	size    int
	maxAge  time.Duration // 0: batches go on when full only
	started time.Time     // when the batch being filled could first be filled
}

// next returns the batch being filled, taking an empty one when there is none.
func (f *feed) next() (*batch, error) {
	if f.s == nil {
		s, err := f.p.Get(f.ctx)
		if err != nil {
			return nil, err
		}
		f.s = s
	}
	return f.s.Batch, nil
}

// add appends a record to the batch being filled and hands the batch on when it is full (or, with
// maxAge, getting old).
func (f *feed) add(token int64, in []byte, txEnd bool) (*batch, error) {
	b, err := f.next()
	if err != nil {
		return nil, err
	}
	b.add(token, in, txEnd)
	n := len(b.tokens)
	if n >= f.size || (f.maxAge > 0 && n%64 == 0 && time.Since(f.started) >= f.maxAge) {
		return b, f.flush()
	}
	return b, nil
}

// flush hands the batch being filled on now, if it holds anything.
func (f *feed) flush() error {
	if f.s == nil || len(f.s.Batch.tokens) == 0 {
		return nil
	}
	s := f.s
	f.s = nil
	f.started = time.Now()
	return f.p.Submit(f.ctx, s)
}

// pipeline runs produce on a goroutine of its own, convert (one function per worker, made by newWorker)
// on every core, and consume on the caller's, on the batches in the order produce filled them. What
// produce leaves in its last batch goes on if it returns nil, and is dropped if it fails. After
// consume's first error the producer is stopped and no more batches are consumed. It returns consume's
// error, and produce's.
func pipeline(ctx context.Context, size int, maxAge time.Duration, newWorker func() func(*batch),
	produce func(f *feed) error, consume func(*batch) error) (consumeErr, produceErr error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := ordered.New(func() *batch { return new(batch) }, newWorker)
	produced := make(chan error, 1)
	go func() {
		defer p.Finish()
		f := &feed{ctx: ctx, p: p, size: size, maxAge: maxAge, started: time.Now()}
		err := produce(f)
		if err == nil {
			err = f.flush()
		} else if f.s != nil {
			p.Release(f.s)
		}
		produced <- err
	}()
	consumeErr = p.Drain(consume, cancel)
	return consumeErr, <-produced
}

// toLines converts raw protobuf events into canonical JSON lines, keeping what sel keeps and noting the
// aggregate ids of the domain events kept when wantAggregates. An event that does not decode stops the
// batch (b.err), unless tolerant: the proof describes such an event of the target (b.errs) and goes on,
// with one output per record.
func toLines(sel *selection, wantAggregates, tolerant bool) func(*batch) {
	return func(b *batch) {
		var rec archive.Record
		var dec codec.Shared // rec shares b.in, which stays put until the batch is recycled
		start := 0
		for i, end := range b.ends {
			raw := b.in[start:end]
			start = end
			rec.Token = b.tokens[i]
			b.inBytes += int64(len(raw))
			err := dec.Decode(raw, &rec)
			if tolerant {
				if err == nil {
					b.out = archive.AppendEventJSON(b.out, &rec)
				}
				b.errs = append(b.errs, err)
				b.outEnds = append(b.outEnds, len(b.out))
				b.outToken = append(b.outToken, rec.Token)
				continue
			}
			if err != nil {
				b.err, b.errAt = &TokenError{Token: rec.Token, Err: err}, i
				return
			}
			if !sel.keep(&rec) {
				continue
			}
			b.out = archive.AppendEventJSON(b.out, &rec)
			b.outEnds = append(b.outEnds, len(b.out))
			b.outToken = append(b.outToken, rec.Token)
			if wantAggregates && rec.AggregateType != "" {
				b.aggs = append(b.aggs, strings.Clone(rec.AggregateID)) // the consumer keeps it; b.in is reused
			}
		}
	}
}

// noDomain is the sequence toEvents notes for an event without an aggregate type, which the server
// neither validates nor counts in an aggregate's highest sequence (AXON.md 2.3).
const noDomain = math.MinInt64

// toEvents parses archive lines and encodes each event as protobuf, the record lent by the parser only
// for that. With aggregates it notes each event's aggregate and sequence too, which the snapshots sent
// beside the events wait for, as the line is parsed only here.
func toEvents(aggregates bool) func(*batch) {
	return func(b *batch) {
		start := 0
		for i, end := range b.ends {
			err := archive.VisitEventJSON(b.in[start:end], func(r *archive.Record) error {
				b.out = codec.Encode(b.out, r)
				if !aggregates {
					return nil
				}
				seq := int64(noDomain)
				if r.AggregateType != "" {
					b.outAgg = append(b.outAgg, r.AggregateID...)
					seq = r.Sequence
				}
				b.outAggEnds = append(b.outAggEnds, len(b.outAgg))
				b.outSeq = append(b.outSeq, seq)
				return nil
			})
			if err != nil {
				b.err, b.errAt = &archive.Error{Path: b.paths[i], Line: b.lineNo[i], Token: b.tokens[i], Err: err}, i
				return
			}
			b.outEnds = append(b.outEnds, len(b.out))
			b.outToken = append(b.outToken, b.tokens[i])
			start = end
		}
	}
}
