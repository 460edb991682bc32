package axontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axonpb"
)

// serviceDesc is the EventStore service written by hand rather than generated, so that events are
// received and sent as raw frames (axonclient.Codec) and stored and served byte for byte.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "io.axoniq.axonserver.grpc.event.EventStore",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: MethodAppendSnapshot, Handler: unary(MethodAppendSnapshot, (*Server).appendSnapshot)},
		{MethodName: MethodReadHighestSequenceNr, Handler: unary(MethodReadHighestSequenceNr, (*Server).readHighestSequenceNr)},
		{MethodName: MethodGetFirstToken, Handler: unary(MethodGetFirstToken, (*Server).getFirstToken)},
		{MethodName: MethodGetLastToken, Handler: unary(MethodGetLastToken, (*Server).getLastToken)},
		{MethodName: MethodGetTokenAt, Handler: unary(MethodGetTokenAt, (*Server).getTokenAt)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: MethodAppendEvent, Handler: streaming(MethodAppendEvent, (*Server).appendEvent), ClientStreams: true},
		{StreamName: MethodListAggregateEvents, Handler: streaming(MethodListAggregateEvents, (*Server).listAggregateEvents), ServerStreams: true},
		{StreamName: MethodListAggregateSnapshots, Handler: streaming(MethodListAggregateSnapshots, (*Server).listAggregateSnapshots), ServerStreams: true},
		{StreamName: MethodListEvents, Handler: streaming(MethodListEvents, (*Server).listEvents), ClientStreams: true, ServerStreams: true},
	},
	Metadata: "event.proto",
}

// unary adapts a handler that receives its context's store to gRPC's unary method signature.
func unary(method string, h func(s *Server, ctx context.Context, c *store, dec func(any) error) (any, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		s := srv.(*Server)
		c, err := s.begin(ctx, method)
		if err != nil {
			return nil, err
		}
		s.faults.enter(method)
		defer s.faults.leave(method)
		resp, err := h(s, ctx, c, dec)
		if err != nil {
			return nil, reportError(ctx, err)
		}
		if err := s.faults.sleep(ctx); err != nil {
			return nil, status.FromContextError(err).Err()
		}
		return resp, nil
	}
}

// streaming adapts a streaming handler likewise.
func streaming(method string, h func(s *Server, stream grpc.ServerStream, c *store) error) grpc.StreamHandler {
	return func(srv any, stream grpc.ServerStream) error {
		s := srv.(*Server)
		c, err := s.begin(stream.Context(), method)
		if err != nil {
			return err
		}
		if method != MethodAppendEvent { // appendEvent counts itself, see there
			s.faults.enter(method)
			defer s.faults.leave(method)
		}
		return reportError(stream.Context(), h(s, stream, c))
	}
}

// reportError turns an *axonError into the status and trailer Axon Server sends (AXON.md 2.9); other
// errors pass unchanged.
func reportError(ctx context.Context, err error) error {
	var ae *axonError
	if !errors.As(err, &ae) {
		return err
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("axoniq-errorcode", ae.code))
	return status.Error(ae.status, ae.Error())
}

// begin does what Axon Server does before any handler runs: the access check (AXON.md 2.1) and the context
// lookup; and what the test asked for: count the call, fail it.
func (s *Server) begin(ctx context.Context, method string) (*store, error) {
	if s.faults.call(method) {
		return nil, status.Errorf(codes.Unavailable, "injected fault: call %d of %s failed", s.Calls(method), method)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if s.opts.token != "" {
		// Axon Server's texts name the full method, without the "[code] " prefix of its other errors.
		fullMethod, _ := grpc.Method(ctx)
		fullMethod = strings.TrimPrefix(fullMethod, "/")
		tok, ok := header(md, "axoniq-access-token", "access-token")
		if !ok {
			return nil, reportError(ctx, &axonError{codes.PermissionDenied, codeTokenMissing, "No token for " + fullMethod, true})
		}
		if tok != s.opts.token {
			return nil, reportError(ctx, &axonError{codes.PermissionDenied, codeTokenInvalid, "Invalid token for " + fullMethod, true})
		}
	}
	name, ok := header(md, "axoniq-context", "context")
	if !ok || s.opts.singleContext {
		// SE serves its one context whatever a call names (AXON.md 2.1).
		name = "default"
	}
	if s.opts.contexts != nil && !slices.Contains(s.opts.contexts, name) {
		return nil, reportError(ctx, &axonError{codes.NotFound, codeContextNotFound, "Context " + name + " not found", false})
	}
	return s.context(name), nil
}

// header returns the first value of the first key present.
func header(md metadata.MD, keys ...string) (string, bool) {
	for _, k := range keys {
		if v := md.Get(k); len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// invalidEvent is the refusal of an appended message that is not an Event, as Axon Server SE words it:
// CANCELLED, AXONIQ-9000, and protobuf-java's text (the two the conformance table saw: invalid UTF-8, and
// a message that ends inside a field, which is also what SE says of garbage).
func invalidEvent(err error) error {
	msg := "While parsing a protocol message, the input ended unexpectedly in the middle of a field.  This could mean either that the input has been truncated or that an embedded message misreported its own length."
	if errors.Is(err, errInvalidUTF8) {
		msg = "Protocol message had invalid UTF-8."
	}
	return &axonError{codes.Canceled, codeReadWrite, msg, false}
}

// appendEvent: one call is one transaction, stored when the client half-closes (AXON.md 2.3).
func (s *Server) appendEvent(stream grpc.ServerStream, c *store) error {
	ctx := stream.Context()
	s.faults.enter(openAppends)
	defer s.faults.leave(openAppends)
	var txn []stored
	for {
		var f axonclient.RawFrame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				break // half-close: commit
			}
			return err // cancelled or failed before the half-close: nothing is stored
		}
		if err := s.checkSize(f.Data); err != nil {
			return err // at once, as gRPC-Java cancels the call: nothing of the transaction is stored
		}
		info, err := parseEvent(f.Data)
		if err != nil {
			return invalidEvent(err)
		}
		txn = append(txn, stored{raw: f.Data, info: info})
	}
	// Half-closed: the transaction is the server's now, whatever becomes of the client (AXON.md 2.3). It
	// counts as running from here until its confirmation is about to be sent: a client that half-closes a
	// transaction only once the previous one is confirmed is never seen running two, however it overlaps
	// their sending (a call not half-closed stores nothing, whatever happens).
	s.faults.enter(MethodAppendEvent)
	leave := sync.OnceFunc(func() { s.faults.leave(MethodAppendEvent) })
	defer leave()
	if !s.faults.holdCommit(MethodAppendEvent) {
		return status.Error(codes.Unavailable, "server stopped")
	}
	first, err := c.commit(txn, s.opts.maxEventsPerTxn)
	if err != nil {
		return err
	}
	if hook := s.faults.afterAppendHook(); hook != nil && len(txn) > 0 {
		hook(c.name)
	}
	if err := s.faults.sleep(ctx); err != nil {
		return status.FromContextError(err).Err()
	}
	reply := confirmation
	if s.opts.confirmation == ConfirmationWithMarker {
		reply = confirmationWithMarker(first + int64(len(txn)) - 1)
	}
	leave()
	return stream.SendMsg(&axonclient.RawFrame{Data: reply})
}

// checkSize refuses a message over max-message-size as Axon Server does: gRPC-Java's RESOURCE_EXHAUSTED
// ("gRPC message exceeds maximum size") only reaches its log; the client sees the call CANCELLED, with
// AXONIQ-0001 when the trailer arrives before the stream's reset.
func (s *Server) checkSize(msg []byte) error {
	if len(msg) <= s.opts.maxMessageSize {
		return nil
	}
	return &axonError{codes.Canceled, codeOther,
		fmt.Sprintf("gRPC message exceeds maximum size %d: %d", s.opts.maxMessageSize, len(msg)), false}
}

// appendSnapshot stores one snapshot (AXON.md 2.4).
func (s *Server) appendSnapshot(ctx context.Context, c *store, dec func(any) error) (any, error) {
	var f axonclient.RawFrame
	if err := dec(&f); err != nil {
		return nil, err
	}
	if err := s.checkSize(f.Data); err != nil {
		return nil, err
	}
	info, err := parseEvent(f.Data)
	if err != nil {
		return nil, invalidEvent(err)
	}
	if !s.faults.holdCommit(MethodAppendSnapshot) {
		return nil, status.Error(codes.Unavailable, "server stopped")
	}
	if err := c.appendSnapshot(stored{raw: f.Data, info: info}, s.opts.checkSnapshotSeq); err != nil {
		return nil, err
	}
	return &axonclient.RawFrame{Data: confirmation}, nil
}

func (s *Server) readHighestSequenceNr(_ context.Context, c *store, dec func(any) error) (any, error) {
	var req axonpb.ReadHighestSequenceNrRequest
	if err := dec(&req); err != nil {
		return nil, err
	}
	return &axonpb.ReadHighestSequenceNrResponse{ToSequenceNr: c.highestSequence(req.AggregateId)}, nil
}

func (s *Server) getFirstToken(_ context.Context, c *store, dec func(any) error) (any, error) {
	if err := dec(&axonpb.GetFirstTokenRequest{}); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &axonpb.TrackingToken{Token: c.firstToken()}, nil
}

func (s *Server) getLastToken(_ context.Context, c *store, dec func(any) error) (any, error) {
	if err := dec(&axonpb.GetLastTokenRequest{}); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &axonpb.TrackingToken{Token: c.lastToken()}, nil
}

func (s *Server) getTokenAt(_ context.Context, c *store, dec func(any) error) (any, error) {
	var req axonpb.GetTokenAtRequest
	if err := dec(&req); err != nil {
		return nil, err
	}
	return &axonpb.TrackingToken{Token: c.tokenAt(req.Instant)}, nil
}

// sendAll streams frames, each after the injected delay.
func (s *Server) sendAll(stream grpc.ServerStream, frames [][]byte) error {
	for _, f := range frames {
		if err := s.faults.sleep(stream.Context()); err != nil {
			return status.FromContextError(err).Err()
		}
		if err := stream.SendMsg(&axonclient.RawFrame{Data: f}); err != nil {
			return err
		}
	}
	return nil
}

// listAggregateEvents (AXON.md 2.5).
func (s *Server) listAggregateEvents(stream grpc.ServerStream, c *store) error {
	var req axonpb.GetAggregateEventsRequest
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	return s.sendAll(stream, c.aggregateEvents(req.AggregateId, req.InitialSequence, req.MaxSequence, req.AllowSnapshots))
}

// listAggregateSnapshots (AXON.md 2.6).
func (s *Server) listAggregateSnapshots(stream grpc.ServerStream, c *store) error {
	var req axonpb.GetAggregateSnapshotsRequest
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	return s.sendAll(stream, c.aggregateSnapshots(req.AggregateId, req.InitialSequence, req.MaxSequence, req.MaxResults))
}

// maxRound is the most events Axon Server sends a tracker in one scheduling round.
const maxRound = 500

// tracker is the server side of one ListEvents stream.
type tracker struct {
	permits    atomic.Int64
	added      chan struct{} // signalled when permits are added
	halfClosed chan struct{} // closed when the client half-closes
	failed     chan error    // receives the client's stream error
	// notePermits is told the outstanding permits after each grant.
	notePermits func(int64)

	blMu      sync.Mutex
	blacklist map[payloadKey]struct{} // payload type and revision not to send (AXON.md 2.2)
	hasBL     atomic.Bool             // blacklist is not empty
}

// payloadKey is a payload type and revision.
type payloadKey struct{ typ, revision string }

// blacklistSendAfter is blacklisted-send-after (1000): SE counts it down with each skipped event and skips
// only while the count is above 1, so after 999 skipped in a row the next blacklisted one is sent anyway.
const blacklistSendAfter = 1000

// addBlacklist adds a request's blacklist entries.
func (t *tracker) addBlacklist(entries []*axonpb.PayloadDescription) {
	if len(entries) == 0 {
		return
	}
	t.blMu.Lock()
	defer t.blMu.Unlock()
	if t.blacklist == nil {
		t.blacklist = make(map[payloadKey]struct{})
	}
	for _, e := range entries {
		t.blacklist[payloadKey{e.GetType(), e.GetRevision()}] = struct{}{}
	}
	t.hasBL.Store(true)
}

// blacklisted reports whether the event's payload type and revision are on the blacklist.
func (t *tracker) blacklisted(event []byte) bool {
	if !t.hasBL.Load() {
		return false
	}
	typ, revision := payloadOf(event)
	t.blMu.Lock()
	defer t.blMu.Unlock()
	_, ok := t.blacklist[payloadKey{typ, revision}]
	return ok
}

// listEvents serves the global event stream (AXON.md 2.2).
func (s *Server) listEvents(stream grpc.ServerStream, c *store) error {
	ctx := stream.Context()
	var first axonpb.GetEventsRequest
	if err := stream.RecvMsg(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	next := first.TrackingToken
	c.mu.Lock()
	start := c.firstToken()
	c.mu.Unlock()
	if next < 0 {
		// Axon Server fails such a request inside its event stream without an error code or a text.
		return status.Error(codes.Unknown, "")
	}
	if next < start {
		return &axonError{codes.Canceled, codeOther, c.name + ": token " + strconv.FormatInt(next, 10) + " before start of event store", false}
	}
	t := &tracker{added: make(chan struct{}, 1), halfClosed: make(chan struct{}), failed: make(chan error, 1),
		notePermits: s.faults.notePermits}
	t.addPermits(first.NumberOfPermits)
	t.addBlacklist(first.Blacklist)
	go t.receive(stream)

	drop := s.faults.takeDrop()
	sent := 0
	skipped := 0 // consecutive blacklisted events not sent
	var starvedSince time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	wait := func(d time.Duration, chans ...<-chan struct{}) error {
		if d > 0 {
			timer.Reset(d)
			defer timer.Stop()
		}
		var a, b <-chan struct{}
		if len(chans) > 0 {
			a = chans[0]
		}
		if len(chans) > 1 {
			b = chans[1]
		}
		select {
		case <-a:
		case <-b:
		case <-timer.C:
		case <-t.halfClosed:
		case err := <-t.failed:
			return err
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	}
	for {
		select {
		case <-t.halfClosed:
			return nil // the client is done: complete the stream
		case err := <-t.failed:
			return err
		default:
		}
		if stall := s.faults.stallChan(); stall != nil {
			if err := wait(0, stall); err != nil {
				return err
			}
			continue
		}
		permits := t.permits.Load()
		if permits <= 0 {
			if starvedSince.IsZero() {
				starvedSince = time.Now()
			}
			left := s.opts.permitTimeout - time.Since(starvedSince)
			if left <= 0 {
				// SE closes the tracker and raises its error ("<context>: Timeout waiting for permits from
				// client <id>", AXONIQ-0001) inside the event stream: the client sees UNKNOWN without a text,
				// or a clean end when the close overtakes the error.
				return status.Error(codes.Unknown, "")
			}
			if err := wait(left, t.added); err != nil {
				return err
			}
			continue
		}
		starvedSince = time.Time{}
		batch, changed, err := c.read(next, int(min(permits, maxRound)))
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			// At the head: wait for an append (Axon Server also re-polls every 100 ms).
			if err := wait(0, changed); err != nil {
				return err
			}
			continue
		}
		// One buffer for the heads of the whole round: at most 17 bytes each.
		heads := make([]byte, 0, 17*len(batch))
		for _, ev := range batch {
			if drop >= 0 && sent >= drop {
				return status.Errorf(codes.Unavailable, "injected fault: stream dropped after %d events", sent)
			}
			if t.blacklisted(ev) && skipped < blacklistSendAfter-1 {
				// Skipped without using a permit; after 999 in a row one goes out anyway.
				skipped++
				next++
				continue
			}
			skipped = 0
			if err := s.faults.sleep(ctx); err != nil {
				return status.FromContextError(err).Err()
			}
			at := len(heads)
			heads = appendHead(heads, next, len(ev))
			if err := stream.SendMsg(&eventWithToken{head: heads[at:len(heads):len(heads)], event: ev}); err != nil {
				return err
			}
			t.permits.Add(-1)
			next++
			sent++
		}
	}
}

// receive reads the client's later requests: each adds permits; tracking tokens after the first request
// are ignored (AXON.md 2.2).
func (t *tracker) receive(stream grpc.ServerStream) {
	for {
		var req axonpb.GetEventsRequest
		if err := stream.RecvMsg(&req); err != nil {
			if errors.Is(err, io.EOF) {
				close(t.halfClosed)
			} else {
				t.failed <- err
			}
			return
		}
		t.addBlacklist(req.Blacklist)
		t.addPermits(req.NumberOfPermits)
	}
}

// addPermits adds permits as Axon Server does: cast to a 32-bit int first (AXON.md 1.3).
func (t *tracker) addPermits(n int64) {
	t.notePermits(t.permits.Add(int64(int32(n))))
	select {
	case t.added <- struct{}{}:
	default:
	}
}
