package archive

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"math"
	"strconv"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/klauspost/compress/zstd"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

// txRun is one record of the transactions stream (SPEC.md, "Transactions"): Repeat consecutive
// transactions of Events events each, the first starting at Token. Runs keep the stream small: a store
// written one event per transaction is one line per chunk of events, not one per event.
type txRun struct {
	Token  int64 `json:"token"`
	Events int64 `json:"events"`
	Repeat int64 `json:"repeat"`
}

// next returns the token after the run's last event.
func (r txRun) next() int64 { return r.Token + r.Events*r.Repeat }

// appendTxLine appends the canonical line of r, with its LF.
func appendTxLine(dst []byte, r txRun) []byte {
	dst = append(dst, jsonline.EventPrefix...)
	dst = strconv.AppendInt(dst, r.Token, 10)
	dst = append(dst, `,"events":`...)
	dst = strconv.AppendInt(dst, r.Events, 10)
	dst = append(dst, `,"repeat":`...)
	dst = strconv.AppendInt(dst, r.Repeat, 10)
	return append(dst, "}\n"...)
}

// parseTxLine accepts exactly the canonical line of a run, with token ≥ 0 and events and repeat ≥ 1.
func parseTxLine(line []byte) (txRun, error) {
	var r txRun
	rest := line
	field := func(prefix string, min int64) (int64, bool) {
		if !bytes.HasPrefix(rest, []byte(prefix)) {
			return 0, false
		}
		rest = rest[len(prefix):]
		end := 0
		for end < len(rest) && end < 20 && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		if end == 0 || (rest[0] == '0' && end > 1) {
			return 0, false
		}
		n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err != nil || n < min {
			return 0, false
		}
		rest = rest[end:]
		return n, true
	}
	var ok1, ok2, ok3 bool
	r.Token, ok1 = field(jsonline.EventPrefix, 0)
	if ok1 {
		r.Events, ok2 = field(`,"events":`, 1)
	}
	if ok2 {
		r.Repeat, ok3 = field(`,"repeat":`, 1)
	}
	if !ok3 || string(rest) != "}\n" {
		return txRun{}, fmt.Errorf("%w: not a canonical transactions record {\"token\":T,\"events\":K,\"repeat\":R} with T ≥ 0, K ≥ 1, R ≥ 1", ErrRecord)
	}
	return r, nil
}

// txFollower checks that runs, in order, group exactly the tokens of an unfiltered archive: from the
// first token to the last, without a gap token inside a transaction, skipping declared gaps between
// transactions (the order rules of sequence.go, applied to the runs' tokens).
type txFollower struct {
	m     *manifest.Manifest
	order tokenOrder // next: the next token to be grouped
	count int64      // transactions seen
}

func newTxFollower(m *manifest.Manifest) *txFollower {
	return &txFollower{m: m, order: newEventOrder(manifest.Range{First: m.Events.FirstToken, Last: m.Events.LastToken}, m.Gaps, true)}
}

// follow checks the next run.
func (f *txFollower) follow(r txRun) error {
	last := f.m.Events.LastToken
	if r.Token != f.order.next {
		return fmt.Errorf("%w: the run starts at token %d, the next token to group is %d", ErrSequence, r.Token, f.order.next)
	}
	// Sizes from an archive must not overflow: the run must fit in the range before it is multiplied.
	if r.Events > last-r.Token+1 || r.Repeat > (last-r.Token+1)/r.Events {
		return fmt.Errorf("%w: %d transactions of %d events from token %d run past the last token %d", ErrSequence, r.Repeat, r.Events, r.Token, last)
	}
	end := r.next()
	if g, ok := f.order.nextGap(); ok && g.From < end {
		return fmt.Errorf("%w: the run of tokens %d to %d holds the gap %d to %d", ErrSequence, r.Token, end-1, g.From, g.To)
	}
	f.order.take(end - 1)
	f.count = addSatInt(f.count, r.Repeat)
	return nil
}

// finish checks, after the last run, that every token was grouped and the count is the manifest's.
func (f *txFollower) finish() error {
	if from, to, missing := f.order.missingAtEnd(); missing {
		return fmt.Errorf("%w: tokens %d to %d are in no transaction", ErrSequence, from, to)
	}
	if f.count != f.m.Transactions.Count {
		return fmt.Errorf("%w: the runs hold %d transactions, the manifest says %d", ErrCorrupt, f.count, f.m.Transactions.Count)
	}
	return nil
}

func addSatInt(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// txIterator reads the transactions stream of an archive, run by run, checking each line's form, the
// chunks against the manifest, and that the runs group exactly the archive's event tokens.
//
//	it := a.transactionRuns(ctx)
//	defer it.Close()
//	for it.Next() {
//		run := it.Run()
//	}
//	if err := it.Err(); err != nil { … }
type txIterator struct {
	it     *Iterator
	follow *txFollower
	run    txRun
	err    error
}

// HasTransactions reports whether the archive records its source's transactions.
func (a *Archive) HasTransactions() bool { return a.m.Transactions != nil }

// Transactions returns an iterator over the archive's transaction runs; it yields nothing when the
// archive records no transactions (see HasTransactions).
func (a *Archive) transactionRuns(ctx context.Context) *txIterator {
	digest := ""
	if a.m.Transactions != nil {
		digest = a.m.Transactions.SHA256
	}
	return &txIterator{it: a.newIterator(ctx, manifest.StreamTransactions, math.MinInt64, digest), follow: newTxFollower(a.m)}
}

// Next advances to the next run.
func (t *txIterator) Next() bool {
	if t.err != nil {
		return false
	}
	if !t.it.Next() {
		t.err = t.it.Err()
		if t.err == nil && t.follow.m.Transactions != nil {
			if err := t.follow.finish(); err != nil {
				t.err = &Error{Path: manifestPath, Token: -1, Err: err}
			}
		}
		return false
	}
	r, err := parseTxLine(t.it.Line())
	if err == nil {
		err = t.follow.follow(r)
	}
	if err != nil {
		path, line := t.it.Path()
		t.err = &Error{Path: path, Line: line, Token: t.it.Token(), Err: err}
		t.it.Close()
		return false
	}
	t.run = r
	return true
}

// Run returns the current run.
func (t *txIterator) Run() txRun { return t.run }

// Err returns the error that stopped the iteration, or nil after a verified end.
func (t *txIterator) Err() error { return t.err }

// Close releases the iterator's file and decoder.
func (t *txIterator) Close() error { return t.it.Close() }

// TxCursor tells, for the event tokens of an archive in increasing order, which ones end a transaction
// of the source: what an import needs to keep the source's grouping.
type TxCursor struct {
	it  *txIterator
	run txRun
	ok  bool
}

// TxCursor returns a cursor over the archive's transactions, or nil when it records none. It must be
// closed.
func (a *Archive) TxCursor(ctx context.Context) *TxCursor {
	if a.m.Transactions == nil {
		return nil
	}
	return &TxCursor{it: a.transactionRuns(ctx)}
}

// Ends reports whether the event at token is the last of its transaction. Tokens must be asked in
// increasing order (skipping is allowed); a token in no transaction is an error.
func (c *TxCursor) Ends(token int64) (bool, error) {
	for !c.ok || token >= c.run.next() {
		if !c.it.Next() {
			if err := c.it.Err(); err != nil {
				return false, err
			}
			return false, fmt.Errorf("%w: token %d is in no transaction of the archive", ErrSequence, token)
		}
		c.run, c.ok = c.it.Run(), true
	}
	if token < c.run.Token {
		return false, fmt.Errorf("%w: token %d is in no transaction of the archive", ErrSequence, token)
	}
	return (token-c.run.Token+1)%c.run.Events == 0, nil
}

// Close releases the cursor's file and decoder.
func (c *TxCursor) Close() error { return c.it.Close() }

// txWriter is the Writer's side of the transactions stream: the run being counted, the transaction
// being written, and the chunk the finished runs go to.
type txWriter struct {
	enc   *zstd.Encoder
	chunk chunkWriter
	open  bool // chunk holds an open chunk
	hash  hash.Hash
	count int64 // transactions ended (in lines and in run)
	lines int64
	run   txRun // not yet a line; Repeat 0 when there is none
	start int64 // first token of the transaction not yet ended, -1
	line  []byte
}

// EndTransaction marks the last event written as the last of its transaction, for an archive created
// with Options.Transactions. Transactions that are open when a gap is declared or the events finish
// end there.
func (w *Writer) EndTransaction() error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.tx == nil {
		return w.fail(fmt.Errorf("end transaction: %w: the archive does not record transactions", errState))
	}
	if w.tx.start < 0 {
		return w.fail(fmt.Errorf("end transaction: %w: no event since the last transaction ended", errState))
	}
	return w.endTx()
}

// endTx ends the open transaction, if any, at the last event written.
func (w *Writer) endTx() error {
	t := w.tx
	if t == nil || t.start < 0 {
		return nil
	}
	size := w.events.next - t.start
	t.count++
	if t.run.Repeat > 0 && t.run.Events == size && t.run.next() == t.start {
		t.run.Repeat++
	} else {
		if err := w.flushTxRun(); err != nil {
			return err
		}
		t.run = txRun{Token: t.start, Events: size, Repeat: 1}
	}
	t.start = -1
	return nil
}

// flushTxRun writes the run being counted as a line.
func (w *Writer) flushTxRun() error {
	t := w.tx
	if t.run.Repeat == 0 {
		return nil
	}
	if !t.open {
		if err := t.chunk.open(w.st, manifest.StreamTransactions, t.run.Token, t.hash); err != nil {
			return w.fail(err)
		}
		t.open = true
	}
	t.line = appendTxLine(t.line[:0], t.run)
	if err := t.chunk.add(t.run.Token, t.line); err != nil {
		return w.fail(fmt.Errorf("write transactions (token %d): %w", t.run.Token, err))
	}
	t.lines++
	t.run = txRun{}
	return nil
}

// finishTx finishes the open transactions chunk, if any, and returns it for the caller to commit with
// the events chunk it belongs to, before the journal that lists both.
func (w *Writer) finishTx() (manifest.ChunkInfo, NewFile, error) {
	t := w.tx
	if t == nil || !t.open {
		return manifest.ChunkInfo{}, nil, nil
	}
	info, f, err := t.chunk.finish()
	t.open = false
	if err != nil {
		return manifest.ChunkInfo{}, nil, w.fail(err)
	}
	return info, f, nil
}
