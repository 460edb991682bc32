package reader

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
)

// permitWindow is how many events may be outstanding on a ListEvents stream. It is topped up every half
// window, so the server never waits for permits (AXON.md 2.2: it gives up after 120 s at zero) and the
// count stays far below the 2^31-1 the server can hold. ServerOptions.Window shrinks it for a test.
const permitWindow int64 = 20000

// DefaultMaxRetries is Options.MaxRetries when it is 0: with the backoff (200 ms doubling up to 10 s, plus
// up to half again of jitter) the export waits about a minute for a server that restarts, which Axon Server
// takes tens of seconds to do.
const DefaultMaxRetries = 10

// SnapshotReaders bounds the ListAggregateSnapshots calls in flight. Each call is a round trip for one
// aggregate's few snapshots, so the phase is bound by latency: 64 in flight took a 1,000-aggregate phase
// from about 0.1 s to 0.05 s against the test double over loopback (more on a real network), and stays
// under the 100 concurrent streams HTTP/2 servers commonly allow a connection.
const SnapshotReaders = 64

// ServerOptions tune a ServerSource.
type ServerOptions struct {
	// MaxRetries bounds how many times in a row a lost stream is re-opened without progress; 0 means
	// DefaultMaxRetries, a negative value none.
	MaxRetries int
	// Warn receives messages a person must see: retries.
	Warn func(msg string)
	// NoSnapshots says that the snapshots will not be read: the manifest then gets no note on their scope.
	NoSnapshots bool
	// Window is the permit window of the event stream; 0 means the default (a test shrinks it).
	Window int64
}

// ServerSource reads a context of a running Axon Server over gRPC.
type ServerSource struct {
	conn *axonclient.Conn
	opts ServerOptions
}

// NewServer returns the source of the context conn talks to.
func NewServer(conn *axonclient.Conn, opts ServerOptions) *ServerSource {
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = DefaultMaxRetries
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	if opts.Window <= 0 {
		opts.Window = permitWindow
	}
	return &ServerSource{conn: conn, opts: opts}
}

func (s *ServerSource) Describe() manifest.Source {
	return manifest.Source{Kind: "server", Address: s.conn.Address(), Context: s.conn.Context()}
}

// WantsAggregates: snapshots are listed per aggregate over gRPC.
func (s *ServerSource) WantsAggregates() bool { return true }

func (s *ServerSource) Notes() []manifest.Note {
	if s.opts.NoSnapshots {
		return nil // no snapshots were read: there is no scope to speak of
	}
	return []manifest.Note{{Kind: "snapshot-scope", Token: -1, Detail: "snapshots were read over gRPC for the aggregates " +
		"of the exported domain events only; snapshots of other aggregates cannot be reached that way (an offline " +
		"export from segment files includes every snapshot)"}}
}

func (s *ServerSource) Bounds(ctx context.Context) (int64, int64, error) {
	last, err := s.conn.LastToken(ctx)
	if err != nil {
		return 0, 0, err
	}
	first, err := s.conn.FirstToken(ctx)
	if err != nil {
		return 0, 0, err
	}
	if last < first {
		last = first - 1
	}
	return first, last, nil
}

func (s *ServerSource) TokenAt(ctx context.Context, t time.Time) (int64, error) {
	return s.conn.TokenAt(ctx, t.UnixMilli())
}

// Transactions: ListEvents does not show where a transaction ends (AXON.md 5.3).
func (s *ServerSource) Transactions() bool { return false }

// Events streams [from, to], re-opening the stream after the last token received when the connection
// drops, a bounded number of times in a row without progress.
func (s *ServerSource) Events(ctx context.Context, from, to int64, emit func(Event) error) error {
	next := from
	return s.conn.ReadRange(ctx, from, to, axonclient.RangeOptions{
		Window: s.opts.Window, MaxRetries: s.opts.MaxRetries, MaxBackoff: 10 * time.Second, Jitter: true, Warn: s.opts.Warn,
	}, func(token int64, raw []byte) error {
		if token != next {
			// ListEvents delivers every committed event in token order (AXON.md 2.2): anything else would
			// leave a hole or a duplicate in the archive.
			return &TokenError{Token: token, Err: fmt.Errorf("server sent token %d where token %d was due", token, next)}
		}
		if err := emit(Event{Token: token, Raw: raw}); err != nil {
			return err
		}
		next = token + 1
		return nil
	})
}

// Snapshots reads each of req.Aggregates' snapshots (newest first over gRPC) and writes them oldest
// first, aggregates in the order given (that of their first exported event): an order that does not
// depend on timing and that a re-export of an imported archive reproduces.
func (s *ServerSource) Snapshots(ctx context.Context, req SnapshotRequest, out SnapshotWriter) error {
	aggs, skip := req.Aggregates, req.Skip
	type fetch struct {
		raws [][]byte
		err  error
		done chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetches := make(chan *fetch, SnapshotReaders)
	// The server lists an aggregate's snapshots newest stored first: the newest alone is the first one,
	// and the older ones need neither be read nor held (AXON.md 2.6: max_results bounds what it examines).
	var maxResults int32
	if req.Latest {
		maxResults = 1
	}
	go func() {
		defer close(fetches)
		sem := make(chan struct{}, SnapshotReaders)
		for _, id := range aggs {
			f := &fetch{done: make(chan struct{})}
			select {
			case fetches <- f:
			case <-ctx.Done():
				return
			}
			sem <- struct{}{}
			go func(id string) {
				defer func() { <-sem; close(f.done) }()
				f.raws, f.err = s.conn.ListAggregateSnapshots(ctx, id, 0, math.MaxInt64, maxResults)
			}(id)
		}
	}()
	var pos int64
	var rec archive.Record
	i := 0
	for f := range fetches {
		<-f.done
		if f.err != nil {
			return fmt.Errorf("snapshots of aggregate %q: %w", aggs[i], f.err)
		}
		raws := f.raws
		if req.Latest && len(raws) > 1 {
			raws = raws[:1]
		}
		for k := len(raws) - 1; k >= 0; k-- {
			if pos < skip {
				pos++
				continue
			}
			rec.Token = pos
			if err := codec.Decode(raws[k], &rec); err != nil {
				return fmt.Errorf("snapshot %d of aggregate %q: %w", pos, aggs[i], err)
			}
			if rec.AggregateID != aggs[i] {
				return fmt.Errorf("snapshot %d: server answered for aggregate %q when asked for %q", pos, rec.AggregateID, aggs[i])
			}
			if err := out.WriteSnapshot(&rec); err != nil {
				return err
			}
			pos++
		}
		if req.AggregateDone != nil {
			req.AggregateDone()
		}
		i++
	}
	return ctx.Err()
}
