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
	released chan struct{}  // closed when the stall ends
	down     chan struct{}  // closed when the server stops; a new one when it serves again
	held     map[string]int // method -> half-closed appends waiting for a stall to end

	inflight    map[string]int // method -> calls running now
	maxInflight map[string]int // method -> most calls ever running at once
	maxPermits  int64          // most permits ever outstanding on one ListEvents stream
	afterAppend func(context string)
}

func (f *faults) init() {
	f.calls = make(map[string]int)
	f.failAt = make(map[string][]int)
	f.inflight = make(map[string]int)
	f.maxInflight = make(map[string]int)
	f.held = make(map[string]int)
	f.down = make(chan struct{})
}

// serving and stopping bracket each time the server serves: a stop ends the wait of held appends.
func (f *faults) serving() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.down:
		f.down = make(chan struct{})
	default:
	}
}

func (f *faults) stopping() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.down:
	default:
		close(f.down)
	}
}

// holdCommit keeps a half-closed transaction (or a snapshot append) of method from being stored while the
// server is stalled. The client can no longer take it back: AXON.md 2.3 says only an error or cancel before
// the half-close stores nothing, so a client that dies now does not end the wait. Only the end of the stall
// does (commit: true), or the server stopping, which stores nothing, as a crash before the write would.
func (f *faults) holdCommit(method string) (commit bool) {
	f.mu.Lock()
	if !f.stalled {
		f.mu.Unlock()
		return true
	}
	released, down := f.released, f.down
	f.held[method]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.held[method]--
		f.mu.Unlock()
	}()
	select {
	case <-released:
		return true
	case <-down:
		return false
	}
}

// enter and leave count the calls of a method running at once.
func (f *faults) enter(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight[method]++
	f.maxInflight[method] = max(f.maxInflight[method], f.inflight[method])
}

func (f *faults) leave(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight[method]--
}

// notePermits records the permits a ListEvents stream has outstanding.
func (f *faults) notePermits(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxPermits = max(f.maxPermits, n)
}

func (f *faults) afterAppendHook() func(string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.afterAppend
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
// AppendSnapshot hold what they received whole (a half-closed transaction, a snapshot) without storing it.
// A held append is stored when the stall ends, even if its client died meanwhile (AXON.md 2.3: only a
// cancel before the half-close stores nothing); Stop drops it, as a crash before the write would. Token
// and aggregate reads keep answering.
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

// Held returns how many appends of method (MethodAppendEvent or MethodAppendSnapshot) a Stall holds
// now: received whole (half-closed), not yet stored.
func (s *Server) Held(method string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.held[method]
}

// Calls returns how many calls of method (one of the Method constants) the server has received.
func (s *Server) Calls(method string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.calls[method]
}

// MaxConcurrentCalls returns the most calls of method (one of the Method constants) that were running at
// the same time since the server started: 1 for a client that never overlaps them. An AppendEvent call
// counts from its half-close (when its transaction becomes the server's to commit) to its confirmation:
// MaxConcurrentCalls(MethodAppendEvent) is the most transactions whose outcome was pending at once.
func (s *Server) MaxConcurrentCalls(method string) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.maxInflight[method]
}

// openAppends counts AppendEvent calls from their start, half-closed or not, beside MethodAppendEvent.
const openAppends = MethodAppendEvent + ", open"

// MaxOpenAppendCalls returns the most AppendEvent calls that were open at the same time, whether sending
// their events or committing: a client that sends the next transaction while one commits reaches 2, where
// MaxConcurrentCalls(MethodAppendEvent), which counts committing transactions, stays 1.
func (s *Server) MaxOpenAppendCalls() int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.maxInflight[openAppends]
}

// MaxOutstandingPermits returns the most permits any ListEvents stream has had outstanding (granted and not
// yet used by an event sent) since the server started.
func (s *Server) MaxOutstandingPermits() int64 {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.maxPermits
}

// AfterAppend makes the server call fn, with the context's name, after each AppendEvent transaction that
// stored something is committed and before it is confirmed: a test can play another writer there (Load
// into the same context) or stop the server. nil removes the hook. fn must not call AfterAppend.
func (s *Server) AfterAppend(fn func(context string)) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.afterAppend = fn
}
