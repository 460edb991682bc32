package axontest

import (
	"context"
	"sync"
	"time"
)

// Method names for the fault hooks and Calls: the RPC names of the EventStore service.
const (
	MethodAppendEvent            = "AppendEvent"
	MethodAppendSnapshot         = "AppendSnapshot"
	MethodListAggregateEvents    = "ListAggregateEvents"
	MethodListAggregateSnapshots = "ListAggregateSnapshots"
	MethodListEvents             = "ListEvents"
	MethodReadHighestSequenceNr  = "ReadHighestSequenceNr"
	MethodGetFirstToken          = "GetFirstToken"
	MethodGetLastToken           = "GetLastToken"
	MethodGetTokenAt             = "GetTokenAt"
)

// faults holds the injected faults and the call counters.
type faults struct {
	mu       sync.Mutex
	calls    map[string]int
	failAt   map[string][]int // method -> call ordinals that fail
	drops    []int            // one-shot "drop after n events" for the next ListEvents streams
	delay    time.Duration
	stalled  bool
	released chan struct{} // closed when the stall ends
}

func (f *faults) init() {
	f.calls = make(map[string]int)
	f.failAt = make(map[string][]int)
}

// call counts a call and reports whether it is one that must fail.
func (f *faults) call(method string) (fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	n := f.calls[method]
	for i, at := range f.failAt[method] {
		if at == n {
			f.failAt[method] = append(f.failAt[method][:i], f.failAt[method][i+1:]...)
			return true
		}
	}
	return false
}

// takeDrop returns the event count after which a new ListEvents stream must be dropped, or -1.
func (f *faults) takeDrop() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.drops) == 0 {
		return -1
	}
	n := f.drops[0]
	f.drops = f.drops[1:]
	return n
}

func (f *faults) getDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}

// sleep waits for the injected delay, or until ctx ends.
func (f *faults) sleep(ctx context.Context) error {
	d := f.getDelay()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stallChan returns a channel closed when the stall ends, or nil if the server is not stalled.
func (f *faults) stallChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stalled {
		return nil
	}
	return f.released
}

// waitUnstalled blocks while the server is stalled, or until ctx ends.
func (f *faults) waitUnstalled(ctx context.Context) error {
	ch := f.stallChan()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *faults) unstall() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled {
		f.stalled = false
		close(f.released)
	}
}

// FailNthCall makes the n-th call of method (one of the Method constants), counted from now, fail with
// UNAVAILABLE before doing anything, as a dropped connection would; n = 1 is the next call. Several can be
// armed, for the same call or others.
func (s *Server) FailNthCall(method string, n int) {
	if n < 1 {
		n = 1
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.failAt[method] = append(s.faults.failAt[method], s.faults.calls[method]+n)
}

// DropListEventsAfter makes the next ListEvents stream to start fail with UNAVAILABLE once it has sent n
// events. Each call arms one stream.
func (s *Server) DropListEventsAfter(n int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.drops = append(s.faults.drops, max(n, 0))
}

// SetDelay delays every response message (unary answers, each streamed event, confirmations) by d; 0
// removes the delay.
func (s *Server) SetDelay(d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.delay = d
}

// Stall stops all progress until Unstall: ListEvents streams send nothing more, and AppendEvent and
// AppendSnapshot wait before committing (a client that gives up meanwhile stores nothing). Token and
// aggregate reads keep answering.
func (s *Server) Stall() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if !s.faults.stalled {
		s.faults.stalled = true
		s.faults.released = make(chan struct{})
	}
}

// Unstall ends a Stall.
func (s *Server) Unstall() { s.faults.unstall() }

// Calls returns how many calls of method (one of the Method constants) the server has received.
func (s *Server) Calls(method string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.calls[method]
}
