package job

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/writer"
)

// Import replays the archives in dirs (one archive, or an incremental chain in order) into the context
// conn talks to. It returns the plan it followed; with opts.DryRun it only makes the plan. A failure
// after the first transaction was sent is a *ProgressError.
func Import(ctx context.Context, conn *axonclient.Conn, dirs []string, opts ImportOptions) (*Plan, error) {
	archives, err := OpenArchives(dirs)
	if err != nil {
		return nil, err
	}
	res, err := ImportArchives(ctx, conn, archives, opts)
	return res.Plan, err
}

// ImportResult is what an import did.
type ImportResult struct {
	*Plan
	// Started says that the preflight passed: the first append may have been sent.
	Started bool
	// Took is how long the import took, without what was left of the proof when it ended.
	Took time.Duration
	// Diff is the proof's verdict, with ImportOptions.Check.
	Diff *Diff
}

// CheckError is a proof (ImportOptions.Check) that failed to reach a verdict: the import itself is
// complete.
type CheckError struct{ Err error }

func (e *CheckError) Error() string {
	return fmt.Sprintf("check the target against the archive: %v", e.Err)
}
func (e *CheckError) Unwrap() error { return e.Err }

// ImportArchives is Import of archives already open, with the proof when opts.Check: the same archives
// serve both, which spares the proof a second hashing of everything the import's verification hashed
// (see archive.Iterator). The result is never nil.
func ImportArchives(ctx context.Context, conn *axonclient.Conn, archives []*archive.Archive, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	im := newImporter(conn, archives, opts)
	res := &ImportResult{}
	plan, err := im.preflight(ctx)
	res.Plan = plan
	if err != nil || opts.DryRun {
		return res, err
	}
	res.Started = true
	// The target's head as known now, before the proof starts: it follows the import up to it.
	im.progress.Token.Store(plan.TargetHead)
	im.progress.Total.Store(plan.ToSend())
	if opts.Sending != nil {
		opts.Sending(plan)
	}
	// The proof follows the import: it compares each transaction's events once the import has seen them
	// confirmed, on the cores the import leaves idle while the server commits, and is left with the
	// snapshots and the target's head when the import ends.
	type verdict struct {
		d   *Diff
		err error
	}
	var check chan verdict
	imported := make(chan struct{})
	checkCtx, stopCheck := context.WithCancel(ctx)
	defer stopCheck()
	if opts.Check {
		copts := CompareOptions{AfterImport: imported, Committed: im.progress.Token.Load, Warn: opts.Warn, MaxRetries: opts.CheckRetries}
		if opts.Renumber {
			first := plan.TargetFirst
			copts.TargetFirst = &first
		}
		check = make(chan verdict, 1)
		go func() {
			d, err := CompareArchives(checkCtx, conn, archives, copts)
			check <- verdict{d, err}
		}()
	}
	err = im.importEvents(ctx, plan)
	if err == nil {
		err = im.importSnapshots(ctx, plan)
	}
	res.Took = time.Since(start)
	if err != nil {
		if check != nil {
			stopCheck()
			<-check
		}
		return res, err
	}
	if check != nil {
		close(imported)
		v := <-check
		if v.err != nil {
			return res, &CheckError{Err: v.err}
		}
		res.Diff = v.d
	}
	return res, nil
}

// ToSend is the number of events a run of the plan sends: all of them, or for a resumed import (without
// renumbering: archive tokens are target tokens) those from StartAt on, declared gaps left out. A
// renumbered resume is counted whole (the percentage then starts where the first run left it).
func (p *Plan) ToSend() int64 {
	if p.Renumber || p.StartAt <= p.FirstToken {
		return p.Events
	}
	n := p.LastToken - p.StartAt + 1
	for _, g := range p.Gaps {
		if from, to := max(g.From, p.StartAt), min(g.To, p.LastToken); to >= from {
			n -= to - from + 1
		}
	}
	return max(n, 0)
}

// maxImportProblems bounds the problems an import that refuses an archive prints: enough to act on,
// while `axarchive verify` lists them all.
const maxImportProblems = 10

func (im *importer) preflight(ctx context.Context) (*Plan, error) {
	im.progress.Phase.Store("preflight")
	plan := &Plan{Archives: im.dirs, Renumber: im.opts.Renumber, FirstToken: 0, LastToken: -1}
	// The verification parses every event anyway: it measures them too, which spares sizeScan a read of
	// the whole archive when the import starts at the first event.
	var measured *sizeTally
	if !im.opts.NoVerify {
		measured = &sizeTally{im: im, groups: newTxEnds(ctx, im.archives)}
		defer measured.groups.close() // also when the tally is not applied (resume)
		vopts := archive.VerifyOptions{Measure: encodedSize, Measured: measured.add}
		for i, a := range im.archives {
			rep, err := a.Verify(ctx, vopts)
			if rep != nil && !rep.OK() {
				return plan, fmt.Errorf("verify %s: %w", im.dirs[i], rep.ErrFirst(maxImportProblems))
			}
			if err != nil {
				return plan, fmt.Errorf("verify %s: %w", im.dirs[i], err)
			}
		}
	}
	if len(im.archives) > 1 {
		if err := archive.NewChain(im.archives...).Check(); err != nil {
			return plan, err // wraps archive.ErrChain (= ErrChain), each problem on a line of its own
		}
	}
	for i, a := range im.archives {
		m := a.Manifest()
		if i == 0 {
			plan.FirstToken = m.Events.Range.First
		}
		plan.LastToken = m.Events.Range.Last
		plan.Events += m.Events.Count
		plan.Snapshots += m.Snapshots.Count
		plan.Gaps = append(plan.Gaps, m.Gaps...)
	}
	if !im.opts.Renumber {
		if first := im.archives[0].Manifest(); plan.FirstToken != 0 && first.Previous != nil {
			return plan, &IncrementalError{Dir: im.dirs[0], Previous: *first.Previous}
		}
		if plan.FirstToken != 0 {
			return plan, fmt.Errorf("%w: the archive starts at token %d, so its events cannot keep their tokens (use --renumber to give them the target's next tokens)", ErrNotContiguous, plan.FirstToken)
		}
		if filtered := im.filtered(); filtered > 0 {
			return plan, fmt.Errorf("%w: %d tokens were left out by the export's filter; use --renumber to give the events the target's next tokens", ErrNotContiguous, filtered)
		}
		if len(plan.Gaps) > 0 {
			g := plan.Gaps[0]
			return plan, fmt.Errorf("%w: tokens %d-%d are missing (%s); use --renumber to give the events the target's next tokens", ErrNotContiguous, g.From, g.To, g.Cause)
		}
	}
	head, err := im.conn.LastToken(ctx)
	if err != nil {
		return plan, fmt.Errorf("read the target's head: %w", err)
	}
	plan.TargetHead = head
	plan.StartAt = plan.FirstToken
	plan.TargetFirst = plan.FirstToken
	if im.opts.Renumber {
		plan.TargetFirst = head + 1
	}
	switch {
	case im.opts.Resume && im.opts.Renumber:
		if err := im.resumeRenumbered(ctx, plan, head); err != nil {
			return plan, err
		}
	case im.opts.Resume:
		if head >= 0 {
			if head > plan.LastToken {
				return plan, fmt.Errorf("%w: the target ends at token %d, after the archive's last token %d", ErrMismatch, head, plan.LastToken)
			}
			if err := im.checkEventAt(ctx, head); err != nil {
				return plan, err
			}
			plan.StartAt = head + 1
		}
	case !im.opts.Renumber && head >= 0:
		return plan, fmt.Errorf("%w: it ends at token %d; import needs an empty context (or --resume to continue an import, --renumber to append)", ErrTargetNotEmpty, head)
	}
	if err := im.snapshotSizeScan(ctx); err != nil {
		return plan, err
	}
	if measured != nil && plan.StartAt == plan.FirstToken {
		return plan, measured.apply(plan)
	}
	if err := im.sizeScan(ctx, plan); err != nil {
		return plan, err
	}
	return plan, nil
}

func (im *importer) filtered() int64 {
	var n int64
	for _, a := range im.archives {
		n += a.Manifest().Events.Filtered
	}
	return n
}

// archiveEvent returns the protobuf bytes of the archive's event at token, or nil if it has none there.
func (im *importer) archiveEvent(ctx context.Context, token int64) ([]byte, error) {
	var want []byte
	if err := im.eachEvent(ctx, token, func(r *archive.Record) error {
		if r.Token == token {
			want = codec.Encode(nil, r)
		}
		return errStop
	}); err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return want, nil
}

// checkEventAt makes sure the target's event at token is the archive's: a resumed import continues only
// after an event it can prove it wrote.
func (im *importer) checkEventAt(ctx context.Context, token int64) error {
	want, err := im.archiveEvent(ctx, token)
	if err != nil {
		return err
	}
	if want == nil {
		return fmt.Errorf("%w: the target ends at token %d, which is not in the archive", ErrMismatch, token)
	}
	got, err := readTargetEvent(ctx, im.conn, token)
	if err != nil {
		return fmt.Errorf("read the target's event at token %d: %w", token, err)
	}
	if string(got) != string(want) {
		return fmt.Errorf("%w: the target's event at token %d differs from the archive's (%s)", ErrMismatch, token, describeDifference(want, got))
	}
	return nil
}

var errStop = errors.New("stop")

// eachEvent calls fn for the archive events from token from on, across the chain.
func (im *importer) eachEvent(ctx context.Context, from int64, fn func(*archive.Record) error) error {
	return im.walkEvents(ctx, from, func(it *archive.Iterator) error {
		r, err := it.Record()
		if err != nil {
			return err
		}
		return fn(r)
	})
}

// walkEvents calls fn with the iterator at each archive event from token from on, across the chain,
// until fn or the reading fails.
func (im *importer) walkEvents(ctx context.Context, from int64, fn func(*archive.Iterator) error) error {
	return im.src.Walk(ctx, from, fn)
}

// snapshotSizeScan checks every snapshot against the message size before anything is sent: most go
// while the events are imported or after them, too late to find out. A snapshot is sent with the
// snapshot flag the server set when it was exported (two bytes more than it stores). For a fresh import
// it fills the window of the snapshots sent beside the events on the way.
func (im *importer) snapshotSizeScan(ctx context.Context) error {
	var buf []byte
	if !im.opts.Resume && !im.opts.DryRun {
		im.window = newSnapshotWindow()
	}
	return im.eachSnapshot(ctx, func(_ *archive.Archive, r *archive.Record) error {
		buf = codec.Encode(buf[:0], r)
		if len(buf) > im.opts.MaxMessageSize {
			return fmt.Errorf("%w: the snapshot at position %d (aggregate %q, sequence %d) is %d bytes, the server accepts %d (raise axoniq.axonserver.max-message-size on the server and pass --max-message-size)",
				ErrEventTooLarge, r.Token, r.AggregateID, r.Sequence, len(buf), im.opts.MaxMessageSize)
		}
		if im.window != nil {
			im.window.add(r.Token, r.AggregateID, r.Sequence, buf)
		}
		return nil
	})
}

// sizeScan checks every event against the message size before anything is sent, and counts the
// transactions the import will make.
func (im *importer) sizeScan(ctx context.Context, plan *Plan) error {
	t := sizeTally{im: im, groups: newTxEnds(ctx, im.archives)}
	err := im.eachEncodedEvent(ctx, plan.StartAt, false, func(token int64, event []byte, _ eventAggregate) error {
		t.add(token, int64(len(event)))
		return t.err
	})
	t.apply(plan)
	return err // t.err when the tally stopped the scan
}

// sizeTally follows the events' sizes in token order, as sizeScan reads them or the verification
// measures them: the first event too large for a message stops it.
type sizeTally struct {
	im                         *importer
	events, transactions, size int64
	txEvents                   int
	txBytes                    int64
	err                        error
	groups                     *txEnds // the archives' recorded transactions, nil if none
	cut                        bool    // the last event ended a recorded transaction
}

func (t *sizeTally) add(token, n int64) {
	if t.err != nil {
		return
	}
	im := t.im
	if n > int64(im.opts.MaxMessageSize) {
		t.err = fmt.Errorf("%w: the event at token %d is %d bytes, the server accepts %d (raise axoniq.axonserver.max-message-size on the server and pass --max-message-size)",
			ErrEventTooLarge, token, n, im.opts.MaxMessageSize)
		return
	}
	if t.txEvents == 0 || t.cut || t.txEvents >= im.maxTx || t.txBytes+n > im.maxBytes {
		t.transactions++
		t.txEvents, t.txBytes = 0, 0
	}
	t.txEvents++
	t.txBytes += n
	t.events++
	t.size += n
	if t.groups != nil {
		t.cut, t.err = t.groups.ends(token)
	}
}

// apply puts the counts into the plan and returns the error that stopped the tally, if any.
func (t *sizeTally) apply(plan *Plan) error {
	t.groups.close()
	plan.Events = t.events
	plan.Transactions += t.transactions
	plan.Bytes += t.size
	return t.err
}

// importEvents commits the events through a writer.ServerSink, one transaction at a time, while the next
// transaction is sent, and the one after it read, decoded and encoded on the other cores.
func (im *importer) importEvents(ctx context.Context, plan *Plan) error {
	im.progress.Phase.Store("events")
	im.progress.Token.Store(plan.TargetHead)
	var tokenMap *tokenMapFile
	if im.opts.Renumber {
		var err error
		if tokenMap, err = openTokenMap(im.opts.TokenMap, im.opts.Resume, plan, im.recovered); err != nil {
			return err
		}
		defer tokenMap.close()
	}
	var ov *overlap // set before the sink's first confirmation
	sink := writer.NewServerSink(ctx, im.conn, writer.ServerSinkOptions{
		MaxEvents: im.maxTx, MaxBytes: im.maxBytes, Head: plan.TargetHead, Next: plan.StartAt,
		SnapshotStored: func() { im.progress.Snapshots.Add(1) },
		Confirmed: func(tokens []int64, firstTarget, bytes int64) error {
			if tokenMap != nil {
				if err := tokenMap.add(tokens, firstTarget); err != nil {
					return err
				}
			}
			im.progress.Events.Add(int64(len(tokens)))
			im.progress.Bytes.Add(bytes)
			im.progress.Transactions.Add(1)
			im.progress.Token.Store(firstTarget + int64(len(tokens)) - 1)
			if ov != nil {
				ov.confirm(tokens[len(tokens)-1])
			}
			return nil
		},
	})
	im.sink = sink
	if plan.Events == 0 {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sink.Done(): // a failed append stops the reading at once
		case <-ctx.Done():
		}
		cancel()
	}()
	var snapshotFailed <-chan struct{}
	if im.window != nil && len(im.window.held) > 0 {
		// The confirmed tokens are source tokens, as are the ones the snapshots wait for: a renumbered
		// import overlaps too. Before the first event is handed to the sink: no confirmation is missed.
		ov = startOverlap(ctx, im.window, sink, plan.StartAt-1)
		snapshotFailed = sink.SnapshotFailed()
	}
	// An archive that records its source's transactions is sent one transaction per recorded one (cut
	// further only where the limits say so).
	groups := newTxEnds(ctx, im.archives)
	err := im.eachEncodedEvent(ctx, plan.StartAt, ov != nil, func(token int64, event []byte, agg eventAggregate) error {
		end := false
		if groups != nil {
			var err error
			if end, err = groups.ends(token); err != nil {
				return err
			}
		}
		if ov != nil {
			select {
			case <-snapshotFailed:
				return errSnapshotStopped
			default:
			}
			ov.seen(token, agg)
		}
		return sink.WriteEvent(token, event, end)
	})
	groups.close()
	err = sink.Finish(err)
	if ov != nil {
		ov.end(err)
	}
	var ae *writer.AppendError
	if errors.As(err, &ae) {
		perr := &ProgressError{Imported: ae.Confirmed, TargetHead: ae.Head, HeadUnknown: ae.HeadUnknown, NextToken: ae.Next, Phase: "events", Err: ae.Err}
		if ov != nil {
			// The snapshots in flight end before the import does; the failed one, if a snapshot
			// stopped the events, is what the error names.
			var se *writer.SnapshotError
			switch {
			case !errors.Is(ae.Err, errSnapshotStopped):
				_ = sink.Close()
			case parent.Err() != nil:
				_ = sink.Close()
				perr.Err = parent.Err() // the snapshot failed because the import was interrupted
			case errors.As(sink.Close(), &se):
				perr.Err = fmt.Errorf("%d snapshots sent this run: %w", sink.SnapshotsSent(), se)
			}
		}
		return perr
	}
	if err != nil && ov != nil {
		_ = sink.Close() // the context ended: the snapshots in flight end with it
	}
	return err
}

// tokenMapFile records where renumbered events went, one "archive-token target-token" line per event,
// flushed after every confirmed transaction. It is also what a resumed renumbered import continues from
// (renumber.go).
type tokenMapFile struct {
	f *os.File
	w *bufio.Writer
}

func (t *tokenMapFile) add(tokens []int64, firstTarget int64) error {
	var buf []byte
	for i, tok := range tokens {
		buf = strconv.AppendInt(buf[:0], tok, 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, firstTarget+int64(i), 10)
		buf = append(buf, '\n')
		if _, err := t.w.Write(buf); err != nil {
			return fmt.Errorf("write token map: %w", err)
		}
	}
	if err := t.w.Flush(); err != nil {
		return fmt.Errorf("write token map: %w", err)
	}
	return t.f.Sync()
}

func (t *tokenMapFile) close() { _ = t.f.Close() }
