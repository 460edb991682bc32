// Package ordered runs the per-batch work of a stream on every core while keeping the stream's order:
// a producer fills batches and submits them, workers process them concurrently, and a consumer receives
// them in the order they were submitted. A fixed set of batches circulates, so memory stays bounded
// whatever the length of the stream and the steady state allocates nothing.
package ordered

import (
	"context"
	"runtime"
	"sync"
)

// Batch is what circulates: Reset empties it for reuse.
type Batch interface{ Reset() }

// Slot holds one batch on its way through the pipeline.
type Slot[B Batch] struct {
	Batch B
	done  chan struct{}
}

// Pipeline is one run of a stream through the workers: Get and Submit from one producing goroutine,
// Finish when it is done, Drain from one consuming goroutine.
type Pipeline[B Batch] struct {
	free    chan *Slot[B]
	work    chan *Slot[B]
	ordered chan *Slot[B]
	wg      sync.WaitGroup
}

// Workers is the number of goroutines a Pipeline processes batches on.
func Workers() int { return runtime.GOMAXPROCS(0) }

// New starts Workers() workers, each with the function newWorker returns (so that a worker can keep
// state of its own, such as a parser's buffers), over 2×Workers()+2 batches made by newBatch.
func New[B Batch](newBatch func() B, newWorker func() func(B)) *Pipeline[B] {
	workers := Workers()
	inflight := 2*workers + 2
	p := &Pipeline[B]{
		free:    make(chan *Slot[B], inflight),
		work:    make(chan *Slot[B], inflight),
		ordered: make(chan *Slot[B], inflight),
	}
	for range inflight {
		p.free <- &Slot[B]{Batch: newBatch(), done: make(chan struct{}, 1)}
	}
	for range workers {
		p.wg.Add(1)
		process := newWorker()
		go func() {
			defer p.wg.Done()
			for s := range p.work {
				process(s.Batch)
				s.done <- struct{}{}
			}
		}()
	}
	return p
}

// Get returns an empty batch, waiting while all are in flight: this is what bounds memory.
func (p *Pipeline[B]) Get(ctx context.Context) (*Slot[B], error) {
	select {
	case s := <-p.free:
		s.Batch.Reset()
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Release gives back a batch that is not submitted.
func (p *Pipeline[B]) Release(s *Slot[B]) { p.free <- s }

// Submit hands a filled batch to the workers; Drain sees it in submission order.
func (p *Pipeline[B]) Submit(ctx context.Context, s *Slot[B]) error {
	select {
	case p.ordered <- s:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.work <- s // never blocks for long: work has room for every batch there is
	return nil
}

// Finish tells Drain that no more batches come.
func (p *Pipeline[B]) Finish() { close(p.ordered) }

// Drain calls fn for every processed batch in submission order, until Finish, and stops the workers.
// After fn's first error it calls stop (so that the producer can give up at once), passes no more
// batches to fn, and returns that error once the producer has finished.
func (p *Pipeline[B]) Drain(fn func(B) error, stop func()) error {
	var firstErr error
	for s := range p.ordered {
		<-s.done
		if firstErr == nil {
			if firstErr = fn(s.Batch); firstErr != nil {
				stop()
			}
		}
		p.free <- s
	}
	close(p.work)
	p.wg.Wait()
	return firstErr
}
