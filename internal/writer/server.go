package writer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/crashpoint"
)

// ErrEventTooLarge is an event (or snapshot) larger than the server takes in one message.
var ErrEventTooLarge = errors.New("event larger than the server's max message size")

// SequenceError is a transaction the server rejected for an aggregate sequence number (AXONIQ-2000),
// located by asking the server for the aggregate's highest sequence.
type SequenceError struct {
	Token       int64
	AggregateID string
	Sequence    int64
	Expected    int64
	Err         error
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("event at token %d: aggregate %q sequence %d, the target expected %d: %v", e.Token, e.AggregateID, e.Sequence, e.Expected, e.Err)
}

func (e *SequenceError) Unwrap() error { return e.Err }

// ServerSinkOptions tune a ServerSink.
type ServerSinkOptions struct {
	// MaxEvents and MaxBytes bound one transaction (AXON.md 2.3 and 5.10).
	MaxEvents int
	MaxBytes  int64
	// Head is the target's last token before the first event (-1: empty).
	Head int64
	// Next is the source token of the first event, which AppendError.Next names until a transaction is
	// confirmed.
	Next int64
	// SnapshotStored, if set, is called after each snapshot the server stored.
	SnapshotStored func()
	// Confirmed, if set, is called after each transaction is confirmed and the target's head checked,
	// with the source tokens of its events, the target token of the first, and its bytes; an error stops
	// the sink as a failed append does.
	Confirmed func(tokens []int64, firstTarget int64, bytes int64) error
}

// AppendError is a ServerSink that stopped: how far it got, so that the import can be continued.
type AppendError struct {
	// Confirmed is the number of events the server confirmed.
	Confirmed int64
	// Head is the target's last token (-1: empty); with HeadUnknown the server could not be asked after
	// the failure and it is the last one confirmed: the target may hold one transaction more.
	Head        int64
	HeadUnknown bool
	// Next is the source token of the first event not confirmed.
	Next int64
	Err  error
}

func (e *AppendError) Error() string { return e.Err.Error() }
func (e *AppendError) Unwrap() error { return e.Err }

// ErrStopped is what WriteEvent and WriteSnapshot return once the sink has stopped after a failure:
// Finish and Close say which.
var ErrStopped = errors.New("the server sink stopped")

// SnapshotError is the failed snapshot append at the lowest position.
type SnapshotError struct {
	Position int64
	Err      error
}

func (e *SnapshotError) Error() string { return e.Err.Error() }
func (e *SnapshotError) Unwrap() error { return e.Err }

// ServerSink appends events to the context of an Axon Server, in token order, one transaction at a
// time (AXON.md 5.2: concurrent appends would lose token order), while the caller reads, decodes and
// encodes the next events on other cores. A transaction ends where the source's does (WriteEvent's
// txEnd) or where the limits say. After each confirmation it checks that the target's head moved by
// exactly the transaction's events.
type ServerSink struct {
	conn *axonclient.Conn
	opts ServerSinkOptions
	ctx  context.Context

	txs  chan *transaction // one ready while one is sent: each can be 4 MiB
	tx   *transaction      // being filled
	slab []byte            // the events are copied one after the other into it, not each into its own

	started  bool
	done     chan struct{} // closed when the sender has ended
	err      error         // why it ended, once done
	finished sync.Once

	snapshots *snapshotSender
}

// NewServerSink returns a sink into the context conn talks to. Its events go through WriteEvent and
// Finish, its snapshots through WriteSnapshot and Close: from another goroutine while the events are
// sent, each once the event it needs is confirmed (see WriteSnapshot), or after Finish.
func NewServerSink(ctx context.Context, conn *axonclient.Conn, opts ServerSinkOptions) *ServerSink {
	return &ServerSink{conn: conn, opts: opts, ctx: ctx, txs: make(chan *transaction, 1), tx: &transaction{}, done: make(chan struct{}),
		snapshots: newSnapshotSender(conn, opts.SnapshotStored)}
}

// start starts the sender of the events.
func (s *ServerSink) start() {
	if s.started {
		return
	}
	s.started = true
	go func() {
		defer close(s.done)
		s.err = s.send()
	}()
}

func (s *ServerSink) Form() Form { return Protobuf }

// Done is closed when the sink has stopped sending events: after a failure, or after Finish.
func (s *ServerSink) Done() <-chan struct{} { return s.done }

// WriteEvent adds the event (protobuf) to the transaction being filled, handing the transaction to the
// sender when the limits or the source's transaction (txEnd) end it. After the sender stopped it
// returns an error, and Finish says what stopped it.
func (s *ServerSink) WriteEvent(token int64, event []byte, txEnd bool) error {
	s.start()
	tx := s.tx
	n := int64(len(event))
	if len(tx.events) > 0 && (len(tx.events) >= s.opts.MaxEvents || tx.bytes+n > s.opts.MaxBytes) {
		if err := s.hand(); err != nil {
			return err
		}
		tx = s.tx
	}
	if len(tx.events) == 0 {
		tx.first = token
	}
	tx.tokens = append(tx.tokens, token)
	if int64(cap(s.slab)-len(s.slab)) < n {
		s.slab = make([]byte, 0, max(n, slabBytes))
	}
	start := len(s.slab)
	s.slab = append(s.slab, event...)
	tx.events = append(tx.events, s.slab[start:len(s.slab):len(s.slab)])
	tx.bytes += n
	if txEnd {
		return s.hand()
	}
	return nil
}

// hand gives the transaction being filled to the sender.
func (s *ServerSink) hand() error {
	select {
	case s.txs <- s.tx:
		s.tx = &transaction{}
		return nil
	case <-s.done:
		return ErrStopped
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// Finish ends the events: with srcErr nil it sends what is left and waits until every transaction is
// confirmed; with the error that stopped the source, the sender stops at it after the transactions
// handed on before, and it is reported as the sender's own failures are. A failure is an *AppendError
// (or the context's error).
func (s *ServerSink) Finish(srcErr error) error {
	s.finished.Do(func() {
		s.start()
		if errors.Is(srcErr, ErrStopped) {
			srcErr = nil // the sender's own failure, which it reports
		}
		tx := s.tx
		if srcErr != nil {
			tx = &transaction{err: srcErr}
		}
		if len(tx.events) > 0 || tx.err != nil {
			select {
			case s.txs <- tx:
			case <-s.done:
			case <-s.ctx.Done():
			}
		}
		close(s.txs)
		<-s.done
	})
	return s.err
}

// FinishEvents is Finish(nil).
func (s *ServerSink) FinishEvents() error { return s.Finish(nil) }

// slabBytes is the size of the buffers the encoded events of transactions are cut from.
const slabBytes = 1 << 20

type transaction struct {
	first  int64 // source token of the first event
	tokens []int64
	events [][]byte
	bytes  int64
	err    error
}

// send commits the transactions handed to it, one after the other, until they end or one fails.
func (s *ServerSink) send() error {
	ctx, txs := s.ctx, s.txs
	head := s.opts.Head
	var confirmed int64
	nextToken := s.opts.Next
	fail := func(err error) error {
		unknown := false
		hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer hcancel()
		if h, herr := s.conn.LastToken(hctx); herr == nil {
			head = h
		} else {
			unknown = true
		}
		return &AppendError{Confirmed: confirmed, Head: head, HeadUnknown: unknown, Next: nextToken, Err: err}
	}
	// Two transactions may be on the wire at once, never two committing: the next transaction's events
	// are sent while the current one commits, and its call is half-closed (committed) only once the
	// current one is confirmed and the head checked. A call that is not half-closed stores nothing
	// whatever happens to it or to this process (AXON.md 2.3), so a failure or a crash leaves at most
	// one transaction whose outcome is unknown, as before; the one behind it is abandoned.
	var cur, next *sendingTx
	defer func() {
		for _, s := range []*sendingTx{cur, next} {
			if s != nil {
				s.append.Abandon() // a no-op for a committed call
			}
		}
	}()
	open := true
	receive := func(wait bool) (*transaction, error) {
		var tx *transaction
		if !open {
			return nil, nil
		}
		if wait {
			tx, open = <-txs
		} else {
			select {
			case tx, open = <-txs:
			default:
				return nil, nil // not read yet: the current transaction commits without waiting for it
			}
		}
		if !open {
			return nil, nil
		}
		return tx, tx.err
	}
	for {
		if cur == nil {
			tx, err := receive(true)
			if err != nil {
				return fail(err)
			}
			if tx == nil {
				break
			}
			cur = &sendingTx{tx: tx, append: s.conn.BeginAppend(ctx, tx.events)}
		}
		if next == nil {
			tx, err := receive(false)
			if err != nil {
				return fail(err)
			}
			if tx != nil {
				next = &sendingTx{tx: tx, append: s.conn.BeginAppend(ctx, tx.events)}
			}
		}
		tx := cur.tx
		if err := cur.append.Commit(); err != nil {
			if errors.Is(err, axonclient.ErrSequence) {
				err = s.locateSequenceError(context.WithoutCancel(ctx), tx, err)
			}
			if errors.Is(err, axonclient.ErrTooLarge) {
				err = largestIn(tx, err)
			}
			return fail(err)
		}
		crashpoint.Hit("import-appended") // faulttest: the server confirmed the transaction, the head is not checked yet
		want := head + int64(len(tx.events))
		got, err := s.conn.LastToken(ctx)
		if err != nil {
			return fail(fmt.Errorf("read the target's head after a transaction: %w", err))
		}
		if got != want {
			head = got
			return fail(fmt.Errorf("%w: after the transaction of tokens %d-%d the target ends at token %d, expected %d (another writer is appending to this context?)",
				ErrMismatch, tx.first, tx.tokens[len(tx.tokens)-1], got, want))
		}
		if s.opts.Confirmed != nil {
			if err := s.opts.Confirmed(tx.tokens, head+1, tx.bytes); err != nil {
				return fail(err)
			}
		}
		head = got
		confirmed += int64(len(tx.events))
		nextToken = tx.tokens[len(tx.tokens)-1] + 1
		crashpoint.Hit("import-transaction") // faulttest: between two transactions
		cur, next = next, nil
	}
	return ctx.Err()
}

// sendingTx is a transaction whose AppendEvent call is open.
type sendingTx struct {
	tx     *transaction
	append *axonclient.PendingAppend
}

// largestIn names the largest event of a transaction the server refused as too large: the server does
// not say which (Axon Server cancels the call), and --max-message-size let it through the size scan.
func largestIn(tx *transaction, cause error) error {
	largest := 0
	for i, ev := range tx.events {
		if len(ev) > len(tx.events[largest]) {
			largest = i
		}
	}
	return fmt.Errorf("%w: the largest event of the refused transaction (tokens %d-%d) is at token %d, %d bytes; pass the server's axoniq.axonserver.max-message-size as --max-message-size, or raise it on the server: %w",
		ErrEventTooLarge, tx.tokens[0], tx.tokens[len(tx.tokens)-1], tx.tokens[largest], len(tx.events[largest]), cause)
}

// locateSequenceError finds the event the server refused. Axon Server names it ("Invalid sequence number
// <n> for aggregate <id>, expected <m>"), and of several aggregates that fail it names whichever it checked
// first, not the first in token order (it checks within the transaction first, then each aggregate against
// the store in the order of a hash map): the line must name that one, or it would contradict the server's.
// Without a text to go by, the event is found by asking the server for the aggregates' highest sequences.
func (s *ServerSink) locateSequenceError(ctx context.Context, tx *transaction, cause error) error {
	var ae *axonclient.Error
	if errors.As(cause, &ae) {
		if seq, id, want, ok := parseSequenceDetail(ae.Detail); ok {
			return locateNamed(tx, seq, id, want, cause)
		}
	}
	expected := map[string]int64{}
	for i, raw := range tx.events {
		var r archive.Record
		if codec.Decode(raw, &r) != nil || r.AggregateType == "" {
			continue
		}
		want, ok := expected[r.AggregateID]
		if !ok {
			h, err := s.conn.HighestSequence(ctx, r.AggregateID)
			if err != nil {
				return cause
			}
			want = h + 1
		}
		if r.Sequence != want {
			return &SequenceError{Token: tx.tokens[i], AggregateID: r.AggregateID, Sequence: r.Sequence, Expected: want, Err: cause}
		}
		expected[r.AggregateID] = want + 1
	}
	return cause
}

// locateNamed finds the event of aggregate id with sequence seq that the server expected to be want: one
// that breaks the aggregate's run within the transaction, else the aggregate's first event in it (which
// did not follow the store).
func locateNamed(tx *transaction, seq int64, id string, want int64, cause error) error {
	first := -1
	prev, seen := int64(0), false
	for i, raw := range tx.events {
		var r archive.Record
		if codec.Decode(raw, &r) != nil || r.AggregateType == "" || r.AggregateID != id {
			continue
		}
		switch {
		case !seen && r.Sequence == seq:
			first = i
		case seen && r.Sequence == seq && prev+1 == want:
			return &SequenceError{Token: tx.tokens[i], AggregateID: id, Sequence: seq, Expected: want, Err: cause}
		}
		prev, seen = r.Sequence, true
	}
	if first >= 0 {
		return &SequenceError{Token: tx.tokens[first], AggregateID: id, Sequence: seq, Expected: want, Err: cause}
	}
	return fmt.Errorf("the server refused the transaction of tokens %d-%d: %w", tx.tokens[0], tx.tokens[len(tx.tokens)-1], cause)
}

// parseSequenceDetail reads Axon Server's "Invalid sequence number <n> for aggregate <id>, expected <m>";
// the id may itself hold ", expected ", so the last one counts.
func parseSequenceDetail(detail string) (seq int64, id string, want int64, ok bool) {
	rest, found := strings.CutPrefix(detail, "Invalid sequence number ")
	if !found {
		return 0, "", 0, false
	}
	num, rest, found := strings.Cut(rest, " for aggregate ")
	if !found {
		return 0, "", 0, false
	}
	at := strings.LastIndex(rest, ", expected ")
	if at < 0 {
		return 0, "", 0, false
	}
	seq, err1 := strconv.ParseInt(num, 10, 64)
	want, err2 := strconv.ParseInt(rest[at+len(", expected "):], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, "", 0, false
	}
	return seq, rest[:at], want, true
}

// WriteSnapshot starts the append of r once there is room and no snapshot of its aggregate is in flight.
// It may be called while the events are still being sent, but only for a snapshot whose aggregate's
// event at its sequence is confirmed (AXON.md 2.4), and from one goroutine at a time, which also calls
// Close. After a failure it sends nothing more and returns ErrStopped; Close says which failed.
func (s *ServerSink) WriteSnapshot(r *archive.Record) error {
	return s.WriteEncodedSnapshot(r.Token, r.AggregateID, r.Sequence, codec.Encode(nil, r))
}

// WriteEncodedSnapshot is WriteSnapshot of a snapshot already encoded (protobuf), at position in its
// stream, named by its aggregate and sequence in errors. The sink keeps event until the call ends.
func (s *ServerSink) WriteEncodedSnapshot(position int64, aggregate string, sequence int64, event []byte) error {
	if !s.snapshots.send(s.ctx, position, aggregate, sequence, event) {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		return ErrStopped
	}
	return nil
}

// SnapshotFailed is closed as soon as a snapshot append fails, without waiting for the goroutine that
// sends the snapshots to notice: the events being sent meanwhile can stop at once.
func (s *ServerSink) SnapshotFailed() <-chan struct{} { return s.snapshots.stopped }

// Close waits for the snapshots in flight and returns the failure at the lowest position, a
// *SnapshotError, if any.
func (s *ServerSink) Close() error {
	s.snapshots.wait()
	if f := s.snapshots.failed; f != nil {
		return &SnapshotError{Position: f.position, Err: f.err}
	}
	return nil
}

// SnapshotsSent is the number of snapshots the server stored.
func (s *ServerSink) SnapshotsSent() int64 { return s.snapshots.sent }

// Each AppendSnapshot is a round trip for one snapshot, so sending them is bound by latency, not by the
// cores or the wire: snapshotSender keeps up to maxSnapshotsInFlight calls (and maxSnapshotBytesInFlight
// bytes) going. The real server answers each after looking up the aggregate's highest sequence number
// (AXON.md 2.4), about 0.1 s a call on this project's 2-core machine whatever else is in flight: with 16
// in flight the 997 snapshots of the real-server benchmark took 6.6 s, with 64 1.4 s, and 256 gained
// nothing more. Two snapshots of one aggregate are never in flight together, so that each aggregate's
// snapshots are stored in the archive's order. After a failure nothing more is sent; snapshots after the
// failed one may have been stored, which a resumed import finds in the target.
const (
	maxSnapshotsInFlight     = 64
	maxSnapshotBytesInFlight = 8 << 20
)

type snapshotSender struct {
	conn     *axonclient.Conn
	stored   func() // counts a stored snapshot, if set
	done     chan snapshotResult
	inFlight map[string]int64 // aggregate id -> bytes of its snapshot in flight
	bytes    int64
	sent     int64
	failed   *snapshotResult // the failure at the lowest position
	stopped  chan struct{}   // closed by the first call that fails
	stopOnce sync.Once
}

type snapshotResult struct {
	aggregate string
	size      int64
	position  int64
	err       error
}

func newSnapshotSender(conn *axonclient.Conn, stored func()) *snapshotSender {
	return &snapshotSender{conn: conn, stored: stored, done: make(chan snapshotResult, maxSnapshotsInFlight), inFlight: map[string]int64{},
		stopped: make(chan struct{})}
}

// send starts the call for the snapshot once there is room and no snapshot of its aggregate is in
// flight. It returns false when it sends nothing more: after a failure, or when ctx ends.
func (s *snapshotSender) send(ctx context.Context, position int64, agg string, seq int64, event []byte) bool {
	size := int64(len(event))
	for s.failed == nil {
		_, busy := s.inFlight[agg]
		full := len(s.inFlight) >= maxSnapshotsInFlight || (len(s.inFlight) > 0 && s.bytes+size > maxSnapshotBytesInFlight)
		if !busy && !full {
			break
		}
		select {
		case res := <-s.done:
			s.finish(res)
		case <-ctx.Done():
			return false
		}
	}
	if s.failed != nil {
		return false
	}
	s.inFlight[agg] = size
	s.bytes += size
	go func() {
		err := s.conn.AppendSnapshot(ctx, event)
		switch {
		case errors.Is(err, axonclient.ErrTooLarge):
			err = fmt.Errorf("%w: the snapshot at position %d (aggregate %q, sequence %d) is %d bytes; pass the server's axoniq.axonserver.max-message-size as --max-message-size, or raise it on the server: %w",
				ErrEventTooLarge, position, agg, seq, len(event), err)
		case err != nil:
			err = fmt.Errorf("snapshot at position %d (aggregate %q, sequence %d): %w", position, agg, seq, err)
		}
		if err != nil {
			s.stopOnce.Do(func() { close(s.stopped) })
		}
		s.done <- snapshotResult{aggregate: agg, size: size, position: position, err: err}
	}()
	return true
}

func (s *snapshotSender) finish(res snapshotResult) {
	delete(s.inFlight, res.aggregate)
	s.bytes -= res.size
	if res.err != nil {
		if s.failed == nil || res.position < s.failed.position {
			s.failed = &res
		}
		return
	}
	s.sent++
	if s.stored != nil {
		s.stored()
	}
}

// wait returns once no call is in flight.
func (s *snapshotSender) wait() {
	for len(s.inFlight) > 0 {
		s.finish(<-s.done)
	}
}

var _ Sink = (*ServerSink)(nil)
