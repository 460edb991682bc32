package realserver

import (
	"errors"
	"sync"
)

// warmMu makes background starts one at a time, in the order asked: several JVMs starting at once on a
// small machine each take minutes, where one after the other the first is ready soonest.
var warmMu sync.Mutex

// Warm starts, in the background, the server that Shared(props...) will hand out, so that a test binary
// overlaps the slow start-up (15–60 s) with tests that need no real server; call it from TestMain before
// m.Run. Without the jar or java it does nothing: Shared then skips (or fails in CI) as usual.
func Warm(props ...string) {
	if Available() != nil {
		return
	}
	k := key(props)
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if pool.warming == nil {
		pool.warming = map[string]chan struct{}{}
	}
	if pool.shared[k] != nil || pool.warming[k] != nil {
		return
	}
	done := make(chan struct{})
	pool.warming[k] = done
	go func() {
		warmMu.Lock()
		s, err := pool.startUnlessClosing(props)
		warmMu.Unlock()
		pool.mu.Lock()
		if err != nil {
			if pool.sharedErrs == nil {
				pool.sharedErrs = map[string]error{}
			}
			pool.sharedErrs[k] = err
		} else {
			pool.shared[k] = s
		}
		delete(pool.warming, k)
		pool.mu.Unlock()
		close(done)
	}()
}

// WarmFresh starts, in the background, a server with an empty store that the next Fresh(props...) takes.
func WarmFresh(props ...string) {
	if Available() != nil {
		return
	}
	k := key(props)
	ch := make(chan *Server, 1)
	pool.mu.Lock()
	if pool.recycling == nil {
		pool.recycling = map[string][]chan *Server{}
	}
	pool.recycling[k] = append(pool.recycling[k], ch)
	pool.mu.Unlock()
	go func() {
		warmMu.Lock()
		s, err := pool.startUnlessClosing(props)
		warmMu.Unlock()
		if err != nil {
			ch <- nil
			return
		}
		ch <- s
	}()
}

// waitWarm waits for a background start of the Shared server of key k; called with pool.mu held, it
// returns with it held.
func (p *serverPool) waitWarm(k string) {
	for ch := p.warming[k]; ch != nil; ch = p.warming[k] {
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
}

// startUnlessClosing starts a server unless the test binary is ending.
func (p *serverPool) startUnlessClosing(props []string) (*Server, error) {
	if p.isClosing() {
		return nil, errors.New("the test binary is ending")
	}
	return p.start(props)
}
