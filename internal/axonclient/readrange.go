package axonclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// ErrStreamEnded is an event stream the server completed before the range was read: it never does that on
// its own (AXON.md 2.2), so the connection or the server went away.
var ErrStreamEnded = errors.New("server ended the event stream early")

// RangeOptions tune ReadRange.
type RangeOptions struct {
	// Window is how many events may be outstanding on the stream (permits); they are topped up every half
	// window, so the server never waits for permits (it gives up after 120 s at zero, AXON.md 2.2).
	Window int64
	// MaxRetries bounds how many times in a row, without an event in between, a lost stream is re-opened;
	// 0 means never.
	MaxRetries int
	// The wait before a re-open starts at 200 ms and doubles up to MaxBackoff; Jitter adds up to half
	// again, so that many clients a server dropped do not come back at once.
	MaxBackoff time.Duration
	Jitter     bool
	// Warn, if set, hears of each re-open.
	Warn func(string)
}

// ReadRange calls fn with the token and bytes of every event from token from to token to (inclusive), in
// order, as ListEvents delivers them. When the connection drops or the server goes away (ErrUnavailable,
// ErrStreamEnded) it re-opens the stream after the last event passed to fn, at most opts.MaxRetries times
// in a row without progress. The event passed to fn is valid only during the call; an error from fn ends
// the reading with that error.
func (c *Conn) ReadRange(ctx context.Context, from, to int64, opts RangeOptions, fn func(token int64, event []byte) error) error {
	next := from
	failures := 0
	backoff := 200 * time.Millisecond
	for next <= to {
		before := next
		err := c.readOnce(ctx, &next, to, opts.Window, fn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrStreamEnded) {
			return err
		}
		if next > before {
			failures, backoff = 0, 200*time.Millisecond
		}
		if failures++; failures > opts.MaxRetries {
			return fmt.Errorf("event stream lost %d times at token %d: %w", failures, next, err)
		}
		wait := backoff
		if opts.Jitter {
			wait += rand.N(backoff / 2)
		}
		if opts.Warn != nil {
			opts.Warn(fmt.Sprintf("event stream lost at token %d (%v); retrying in %s (attempt %d of %d)", next, err, wait.Round(time.Millisecond), failures, opts.MaxRetries))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, opts.MaxBackoff)
	}
	return nil
}

// readOnce is one stream of ReadRange, from *next on; *next follows the events passed to fn.
func (c *Conn) readOnce(ctx context.Context, next *int64, to, window int64, fn func(int64, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window = max(1, min(window, to-*next+1))
	st, err := c.ListEvents(ctx, *next, window)
	if err != nil {
		return err
	}
	defer st.Close()
	var sinceTopUp int64
	topUp := true
	for {
		token, event, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return ErrStreamEnded
		}
		if err != nil {
			return err
		}
		if err := fn(token, event); err != nil {
			return err
		}
		*next = token + 1
		if token >= to {
			_ = st.CloseSend()
			return nil
		}
		if sinceTopUp++; topUp && sinceTopUp >= window/2 {
			// Failing, the permits could not be sent because the stream has ended: the events already
			// on their way still come, then Recv says why (see AddPermits).
			topUp = st.AddPermits(sinceTopUp) == nil
			sinceTopUp = 0
		}
	}
}
