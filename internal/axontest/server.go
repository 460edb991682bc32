// Package axontest is an in-process Axon Server for tests, benchmarks and trying axarchive out: the
// EventStore gRPC service of AXON.md section 2, served over real TCP on loopback, holding any number of
// contexts in memory.
//
// It also serves the PlatformService (control.proto) that AxonIQ's Java connector needs before it makes any
// EventStore call (platform.go).
//
// It is meant to answer as Axon Server SE does: AXON.md section 2 is its specification, and its
// conformance tests run each row against the double and the real Axon Server SE 2023.2.1
// (internal/realserver) through the generated gRPC client, requiring the same answers; where the two
// differed, the real server was right. Events are stored as the exact bytes received
// and served without re-encoding. Fault injection (failed calls, dropped streams, delays, a stalled
// server, a stop and restart on the same address) supports reliability tests.
//
// Differences from Axon Server, by design:
//   - there are no segment files, so GetTokenAt treats the store as one segment, and the new-aggregate
//     check that SE limits to the newest 10 segments always covers the whole store;
//   - a transaction is validated and stored in one step, so in-flight reservations are never observable;
//   - the permit timeout is checked exactly rather than every 2 s, and blacklisted events are skipped
//     without using permits (AXON.md does not say);
//   - an appended message that does not parse as an Event fails the call with CANCELLED, AXONIQ-9000, as
//     SE does, with one of two protobuf-java texts where Java has more;
//   - the context header is honoured, as EE does, unless WithSingleContext makes it SE, which serves every
//     call from "default"; ListAggregateEvents ignores min_token, a search hint;
//   - events are stored as the bytes received, where Axon Server stores its own re-serialization of the
//     parsed Event (AXON.md 2.3): the same bytes for canonically encoded events, which is what clients
//     send;
//   - Stall (a fault for tests) holds half-closed appends unstored until Unstall, which stores them even if
//     their client died meanwhile, or Stop, which drops them.
//
// For tests it also reports what it saw: Events, Snapshots, Transactions, Calls, MaxConcurrentCalls,
// MaxOutstandingPermits; AfterAppend plays another writer; ReplaceEvent and ReplaceSnapshot tamper.
package axontest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/axarchive/axarchive/internal/axonpb"
)

// DefaultMaxMessageSize is Axon Server's default max-message-size: gRPC-Java's 4 MiB.
const DefaultMaxMessageSize = 4 << 20

// DefaultPermitTimeout is Axon Server's new-permits-timeout.
const DefaultPermitTimeout = 120 * time.Second

// Confirmation selects the reply to AppendEvent.
type Confirmation int

const (
	// ConfirmationPlain replies Confirmation{success: true}, as servers before API 2026.0 do; without a
	// consistency marker ConfirmationWithConsistencyMarker has the very same bytes, so this is the default.
	ConfirmationPlain Confirmation = iota
	// ConfirmationWithMarker replies ConfirmationWithConsistencyMarker with the marker filled with the
	// transaction's last token, as a DCB-capable server might, to check that clients ignore field 2.
	ConfirmationWithMarker
)

// Option configures a Server.
type Option func(*options)

type options struct {
	listen           string
	token            string
	contexts         []string
	maxMessageSize   int
	permitTimeout    time.Duration
	tls              *tls.Config
	checkSnapshotSeq bool
	confirmation     Confirmation
	maxEventsPerTxn  int
	singleContext    bool
}

// WithListenAddress sets the address to listen on; the default is "127.0.0.1:0" (a free port).
func WithListenAddress(addr string) Option { return func(o *options) { o.listen = addr } }

// WithAccessToken enables access control: every call must carry AxonIQ-Access-Token (or the legacy
// Access-Token) equal to token, or fails with PERMISSION_DENIED, AXONIQ-1000 when missing and AXONIQ-1001
// when wrong.
func WithAccessToken(token string) Option { return func(o *options) { o.token = token } }

// WithContexts limits the contexts to names, as Axon Server EE does: a call naming another context fails
// with NOT_FOUND, AXONIQ-1302. Without it every context exists, created on first use.
func WithContexts(names ...string) Option {
	return func(o *options) { o.contexts = append([]string{}, names...) }
}

// WithMaxMessageSize sets the largest message the server accepts (max-message-size, default 4 MiB).
// A larger event or snapshot fails its call with CANCELLED, AXONIQ-0001, as Axon Server's does (gRPC-Java's
// RESOURCE_EXHAUSTED stays in its log).
func WithMaxMessageSize(n int) Option { return func(o *options) { o.maxMessageSize = n } }

// WithPermitTimeout sets how long a ListEvents stream may sit at 0 permits before the server closes it
// (new-permits-timeout, default 120 s).
func WithPermitTimeout(d time.Duration) Option { return func(o *options) { o.permitTimeout = d } }

// WithTLS serves TLS with the given certificate.
func WithTLS(cert tls.Certificate) Option {
	return func(o *options) {
		o.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
}

// WithTLSConfig serves TLS with a full configuration, e.g. to require client certificates.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithCheckSnapshotSequence sets check-sequence-nr-for-snapshots (default true): whether a snapshot's
// sequence must not exceed its aggregate's last event sequence (AXON.md 2.4).
func WithCheckSnapshotSequence(check bool) Option {
	return func(o *options) { o.checkSnapshotSeq = check }
}

// WithSingleContext makes the double behave as Axon Server SE: it has one context, "default", and serves
// it whatever context a call names (AXON.md 2.1), and it has no ContextAdminService. Without it the double
// behaves as EE: contexts are separate stores, listed by ContextAdminService/GetContexts.
func WithSingleContext() Option { return func(o *options) { o.singleContext = true } }

// WithConfirmation selects the AppendEvent reply; see Confirmation.
func WithConfirmation(c Confirmation) Option { return func(o *options) { o.confirmation = c } }

// WithMaxEventsPerTransaction makes transactions with more than n events fail with INVALID_ARGUMENT,
// AXONIQ-2002, as EE's max-events-per-transaction may (SE has no limit, which is the default).
func WithMaxEventsPerTransaction(n int) Option { return func(o *options) { o.maxEventsPerTxn = n } }

// Server is the test double. All its methods are safe for concurrent use.
type Server struct {
	opts options

	mu      sync.Mutex
	addr    string
	gs      *grpc.Server
	serving chan struct{} // closed when gs.Serve returns
	closed  bool

	dataMu   sync.Mutex
	contexts map[string]*store

	faults faults
}

// NewServer starts a Server on 127.0.0.1 (unless WithListenAddress says otherwise) and closes it when the
// test ends. It fails the test if the server cannot start.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start(opts...)
	if err != nil {
		tb.Fatalf("start axon server double: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a Server; the caller must Close it.
func Start(opts ...Option) (*Server, error) {
	o := options{
		listen:           "127.0.0.1:0",
		maxMessageSize:   DefaultMaxMessageSize,
		permitTimeout:    DefaultPermitTimeout,
		checkSnapshotSeq: true,
	}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{opts: o, contexts: make(map[string]*store)}
	s.faults.init()
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", o.listen, err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	return s, nil
}

// serve starts a gRPC server on lis. Called with mu held or before s is shared.
func (s *Server) serve(lis net.Listener) {
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(serverCodec{}),
		// Messages up to well past max-message-size reach the handlers, which refuse them as Axon Server
		// does (checkSize); gRPC-Go's own refusal would be RESOURCE_EXHAUSTED.
		grpc.MaxRecvMsgSize(max(4*s.opts.maxMessageSize, 64<<20)),
		// Axon Server's keepalive settings (AXON.md 2.1): clients may ping every second, even when idle.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2500 * time.Millisecond, Timeout: 5 * time.Second}),
		grpc.WaitForHandlers(true),
	}
	if s.opts.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.opts.tls)))
	}
	s.faults.serving()
	gs := grpc.NewServer(opts...)
	gs.RegisterService(&serviceDesc, s)
	axonpb.RegisterPlatformServiceServer(gs, platformService{s: s})
	if !s.opts.singleContext {
		gs.RegisterService(&contextAdminDesc, s)
	}
	s.gs = gs
	done := make(chan struct{})
	s.serving = done
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
}

// Addr returns the address the server listens on, as host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop stops serving, as a crash would: connections drop, calls in flight fail with UNAVAILABLE, and a
// transaction not yet committed is lost. The data stays; Restart serves it again on the same address.
func (s *Server) Stop() {
	s.mu.Lock()
	gs, serving := s.gs, s.serving
	s.gs = nil
	s.mu.Unlock()
	if gs != nil {
		s.faults.stopping()
		gs.Stop()
		<-serving
	}
}

// Restart serves again on the address of the stopped server, with the same data.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("restart axon server double: closed")
	}
	if s.gs != nil {
		return errors.New("restart axon server double: still running")
	}
	var lis net.Listener
	var err error
	// The port is normally free at once; give the kernel a moment if not.
	for range 50 {
		if lis, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart axon server double: %w", err)
	}
	s.serve(lis)
	return nil
}

// Close stops the server for good. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Stop()
	s.faults.unstall()
}

// context returns the store of a context, creating it.
func (s *Server) context(name string) *store {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	c := s.contexts[name]
	if c == nil {
		c = newStore(name)
		s.contexts[name] = c
	}
	return c
}

// existing returns the store of a context, or nil.
func (s *Server) existing(name string) *store {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	return s.contexts[name]
}

// Contexts returns the names of the contexts that hold data or were used, sorted.
func (s *Server) Contexts() []string {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	var out []string
	for name := range s.contexts {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// DeleteContext drops a context and all it holds, as Axon Server's admin API deletes a context: a later
// call naming it finds it empty. Streams still open on it keep what they hold. Benchmarks free the memory
// of one run's target this way before the next run.
func (s *Server) DeleteContext(name string) {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	delete(s.contexts, name)
}

// StoredEvent is an event of the store with its token.
type StoredEvent struct {
	Token int64
	Raw   []byte
}

// Events returns the events of a context in token order. Raw is the server's own copy: do not modify it.
func (s *Server) Events(context string) []StoredEvent {
	c := s.existing(context)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]StoredEvent, len(c.events))
	for i, ev := range c.events {
		out[i] = StoredEvent{Token: c.base + int64(i), Raw: ev.raw}
	}
	return out
}

// EventCount returns the number of events stored in a context.
func (s *Server) EventCount(context string) int {
	c := s.existing(context)
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// LastToken returns the token of the last event of a context, -1 if there is none.
func (s *Server) LastToken(context string) int64 {
	c := s.existing(context)
	if c == nil {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastToken()
}

// Snapshots returns the snapshots of a context in the order they were stored, as stored (without the
// snapshot flag the server adds when serving them). Do not modify them.
func (s *Server) Snapshots(context string) [][]byte {
	c := s.existing(context)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, len(c.snaps))
	for i, ev := range c.snaps {
		out[i] = ev.raw
	}
	return out
}

// Transaction is one committed AppendEvent transaction (or Load) that stored events.
type Transaction struct {
	First  int64 // token of its first event
	Events int   // number of events
	Bytes  int   // sum of the sizes of its events, as received
}

// Transactions returns the transactions committed into a context, in commit order.
func (s *Server) Transactions(context string) []Transaction {
	c := s.existing(context)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.txns)
}

// SnapshotCount returns the number of snapshots stored in a context.
func (s *Server) SnapshotCount(context string) int {
	c := s.existing(context)
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.snaps)
}

// Load appends events to a context as one transaction, bypassing gRPC, under the same validation as
// AppendEvent: a million events take a few seconds at most. The server keeps the slices: do not modify
// them afterwards.
func (s *Server) Load(context string, events [][]byte) error {
	txn := make([]stored, len(events))
	for i, raw := range events {
		info, err := parseEvent(raw)
		if err != nil {
			return fmt.Errorf("load event %d into %s: %w", i, context, err)
		}
		txn[i] = stored{raw: raw, info: info}
	}
	if _, err := s.context(context).commit(txn, 0); err != nil {
		return fmt.Errorf("load events into %s: %w", context, err)
	}
	return nil
}

// LoadSnapshots appends snapshots to a context, bypassing gRPC, under the same rule as AppendSnapshot.
func (s *Server) LoadSnapshots(context string, snapshots [][]byte) error {
	c := s.context(context)
	for i, raw := range snapshots {
		info, err := parseEvent(raw)
		if err != nil {
			return fmt.Errorf("load snapshot %d into %s: %w", i, context, err)
		}
		if err := c.appendSnapshot(stored{raw: raw, info: info}, s.opts.checkSnapshotSeq); err != nil {
			return fmt.Errorf("load snapshot %d into %s: %w", i, context, err)
		}
	}
	return nil
}

// ReplaceEvent swaps the stored bytes of one event, as tampering with a segment file would: the aggregate
// index keeps pointing at the token, and reads serve the new bytes. raw must parse as an Event.
func (s *Server) ReplaceEvent(context string, token int64, raw []byte) error {
	c := s.existing(context)
	if c == nil {
		return fmt.Errorf("replace event %d: no context %s", token, context)
	}
	return c.replace(token, raw)
}

// ReplaceSnapshot swaps the stored bytes of the index-th snapshot of a context (in storing order, as
// Snapshots lists them), as tampering with a snapshot segment file would. raw must parse as an Event of
// the same aggregate.
func (s *Server) ReplaceSnapshot(context string, index int, raw []byte) error {
	c := s.existing(context)
	if c == nil {
		return fmt.Errorf("replace snapshot %d: no context %s", index, context)
	}
	return c.replaceSnapshot(index, raw)
}

// RemoveBefore drops the events of a context below token, as retention removing old segments does, so
// that GetFirstToken returns token and ListEvents refuses to start below it.
func (s *Server) RemoveBefore(context string, token int64) error {
	return s.context(context).removeBefore(token)
}
