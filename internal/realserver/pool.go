package realserver

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// pool keeps servers between tests, keyed by their property lines: idle ones have an empty store and are
// running; a returned one is wiped and restarted in the background while the next test runs.
var dirsMu sync.Mutex

var pool = &serverPool{idle: map[string][]*Server{}, shared: map[string]*Server{}}

type serverPool struct {
	mu         sync.Mutex
	idle       map[string][]*Server
	recycling  map[string][]chan *Server
	warming    map[string]chan struct{} // Shared servers starting in the background (Warm)
	closing    bool                     // the binary is ending: no more starts in the background
	shared     map[string]*Server
	sharedErrs map[string]error
	dirs       []string
}

func key(props []string) string {
	p := slices.Clone(props)
	slices.Sort(p)
	return strings.Join(p, "\n")
}

// Fresh returns a running server with an empty event store, started with the given property lines, for
// this test alone; it goes back to the pool (wiped) when the test ends.
func Fresh(tb testing.TB, props ...string) *Server {
	tb.Helper()
	Require(tb)
	s, err := pool.take(props)
	if err != nil {
		tb.Fatalf("starting the real Axon Server: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("real Axon Server %s (pid %d), last lines of its log:\n%s", s.Addr(), s.PID(), s.Log(15))
		}
		pool.recycle(s)
	})
	return s
}

// Shared returns the one server of this test binary for these property lines; tests that use it must not
// assume an empty store (read the head first, use aggregate ids of their own).
func Shared(tb testing.TB, props ...string) *Server {
	tb.Helper()
	Require(tb)
	k := key(props)
	pool.mu.Lock()
	defer pool.mu.Unlock()
	pool.waitWarm(k)
	if s := pool.shared[k]; s != nil && s.PID() != 0 {
		return s
	}
	if err := pool.sharedErrs[k]; err != nil {
		tb.Fatalf("starting the real Axon Server: %v", err)
	}
	s, err := pool.start(props)
	if err != nil {
		if pool.sharedErrs == nil {
			pool.sharedErrs = map[string]error{}
		}
		pool.sharedErrs[k] = err
		tb.Fatalf("starting the real Axon Server: %v", err)
	}
	pool.shared[k] = s
	return s
}

func (p *serverPool) start(props []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "axarchive-realserver-")
	if err != nil {
		return nil, err
	}
	p.addDir(dir)
	return StartIn(dir, props...)
}

// addDir remembers a server directory for removal at the end; start runs with or without p.mu held.
func (p *serverPool) addDir(dir string) {
	dirsMu.Lock()
	p.dirs = append(p.dirs, dir)
	dirsMu.Unlock()
}

func (p *serverPool) take(props []string) (*Server, error) {
	k := key(props)
	p.mu.Lock()
	if idle := p.idle[k]; len(idle) > 0 {
		s := idle[len(idle)-1]
		p.idle[k] = idle[:len(idle)-1]
		p.mu.Unlock()
		return s, nil
	}
	// A server being recycled is ready sooner than a new one.
	if waiting := p.recycling[k]; len(waiting) > 0 {
		ch := waiting[0]
		p.recycling[k] = waiting[1:]
		p.mu.Unlock()
		if s := <-ch; s != nil {
			return s, nil
		}
		return p.start(props)
	}
	p.mu.Unlock()
	return p.start(props)
}

// recycle wipes a used server and restarts it in the background; a server that does not come back is
// dropped, and the next take starts a new one.
func (p *serverPool) recycle(s *Server) {
	k := key(s.props)
	ch := make(chan *Server, 1)
	p.mu.Lock()
	if p.recycling == nil {
		p.recycling = map[string][]chan *Server{}
	}
	p.recycling[k] = append(p.recycling[k], ch)
	p.mu.Unlock()
	go func() {
		if err := s.Stop(); err != nil {
			s.Kill()
		}
		// Once the binary's tests are done (Main is closing the pool), a restart would only be waited
		// for and stopped again: tens of seconds at the end of every package that used a fresh server.
		if p.isClosing() || s.wipe() != nil || s.Start() != nil {
			s.Kill()
			ch <- nil
			return
		}
		ch <- s
	}()
}

func (p *serverPool) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// markClosing stops recycling: from now on a returned server is stopped, not restarted.
func (p *serverPool) markClosing() {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
}

func (p *serverPool) close() {
	p.markClosing()
	p.mu.Lock()
	waiting := p.recycling
	p.recycling = nil
	var warming []chan struct{}
	for _, ch := range p.warming {
		warming = append(warming, ch)
	}
	p.mu.Unlock()
	// A server still starting in the background (a recycled or warmed one nobody will use) is stopped
	// rather than waited for: a start takes up to minutes.
	StopAll()
	for _, ch := range warming {
		<-ch
	}
	dirsMu.Lock()
	dirs := p.dirs
	dirsMu.Unlock()
	for _, chs := range waiting {
		for _, ch := range chs {
			if s := <-ch; s != nil {
				s.Stop()
			}
		}
	}
	StopAll()
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}
