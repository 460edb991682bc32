// Package cutproxy is a loopback TCP proxy for tests that cuts connections mid-stream: put it between a
// client and a real server, arm a cut after so many bytes in one direction, and the connection that
// carries them is reset (RST to both sides) at that byte, as a dropped network link or a crashed peer
// would leave it.
package cutproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Direction is the way bytes flow through the proxy.
type Direction int

const (
	// Up is from the client to the server (a request, an upload).
	Up Direction = iota
	// Down is from the server to the client (a response, a download).
	Down
)

// Proxy forwards the connections made to Addr to its target. It is safe for concurrent use.
type Proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	armed [2][]int64 // per direction, the pending cuts: bytes still to pass before each
	conns map[*pair]struct{}
	cuts  int
	wg    sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	halves         int // directions that ended with EOF (guarded by Proxy.mu)
}

// New starts a proxy on a free loopback port to target (host:port), closed when tb ends.
func New(tb testing.TB, target string) *Proxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{l: l, target: target, conns: make(map[*pair]struct{})}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// CutAfter arms a cut: once n more bytes have passed in direction d (counted over all connections), the
// connection carrying the n-th byte is reset right after it. Cuts armed for one direction happen in the
// order they were armed, each counting from the previous one.
func (p *Proxy) CutAfter(d Direction, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed[d] = append(p.armed[d], n)
}

// CutAll resets every open connection now.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		p.cutLocked(c)
	}
}

// Cuts returns how many connections the proxy has cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Pending returns how many armed cuts have not happened yet.
func (p *Proxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.armed[Up]) + len(p.armed[Down])
}

// Close stops accepting and closes every connection.
func (p *Proxy) Close() {
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.l.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			reset(client)
			continue
		}
		c := &pair{client: client, server: server}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, Up, server, client)
		go p.pipe(c, Down, client, server)
	}
}

// pipe copies src to dst, cutting c where a cut armed for d falls.
func (p *Proxy) pipe(c *pair, d Direction, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk, cut := p.take(c, d, n)
			if chunk > 0 {
				if _, werr := dst.Write(buf[:chunk]); werr != nil {
					err = werr
				}
			}
			if cut {
				p.mu.Lock()
				p.cutLocked(c)
				p.mu.Unlock()
				return
			}
		}
		if err != nil {
			p.mu.Lock()
			defer p.mu.Unlock()
			if errors.Is(err, io.EOF) {
				// Half-close: pass the end of the stream on and let the other way finish.
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				if c.halves++; c.halves < 2 {
					return
				}
			}
			delete(p.conns, c)
			c.client.Close()
			c.server.Close()
			return
		}
	}
}

// take returns how many of n bytes read from c in direction d may pass, and whether c is cut after
// them. A connection already cut passes nothing (and takes no armed cut for itself).
func (p *Proxy) take(c *pair, d Direction, n int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.conns[c]; !ok {
		return 0, true
	}
	if len(p.armed[d]) == 0 {
		return n, false
	}
	left := p.armed[d][0]
	if int64(n) < left {
		p.armed[d][0] -= int64(n)
		return n, false
	}
	p.armed[d] = p.armed[d][1:]
	return int(left), true
}

func (p *Proxy) cutLocked(c *pair) {
	if _, ok := p.conns[c]; !ok {
		return
	}
	delete(p.conns, c)
	p.cuts++
	reset(c.client)
	reset(c.server)
}

// reset closes a connection with an RST instead of an orderly FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
