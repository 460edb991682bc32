package writer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/crashpoint"
)

// Import replays the archives in dirs (one archive, or an incremental chain in order) into the context
// conn talks to. It returns the plan it followed; with opts.DryRun it only makes the plan. A failure
// after the first transaction was sent is a *ProgressError.
func Import(ctx context.Context, conn *axonclient.Conn, dirs []string, opts Options) (*Plan, error) {
	archives, err := OpenArchives(dirs)
	if err != nil {
		return nil, err
	}
	return ImportArchives(ctx, conn, archives, opts)
}

// ImportArchives is Import of archives already open. Passing the same archives to CompareArchives
// afterwards spares the check a second hashing of everything the import's verification hashed (see
// archive.Iterator).
func ImportArchives(ctx context.Context, conn *axonclient.Conn, archives []*archive.Archive, opts Options) (*Plan, error) {
	im := newImporter(conn, archives, opts)
	plan, err := im.preflight(ctx)
	if err != nil || opts.DryRun {
		return plan, err
	}
	// The target's head as known now, before Sending: a check that follows the import reads up to it.
	im.progress.Token.Store(plan.TargetHead)
	if opts.Sending != nil {
		opts.Sending(plan)
	}
	if err := im.importEvents(ctx, plan); err != nil {
		return plan, err
	}
	if err := im.importSnapshots(ctx, plan); err != nil {
		return plan, err
	}
	return plan, nil
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
	it := archive.NewChain(im.archives...).Events(ctx, from)
	defer it.Close()
	for it.Next() {
		if err := fn(it); err != nil {
			return err
		}
	}
	return it.Err()
}

// snapshotSizeScan checks every snapshot against the message size before anything is sent: they go after
// all events, too late to find out. A snapshot is sent with the snapshot flag the server set when it was
// exported (two bytes more than it stores).
func (im *importer) snapshotSizeScan(ctx context.Context) error {
	var buf []byte
	return im.eachSnapshot(ctx, func(_ *archive.Archive, r *archive.Record) error {
		buf = codec.Encode(buf[:0], r)
		if len(buf) > im.opts.MaxMessageSize {
			return fmt.Errorf("%w: the snapshot at position %d (aggregate %q, sequence %d) is %d bytes, the server accepts %d (raise axoniq.axonserver.max-message-size on the server and pass --max-message-size)",
				ErrEventTooLarge, r.Token, r.AggregateID, r.Sequence, len(buf), im.opts.MaxMessageSize)
		}
		return nil
	})
}

// sizeScan checks every event against the message size before anything is sent, and counts the
// transactions the import will make.
func (im *importer) sizeScan(ctx context.Context, plan *Plan) error {
	t := sizeTally{im: im, groups: newTxEnds(ctx, im.archives)}
	err := im.eachEncodedEvent(ctx, plan.StartAt, func(token int64, event []byte) error {
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

// slabBytes is the size of the buffers the encoded events of transactions are cut from.
const slabBytes = 1 << 20

type transaction struct {
	first  int64 // archive token of the first event
	tokens []int64
	events [][]byte
	bytes  int64
	err    error
}

// importEvents commits the events one transaction at a time (AXON.md 5.2: concurrent appends would lose
// token order) while the next transaction is sent, and the one after it read, decoded and encoded on
// another core.
func (im *importer) importEvents(ctx context.Context, plan *Plan) error {
	im.progress.Phase.Store("events")
	im.progress.Total.Store(plan.Events)
	head := plan.TargetHead
	im.progress.Token.Store(head)
	var tokenMap *tokenMapFile
	if im.opts.Renumber {
		var err error
		if tokenMap, err = openTokenMap(im.opts.TokenMap, im.opts.Resume, plan, im.recovered); err != nil {
			return err
		}
		defer tokenMap.close()
	}
	if plan.Events == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	txs := make(chan *transaction, 1) // one ready while one is sent: each can be 4 MiB
	// An archive that records its source's transactions is sent one transaction per recorded one (cut
	// further only where the limits below say so).
	groups := newTxEnds(ctx, im.archives)
	go func() {
		defer close(txs)
		defer groups.close()
		tx := &transaction{}
		var slab []byte // the events are encoded one after the other into it, not each into its own
		err := im.eachEncodedEvent(ctx, plan.StartAt, func(token int64, event []byte) error {
			n := int64(len(event))
			if len(tx.events) > 0 && (len(tx.events) >= im.maxTx || tx.bytes+n > im.maxBytes) {
				select {
				case txs <- tx:
				case <-ctx.Done():
					return ctx.Err()
				}
				tx = &transaction{}
			}
			if len(tx.events) == 0 {
				tx.first = token
			}
			tx.tokens = append(tx.tokens, token)
			if int64(cap(slab)-len(slab)) < n {
				slab = make([]byte, 0, max(n, slabBytes))
			}
			start := len(slab)
			slab = append(slab, event...)
			tx.events = append(tx.events, slab[start:len(slab):len(slab)])
			tx.bytes += n
			if groups != nil {
				if end, err := groups.ends(token); err != nil {
					return err
				} else if end {
					select {
					case txs <- tx:
					case <-ctx.Done():
						return ctx.Err()
					}
					tx = &transaction{}
				}
			}
			return nil
		})
		if err != nil {
			tx = &transaction{err: err}
		}
		if len(tx.events) > 0 || tx.err != nil {
			select {
			case txs <- tx:
			case <-ctx.Done():
			}
		}
	}()

	var confirmed int64
	nextToken := plan.StartAt
	fail := func(err error) error {
		unknown := false
		hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer hcancel()
		if h, herr := im.conn.LastToken(hctx); herr == nil {
			head = h
		} else {
			unknown = true
		}
		return &ProgressError{Imported: confirmed, TargetHead: head, HeadUnknown: unknown, NextToken: nextToken, Phase: "events", Err: err}
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
			cur = &sendingTx{tx: tx, append: im.conn.BeginAppend(ctx, tx.events)}
		}
		if next == nil {
			tx, err := receive(false)
			if err != nil {
				return fail(err)
			}
			if tx != nil {
				next = &sendingTx{tx: tx, append: im.conn.BeginAppend(ctx, tx.events)}
			}
		}
		tx := cur.tx
		if err := cur.append.Commit(); err != nil {
			if errors.Is(err, axonclient.ErrSequence) {
				err = im.locateSequenceError(context.WithoutCancel(ctx), tx, err)
			}
			if errors.Is(err, axonclient.ErrTooLarge) {
				err = largestIn(tx, err)
			}
			return fail(err)
		}
		crashpoint.Hit("import-appended") // faulttest: the server confirmed the transaction, the head is not checked yet
		want := head + int64(len(tx.events))
		got, err := im.conn.LastToken(ctx)
		if err != nil {
			return fail(fmt.Errorf("read the target's head after a transaction: %w", err))
		}
		if got != want {
			head = got
			return fail(fmt.Errorf("%w: after the transaction of tokens %d-%d the target ends at token %d, expected %d (another writer is appending to this context?)",
				ErrMismatch, tx.first, tx.tokens[len(tx.tokens)-1], got, want))
		}
		if tokenMap != nil {
			if err := tokenMap.add(tx.tokens, head+1); err != nil {
				return fail(err)
			}
		}
		head = got
		confirmed += int64(len(tx.events))
		nextToken = tx.tokens[len(tx.tokens)-1] + 1
		im.progress.Events.Add(int64(len(tx.events)))
		im.progress.Bytes.Add(tx.bytes)
		im.progress.Transactions.Add(1)
		im.progress.Token.Store(head)
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
func (im *importer) locateSequenceError(ctx context.Context, tx *transaction, cause error) error {
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
			h, err := im.conn.HighestSequence(ctx, r.AggregateID)
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
