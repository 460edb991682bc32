package export

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
)

// permitWindow is how many events may be outstanding on a ListEvents stream. It is topped up every half
// window, so the server never waits for permits (AXON.md 2.2: it gives up after 120 s at zero) and the
// count stays far below the 2^31-1 the server can hold. A variable only so that tests can shrink it.
var permitWindow int64 = 20000

// DefaultMaxRetries is Options.MaxRetries when it is 0: with the backoff (200 ms doubling up to 10 s, plus
// up to half again of jitter) the export waits about a minute for a server that restarts, which Axon Server
// takes tens of seconds to do.
const DefaultMaxRetries = 10

// SnapshotReaders bounds the ListAggregateSnapshots calls in flight. Each call is a round trip for one
// aggregate's few snapshots, so the phase is bound by latency: 64 in flight took a 1,000-aggregate phase
// from about 0.1 s to 0.05 s against the test double over loopback (more on a real network), and stays
// under the 100 concurrent streams HTTP/2 servers commonly allow a connection.
const SnapshotReaders = 64

// Live exports a context from a running Axon Server.
func Live(ctx context.Context, conn *axonclient.Conn, opts Options) (*Result, error) {
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = DefaultMaxRetries
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	return run(ctx, &liveSource{conn: conn, opts: &opts}, opts)
}

type liveSource struct {
	conn *axonclient.Conn
	opts *Options
}

func (s *liveSource) describe() archive.Source {
	return archive.Source{Kind: "server", Address: s.conn.Address(), Context: s.conn.Context()}
}

func (s *liveSource) wantsAggregates() bool { return true }

func (s *liveSource) notes() []archive.Note {
	if s.opts.Snapshots == SnapshotsNone {
		return nil // no snapshots were read: there is no scope to speak of
	}
	return []archive.Note{{Kind: "snapshot-scope", Token: -1, Detail: "snapshots were read over gRPC for the aggregates " +
		"of the exported domain events only; snapshots of other aggregates cannot be reached that way (an offline " +
		"export from segment files includes every snapshot)"}}
}

func (s *liveSource) bounds(ctx context.Context) (int64, int64, error) {
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

func (s *liveSource) tokenAt(ctx context.Context, t time.Time) (int64, error) {
	return s.conn.TokenAt(ctx, t.UnixMilli())
}

// events streams [from, to], re-opening the stream after the last token received when the connection
// drops, a bounded number of times in a row without progress.
// transactions: ListEvents does not show where a transaction ends (AXON.md 5.3).
func (s *liveSource) transactions() bool { return false }

func (s *liveSource) events(ctx context.Context, from, to int64, emit func(int64, []byte, bool) error) error {
	next := from
	return s.conn.ReadRange(ctx, from, to, axonclient.RangeOptions{
		Window: permitWindow, MaxRetries: s.opts.MaxRetries, MaxBackoff: 10 * time.Second, Jitter: true, Warn: s.opts.Warn,
	}, func(token int64, raw []byte) error {
		if token != next {
			// ListEvents delivers every committed event in token order (AXON.md 2.2): anything else would
			// leave a hole or a duplicate in the archive.
			return &TokenError{Token: token, Err: fmt.Errorf("server sent token %d where token %d was due", token, next)}
		}
		if err := emit(token, raw, false); err != nil {
			return err
		}
		next = token + 1
		return nil
	})
}

// snapshots reads each exported aggregate's snapshots (newest first over gRPC) and writes them oldest
// first, aggregates in the order of their first exported event: an order that does not depend on timing
// and that a re-export of an imported archive reproduces.
func (s *liveSource) snapshots(ctx context.Context, j *job, skip int64) error {
	aggs := j.aggOrder
	j.progress.Aggregates.Store(int64(len(aggs)))
	type fetch struct {
		raws [][]byte
		err  error
		done chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetches := make(chan *fetch, SnapshotReaders)
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
				f.raws, f.err = s.conn.ListAggregateSnapshots(ctx, id, 0, math.MaxInt64, 0)
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
		if j.opts.Snapshots == SnapshotsLatest && len(raws) > 1 {
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
			if err := j.w.WriteSnapshot(&rec); err != nil {
				return err
			}
			j.progress.Snapshots.Add(1)
			pos++
		}
		j.progress.AggsDone.Add(1)
		i++
	}
	return ctx.Err()
}
