package axonclient

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
)

// Full method names of the EventStore service (AXON.md 1.2).
const (
	serviceName                  = "io.axoniq.axonserver.grpc.event.EventStore"
	methodAppendEvent            = "/" + serviceName + "/AppendEvent"
	methodAppendSnapshot         = "/" + serviceName + "/AppendSnapshot"
	methodListAggregateEvents    = "/" + serviceName + "/ListAggregateEvents"
	methodListAggregateSnapshots = "/" + serviceName + "/ListAggregateSnapshots"
	methodListEvents             = "/" + serviceName + "/ListEvents"
	methodReadHighestSequenceNr  = "/" + serviceName + "/ReadHighestSequenceNr"
	methodGetFirstToken          = "/" + serviceName + "/GetFirstToken"
	methodGetLastToken           = "/" + serviceName + "/GetLastToken"
	methodGetTokenAt             = "/" + serviceName + "/GetTokenAt"
)

var (
	appendEventDesc  = grpc.StreamDesc{StreamName: "AppendEvent", ClientStreams: true}
	listEventsDesc   = grpc.StreamDesc{StreamName: "ListEvents", ClientStreams: true, ServerStreams: true}
	listAggEvtDesc   = grpc.StreamDesc{StreamName: "ListAggregateEvents", ServerStreams: true}
	listAggSnapsDesc = grpc.StreamDesc{StreamName: "ListAggregateSnapshots", ServerStreams: true}
)

// rawCodec is the call option that carries events as raw frames.
var rawCodec = grpc.ForceCodecV2(Codec{})

// FirstToken returns the token of the oldest event still stored: 0 unless old segments were removed, and
// 0 for an empty store (AXON.md 2.7). Retried while the server is UNAVAILABLE.
func (c *Conn) FirstToken(ctx context.Context) (int64, error) {
	var out axonpb.TrackingToken
	err := c.unary(ctx, "get first token", methodGetFirstToken, &axonpb.GetFirstTokenRequest{}, &out)
	return out.GetToken(), err
}

// LastToken returns the token of the last committed event, or -1 for an empty store (AXON.md 2.7).
// Retried while the server is UNAVAILABLE.
func (c *Conn) LastToken(ctx context.Context) (int64, error) {
	var out axonpb.TrackingToken
	err := c.unary(ctx, "get last token", methodGetLastToken, &axonpb.GetLastTokenRequest{}, &out)
	return out.GetToken(), err
}

// TokenAt returns the server's approximate token for an instant in epoch milliseconds, or -1 for an empty
// store (AXON.md 2.7: approximate because timestamps are not monotonic in token order). Retried while the
// server is UNAVAILABLE.
func (c *Conn) TokenAt(ctx context.Context, instantMillis int64) (int64, error) {
	var out axonpb.TrackingToken
	err := c.unary(ctx, "get token at", methodGetTokenAt, &axonpb.GetTokenAtRequest{Instant: instantMillis}, &out)
	return out.GetToken(), err
}

// HighestSequence returns the last sequence number stored for the aggregate, or -1 if the server knows no
// domain event of it (AXON.md 2.7). Retried while the server is UNAVAILABLE.
func (c *Conn) HighestSequence(ctx context.Context, aggregateID string) (int64, error) {
	var out axonpb.ReadHighestSequenceNrResponse
	err := c.unary(ctx, "read highest sequence of "+aggregateID, methodReadHighestSequenceNr,
		&axonpb.ReadHighestSequenceNrRequest{AggregateId: aggregateID}, &out)
	return out.GetToSequenceNr(), err
}

func (c *Conn) unary(ctx context.Context, op, method string, req, resp proto.Message) error {
	return c.withRetry(ctx, op, receiving, func(ctx context.Context, trailer *metadata.MD) error {
		proto.Reset(resp)
		return c.cc.Invoke(ctx, method, req, resp, grpc.Trailer(trailer))
	})
}

// AppendEvents stores events as one transaction: one AppendEvent call, in which each element is sent as
// the exact bytes of one protobuf Event, then the call is half-closed and the server's confirmation
// awaited. On success all events were stored with consecutive tokens; on any error the server stores none
// of them, except that a lost confirmation (ErrUnavailable after the half-close) leaves the outcome
// unknown, which is why AppendEvents is never retried: compare LastToken before retrying. An empty events
// makes an empty, successful call. events must not be modified until AppendEvents returns.
//
// Errors: ErrSequence (the transaction broke AXON.md 2.3's sequence rule), ErrTooLarge (an event exceeds
// Config.MaxSendMsgSize, checked before anything is sent, or the server's max-message-size),
// ErrUnauthorized, ErrContextNotFound, ErrUnavailable, or the context's error.
func (c *Conn) AppendEvents(ctx context.Context, events [][]byte) error {
	return c.BeginAppend(ctx, events).Commit()
}

// PendingAppend is an AppendEvent call whose events are being sent, and which is not half-closed yet:
// the server holds them in memory and stores nothing until Commit half-closes the call, and nothing at all
// if the call ends otherwise, by Abandon, a cancelled context, a lost connection or the end of this
// process (AXON.md 2.3). Sending one transaction's events while the previous one commits keeps the server
// busy without ever making two transactions whose outcome is pending at once.
type PendingAppend struct {
	c       *Conn
	ctx     context.Context
	cancel  context.CancelFunc // of the call; nil when nothing was started
	sent    chan struct{}      // closed when the sending ends
	cs      grpc.ClientStream
	sentAll bool  // false when the server ended the call before every event was sent
	err     error // of opening the call or sending, converted
}

const opAppendEvents = "append events"

// BeginAppend opens an AppendEvent call and starts sending events on it, in the background; Commit or
// Abandon must follow. events must not be modified until then.
func (c *Conn) BeginAppend(ctx context.Context, events [][]byte) *PendingAppend {
	p := &PendingAppend{c: c, ctx: ctx, sent: make(chan struct{})}
	for i, ev := range events {
		if len(ev) > c.cfg.MaxSendMsgSize {
			p.err = c.localTooLarge(opAppendEvents, i, len(ev))
			close(p.sent)
			return p
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	// The call is opened here, only its events are sent in the background: calls reach the server in the
	// order they were begun.
	cs, err := c.cc.NewStream(sctx, &appendEventDesc, methodAppendEvent, rawCodec)
	if err != nil {
		p.err = c.convert(ctx, opAppendEvents, err, nil, appending)
		close(p.sent)
		return p
	}
	p.cs, p.sentAll = cs, true
	go p.send(events)
	return p
}

func (p *PendingAppend) send(events [][]byte) {
	defer close(p.sent)
	cs := p.cs
	for _, ev := range events {
		if err := cs.SendMsg(&RawFrame{Data: ev}); err != nil {
			if errors.Is(err, io.EOF) {
				// The server ended the call; Commit's RecvMsg returns its status.
				p.sentAll = false
				return
			}
			p.err = p.c.convert(p.ctx, opAppendEvents, err, nil, appending)
			return
		}
	}
}

// Commit waits until every event is sent, half-closes the call and waits for the server's confirmation:
// AppendEvents' contract from there on (a lost confirmation leaves the outcome unknown).
func (p *PendingAppend) Commit() error {
	<-p.sent
	if p.cancel != nil {
		defer p.cancel() // abandons the call, and with it the transaction, on every early return
	}
	if p.err != nil {
		return p.err
	}
	if p.sentAll {
		if err := p.cs.CloseSend(); err != nil {
			return p.c.convert(p.ctx, opAppendEvents, err, nil, appending)
		}
	}
	var reply RawFrame
	if err := p.cs.RecvMsg(&reply); err != nil {
		return p.c.convert(p.ctx, opAppendEvents, err, p.cs.Trailer(), appending)
	}
	if !p.sentAll {
		return &Error{Op: opAppendEvents, Code: codes.Internal, Address: p.c.addr, Context: p.c.cfg.Context,
			Detail: "the server confirmed a transaction before all its events were sent"}
	}
	return p.c.checkConfirmation(opAppendEvents, reply.Data)
}

// Abandon ends the call without half-closing it, so that the server stores none of its events, and waits
// until the sending has stopped.
func (p *PendingAppend) Abandon() {
	if p.cancel != nil {
		p.cancel()
	}
	<-p.sent
}

// AppendSnapshot stores one snapshot, given as the exact bytes of a protobuf Event. The server refuses a
// snapshot whose sequence is above the aggregate's last event (ErrSequence, AXON.md 2.4), so import events
// first. Never retried.
func (c *Conn) AppendSnapshot(ctx context.Context, event []byte) error {
	const op = "append snapshot"
	if len(event) > c.cfg.MaxSendMsgSize {
		return c.localTooLarge(op, 0, len(event))
	}
	var reply RawFrame
	var trailer metadata.MD
	err := c.cc.Invoke(ctx, methodAppendSnapshot, &RawFrame{Data: event}, &reply, rawCodec, grpc.Trailer(&trailer))
	if err != nil {
		return c.convert(ctx, op, err, trailer, appending)
	}
	return c.checkConfirmation(op, reply.Data)
}

// checkConfirmation reads field 1 (success) of a Confirmation or ConfirmationWithConsistencyMarker: the two
// are wire compatible (AXON.md 1.2), so the rest is skipped.
func (c *Conn) checkConfirmation(op string, b []byte) error {
	success := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return c.malformed(op, "confirmation", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return c.malformed(op, "confirmation", protowire.ParseError(n))
			}
			success = v != 0
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return c.malformed(op, "confirmation", protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !success {
		return &Error{Op: op, Code: codes.Unknown, Address: c.addr, Context: c.cfg.Context,
			Detail: "the server answered without confirming success"}
	}
	return nil
}

func (c *Conn) malformed(op, what string, err error) error {
	return &Error{Op: op, Code: codes.Internal, Address: c.addr, Context: c.cfg.Context,
		Detail: fmt.Sprintf("malformed %s from server: %v", what, err), cause: err}
}

// MaxSequence is the max_sequence that makes ListAggregateSnapshots return every snapshot (0 would return
// none, AXON.md 2.6).
const MaxSequence = int64(1<<63 - 1)

// ListAggregateSnapshots returns the aggregate's snapshots with initialSeq <= sequence < maxSeq as the
// server sends them: newest stored first, with snapshot=true set by the server (AXON.md 2.6). maxSeq <= 0
// returns nothing (use MaxSequence); maxResults <= 0 means no limit, and a positive value limits the
// snapshots the server examines, including ones outside the range. Retried while the server is
// UNAVAILABLE.
func (c *Conn) ListAggregateSnapshots(ctx context.Context, aggregateID string, initialSeq, maxSeq int64, maxResults int32) ([][]byte, error) {
	return c.collect(ctx, "list snapshots of "+aggregateID, &listAggSnapsDesc, methodListAggregateSnapshots,
		&axonpb.GetAggregateSnapshotsRequest{AggregateId: aggregateID, InitialSequence: initialSeq,
			MaxSequence: maxSeq, MaxResults: maxResults})
}

// ListAggregateEvents returns the aggregate's events from initialSeq on, each as the bytes the server
// sent. With allowSnapshots the server may start with its newest snapshot (snapshot=true) and continue
// after it (AXON.md 2.5). Events with an empty aggregate type are never returned. Retried while the server
// is UNAVAILABLE.
func (c *Conn) ListAggregateEvents(ctx context.Context, aggregateID string, initialSeq int64, allowSnapshots bool) ([][]byte, error) {
	return c.collect(ctx, "list events of "+aggregateID, &listAggEvtDesc, methodListAggregateEvents,
		&axonpb.GetAggregateEventsRequest{AggregateId: aggregateID, InitialSequence: initialSeq,
			AllowSnapshots: allowSnapshots})
}

// collect runs a server-streaming read to its end, restarting it from scratch on UNAVAILABLE.
func (c *Conn) collect(ctx context.Context, op string, desc *grpc.StreamDesc, method string, req proto.Message) ([][]byte, error) {
	var out [][]byte
	err := c.withRetry(ctx, op, receiving, func(ctx context.Context, trailer *metadata.MD) error {
		out = nil
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cs, err := c.cc.NewStream(sctx, desc, method, rawCodec)
		if err != nil {
			return err
		}
		if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if err := cs.CloseSend(); err != nil {
			return err
		}
		for {
			var f RawFrame
			if err := cs.RecvMsg(&f); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				*trailer = cs.Trailer()
				return err
			}
			out = append(out, f.Data)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
