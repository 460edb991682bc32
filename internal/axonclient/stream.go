package axonclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/internal/axonpb"
)

// maxKeptFrame is the largest receive buffer an EventStream keeps from one event to the next.
const maxKeptFrame = 1 << 20

// MaxPermits is the most permits a ListEvents stream may have outstanding: Axon Server casts the permit
// count to a 32-bit int (AXON.md 2.2).
const MaxPermits = int64(1<<31 - 1)

// EventStream is the global event stream of ListEvents. Recv must be called from one goroutine at a time;
// AddPermits, Outstanding, CloseSend and Close may be called from any goroutine, also while Recv runs. The
// caller owns the stream and must Close it.
//
// The stream never ends at the head of the store: the server keeps it open and delivers events appended
// later (AXON.md 2.2). To export a fixed range, read LastToken first, Recv until that token arrives, then
// Close.
type EventStream struct {
	conn   *Conn
	cs     grpc.ClientStream
	ctx    context.Context
	cancel context.CancelFunc

	outstanding atomic.Int64 // permits granted and not yet used by a received event
	last        int64        // token of the last event received, -1 before the first
	frame       RawFrame     // reused by Recv, saving an allocation per event
	sendMu      sync.Mutex   // gRPC forbids concurrent SendMsg and CloseSend
}

// ListEvents opens the global event stream at fromToken (inclusive: 0 is the start of a store that never
// lost old segments; a token below the server's FirstToken fails) and grants initialPermits, capped at
// MaxPermits. The server sends at most as many events as permits were granted: call AddPermits as events
// are consumed, and well before the server's starvation timeout (120 s at 0 permits). An error opening the
// stream (a bad token, an unknown context) may only show up on the first Recv.
//
// ListEvents is not retried: resuming after an error is the caller's job, from the last token received + 1.
func (c *Conn) ListEvents(ctx context.Context, fromToken, initialPermits int64) (*EventStream, error) {
	const op = "list events"
	sctx, cancel := context.WithCancel(ctx)
	cs, err := c.cc.NewStream(sctx, &listEventsDesc, methodListEvents, rawCodec)
	if err != nil {
		cancel()
		return nil, c.convert(sctx, op, err, nil, receiving)
	}
	s := &EventStream{conn: c, cs: cs, ctx: sctx, cancel: cancel, last: -1}
	permits := min(max(initialPermits, 0), MaxPermits)
	s.outstanding.Store(permits)
	req := &axonpb.GetEventsRequest{
		TrackingToken:   fromToken,
		NumberOfPermits: permits,
		ClientId:        clientID,
		ComponentName:   "axarchive",
	}
	if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		// On io.EOF the server already ended the call; the first Recv returns its status.
		s.Close()
		return nil, c.convert(sctx, op, err, nil, receiving)
	}
	return s, nil
}

// clientID names this process in the server's list of event processors, for whoever looks.
var clientID = func() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("axarchive-%d@%s", os.Getpid(), host)
}()

// Recv returns the next event: its token and the exact bytes of the protobuf Event as the server sent
// them, sliced out of the received frame, which is valid until the next call: the stream receives every
// frame into the same buffer. It returns io.EOF when the server completed the stream, which it does only
// after CloseSend; any other failure is an *Error (a lost connection matches ErrUnavailable), after which
// the stream is finished.
func (s *EventStream) Recv() (token int64, event []byte, err error) {
	if cap(s.frame.Data) > maxKeptFrame {
		s.frame.Data = nil // one huge event should not pin its buffer for the rest of the stream
	}
	s.frame.Data = s.frame.Data[:0]
	if err := s.cs.RecvMsg(&s.frame); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, s.conn.convert(s.ctx, s.op(), err, s.cs.Trailer(), receiving)
	}
	token, event, err = ParseEventWithToken(s.frame.Data)
	if err != nil {
		return 0, nil, s.conn.malformed(s.op(), "EventWithToken", err)
	}
	s.outstanding.Add(-1)
	s.last = token
	return token, event, nil
}

func (s *EventStream) op() string {
	if s.last < 0 {
		return "list events"
	}
	return fmt.Sprintf("list events after token %d", s.last)
}

// AddPermits grants the server n more events, capped so that no more than MaxPermits are outstanding;
// n <= 0 does nothing. It returns an error only if the request cannot be sent, in which case Recv reports
// the reason.
func (s *EventStream) AddPermits(n int64) error {
	if n <= 0 {
		return nil
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	n = min(n, MaxPermits-s.outstanding.Load())
	if n <= 0 {
		return nil
	}
	s.outstanding.Add(n)
	// Only the first request's tracking token counts; later ones carry permits alone.
	if err := s.cs.SendMsg(&axonpb.GetEventsRequest{NumberOfPermits: n}); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("add permits: stream already ended")
		}
		return s.conn.convert(s.ctx, "add permits", err, nil, sending)
	}
	return nil
}

// Outstanding returns the permits granted and not yet used by a received event.
func (s *EventStream) Outstanding() int64 { return s.outstanding.Load() }

// CloseSend half-closes the stream: the server stops its tracker and completes, so Recv soon returns
// io.EOF, possibly after events that were already on their way.
func (s *EventStream) CloseSend() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.cs.CloseSend()
}

// Close ends the stream by cancelling the call, which Axon Server treats like a half-close (AXON.md 2.2):
// a Recv in progress or later returns an error matching context.Canceled, and nothing more is received.
// Use CloseSend instead to let the server complete the stream and Recv run into io.EOF. Close is safe to
// call more than once and from any goroutine.
func (s *EventStream) Close() error {
	s.cancel()
	return nil
}

// ParseEventWithToken splits an EventWithToken frame (AXON.md 1.3: field 1 token, omitted when 0; field 2
// the Event) into the token and the Event's bytes, without decoding the Event. Unknown fields are skipped.
// The event slice aliases frame.
func ParseEventWithToken(frame []byte) (token int64, event []byte, err error) {
	b := frame
	parts := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			token = int64(v)
			b = b[n:]
			continue
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			if parts == 0 {
				event = v
			} else {
				// A repeated embedded message merges; for protobuf bytes merging is concatenation.
				event = append(append([]byte(nil), event...), v...)
			}
			parts++
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if event == nil {
		event = []byte{}
	}
	return token, event, nil
}
