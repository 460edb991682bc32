package archive

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/internal/crashpoint"
)

// The records: events and gaps in token order, then snapshots in position order, cut into chunks.

// WriteEvent writes the next event. Tokens must increase and stay within the range; a token after a
// jump is accepted when the archive has a Filter (the skipped tokens count as filtered), else it fails.
func (w *Writer) WriteEvent(r *Record) error {
	if err := w.checkEvent(r.Token); err != nil {
		return err
	}
	w.scratch = AppendEventJSON(w.scratch[:0], r)
	var typ []byte
	if r.Payload != nil {
		typ = append(w.tokenBuf[:0], r.Payload.Type...)
	}
	return w.addEvent(r.Token, w.scratch, typ)
}

// WriteEventLine is WriteEvent for a line already encoded by AppendEventJSON (with its LF): the fast
// path of an export that encodes on other cores. The writer checks the token and the size of the line,
// not the rest of its encoding.
func (w *Writer) WriteEventLine(token int64, line []byte) error {
	if err := w.checkEvent(token); err != nil {
		return err
	}
	w.tokenBuf = strconv.AppendInt(append(w.tokenBuf[:0], jsonline.EventPrefix...), token, 10)
	w.tokenBuf = append(w.tokenBuf, ',')
	if !bytes.HasPrefix(line, w.tokenBuf) || bytes.IndexByte(line, '\n') != len(line)-1 {
		return w.fail(fmt.Errorf("write event (token %d): %w: not a canonical line of that token", token, ErrRecord))
	}
	return w.addEvent(token, line, jsonline.PayloadType(line))
}

func (w *Writer) checkEvent(token int64) error {
	if err := w.usable(); err != nil {
		return err
	}
	if !w.eventsDone && w.events.clean(token) {
		return nil
	}
	check := w.events.check(token)
	switch {
	case w.eventsDone:
		return w.fail(fmt.Errorf("write event (token %d): %w: events are finished", token, errState))
	case check.behind:
		return w.fail(fmt.Errorf("write event (token %d): %w: expected a token from %d on", token, errOrder, check.expected))
	case check.outOfRange:
		return w.fail(fmt.Errorf("write event (token %d): %w: the range ends at %d", token, errOrder, w.opts.Range.Last))
	case check.missing:
		return w.fail(fmt.Errorf("write event (token %d): %w: tokens %d to %d were neither written nor declared as a gap", token, errGap, check.expected, token-1))
	}
	return nil
}

func (w *Writer) addEvent(token int64, line, typ []byte) error {
	if err := checkLine(line); err != nil {
		return w.fail(fmt.Errorf("write event (token %d): %w", token, err))
	}
	if err := w.rotate(manifest.StreamEvents, token, len(line)); err != nil {
		return err
	}
	if err := w.chunk.add(token, line); err != nil {
		return w.fail(fmt.Errorf("write event (token %d): %w", token, err))
	}
	crashpoint.Hit("event") // faulttest: mid-chunk, after the Nth event
	w.evTypes.add(typ)
	w.evCount++
	w.events.take(token)
	if w.tx != nil && w.tx.start < 0 {
		w.tx.start = token
	}
	return nil
}

// checkLine refuses lines that no reader would accept: over maxRecordBytes, or not UTF-8 (a Record
// whose strings are not valid UTF-8 has no JSON form).
func checkLine(line []byte) error {
	if len(line) > maxRecordBytes {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(line))
	}
	if !utf8.Valid(line) {
		return fmt.Errorf("%w: a string of the record is not valid UTF-8", ErrRecord)
	}
	return nil
}

// rotate commits the open chunk if the next line does not fit, and opens a chunk if none is open.
func (w *Writer) rotate(stream string, first int64, size int) error {
	if w.open {
		c := &w.chunk.info
		if c.Records >= w.opts.ChunkRecords || c.RawSize+int64(size) > w.opts.ChunkBytes {
			if err := w.commitChunk(); err != nil {
				return err
			}
		}
	}
	if !w.open {
		h := w.evHash
		if stream == manifest.StreamSnapshots {
			h = w.snHash
		}
		if err := w.chunk.open(w.st, stream, first, h); err != nil {
			return w.fail(err)
		}
		w.open = true
	}
	return nil
}

// commitChunk makes the open chunk (and the transactions chunk of its events) durable and journals
// them with the state they complete. Into a directory this happens before it returns; into any other
// storage (an object store, where committing is an upload) the files are committed and the journal
// written in the background while the writer encodes the next chunk, one chunk at a time: the next
// commitChunk, and everything that reads or writes the journal, waits for it first (wait).
func (w *Writer) commitChunk() error {
	if !w.open {
		return nil
	}
	if err := w.wait(); err != nil {
		return err
	}
	info, f, err := w.chunk.finish()
	w.open = false
	if err != nil {
		return w.fail(err)
	}
	// j, the journal after this chunk, shares its chunks' array with w.j: appending to it leaves w.j's
	// elements as they are, and nothing appends to w.j's until it is replaced by j (wait).
	j := w.j
	j.Chunks = append(w.j.Chunks, info)
	// The transactions of the chunk's events are committed with it: a resumed export continues after
	// the chunk's last event, so the journal must describe their grouping up to there.
	txInfo, txFile, err := w.finishTx()
	if err != nil {
		f.Abort()
		return err
	}
	if txFile != nil {
		j.Chunks = append(j.Chunks, txInfo)
	}
	w.snapshotState(&j)
	publish := func() error {
		if err := commitFile(f); err != nil {
			if txFile != nil {
				txFile.Abort()
			}
			return err
		}
		crashpoint.Hit("chunk-renamed") // faulttest: the chunk has its final name, the journal does not list it
		if txFile != nil {
			if err := commitFile(txFile); err != nil {
				return err
			}
		}
		return j.write(w.st)
	}
	if localDir(w.st) != nil {
		if err := publish(); err != nil {
			return w.fail(err)
		}
		w.j = j
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- publish() }()
	w.pending, w.pendingJ = done, &j
	return nil
}

// wait waits for the chunk being committed in the background, if any, and takes its journal as the
// committed state.
func (w *Writer) wait() error {
	if w.pending == nil {
		return nil
	}
	err := <-w.pending
	w.pending = nil
	if err != nil {
		return w.fail(err)
	}
	w.j = *w.pendingJ
	w.pendingJ = nil
	return nil
}

// snapshotState copies the running state into j (whose chunks already include the open chunk's, or it
// is empty).
func (w *Writer) snapshotState(j *journal) {
	j.NextToken = w.events.next
	j.EventsDone = w.eventsDone
	j.LastPosition = w.snapshots.prev
	j.Events = journalState{Count: w.evCount, Hash: marshalHash(w.evHash), Types: w.evTypes.list(), OtherTypes: w.evTypes.other}
	j.Snapshots = journalState{Count: w.snCount, Hash: marshalHash(w.snHash), Types: w.snTypes.list(), OtherTypes: w.snTypes.other}
	j.Gaps = slices.Clone(w.gaps)
	if t := w.tx; t != nil {
		j.Transactions = &journalTx{Count: t.count, Lines: t.lines, Hash: marshalHash(t.hash), Run: t.run, Open: t.start}
	}
}

// addGap declares that the tokens g.From to g.To are not in the archive, for the reason g.Cause (for
// example "unavailable" for tokens a source does not hold). g.From must be the next expected token.
// Declaring again a gap that an earlier run committed is accepted and ignored. WriteEvent and
// FinishEvents accept the tokens of a declared gap as missing. Only this package's tests (and so the
// golden archives) declare gaps; no export does.
func (w *Writer) addGap(g manifest.Gap) error {
	if err := w.usable(); err != nil {
		return err
	}
	if slices.Contains(w.gaps, g) && g.To < w.events.next {
		return nil
	}
	switch {
	case w.eventsDone:
		return w.fail(fmt.Errorf("add gap %d-%d: %w: events are finished", g.From, g.To, errState))
	case g.Cause == "":
		return w.fail(fmt.Errorf("add gap %d-%d: no cause", g.From, g.To))
	case g.From != w.events.next || g.To < g.From || g.To > w.opts.Range.Last:
		return w.fail(fmt.Errorf("add gap %d-%d: %w: expected a gap from %d, within the range ending at %d", g.From, g.To, errOrder, w.events.next, w.opts.Range.Last))
	}
	if err := w.endTx(); err != nil { // a transaction never holds a gap
		return err
	}
	if n := len(w.gaps); n > 0 && w.gaps[n-1].To+1 == g.From && w.gaps[n-1].Cause == g.Cause {
		w.gaps[n-1].To = g.To
	} else {
		w.gaps = append(w.gaps, g)
	}
	w.events.passGap(w.gaps)
	return nil
}

// FinishEvents closes the events stream: it commits the last events chunk and journals that the events
// are complete. The tokens after the last event up to Range.Last count as filtered when the archive has
// a Filter; without one, it fails. Calling it again is a no-op.
func (w *Writer) FinishEvents() error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.eventsDone {
		return nil
	}
	if from, to, missing := w.events.missingAtEnd(); missing {
		return w.fail(fmt.Errorf("finish events: %w: tokens %d to %d were neither written nor declared as a gap", errGap, from, to))
	}
	if w.tx != nil {
		if err := w.endTx(); err != nil {
			return err
		}
		if err := w.flushTxRun(); err != nil {
			return err
		}
	}
	w.events.finish()
	w.eventsDone = true
	if w.open {
		return w.commitChunk()
	}
	if err := w.wait(); err != nil {
		return err
	}
	txInfo, txFile, err := w.finishTx()
	if err != nil {
		return err
	}
	j := w.j
	if txFile != nil {
		if err := commitFile(txFile); err != nil {
			return w.fail(err)
		}
		j.Chunks = append(w.j.Chunks, txInfo)
	}
	w.snapshotState(&j)
	if err := j.write(w.st); err != nil {
		return w.fail(err)
	}
	w.j = j
	return nil
}

// WriteSnapshot writes the next snapshot, after FinishEvents; r.Token is its position (SPEC.md,
// "Snapshot positions"): positions must increase, and for a manifest.SourceServer archive they are the
// ordinals 0, 1, 2, …. With snapshot mode manifest.SnapshotsNone it fails.
func (w *Writer) WriteSnapshot(r *Record) error {
	if err := w.usable(); err != nil {
		return err
	}
	pos := r.Token
	check := w.snapshots.check(pos)
	switch {
	case w.opts.Snapshots == manifest.SnapshotsNone:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: snapshot mode is %q", pos, errState, manifest.SnapshotsNone))
	case !w.eventsDone:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: FinishEvents first", pos, errState))
	case check.notAfter:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: expected a position after %d", pos, errOrder, w.snapshots.prev))
	case check.notOrdinal:
		return w.fail(fmt.Errorf("write snapshot (position %d): %w: the snapshots of a server export are numbered 0, 1, 2, …; expected %d", pos, errOrder, check.expected))
	}
	w.scratch = AppendSnapshotJSON(w.scratch[:0], r)
	if err := checkLine(w.scratch); err != nil {
		return w.fail(fmt.Errorf("write snapshot (position %d): %w", pos, err))
	}
	if err := w.rotate(manifest.StreamSnapshots, pos, len(w.scratch)); err != nil {
		return err
	}
	if err := w.chunk.add(pos, w.scratch); err != nil {
		return w.fail(fmt.Errorf("write snapshot (position %d): %w", pos, err))
	}
	crashpoint.Hit("snapshot") // faulttest: in the snapshot phase, after the Nth snapshot
	var typ []byte
	if r.Payload != nil {
		typ = append(w.tokenBuf[:0], r.Payload.Type...)
	}
	w.snTypes.add(typ)
	w.snCount++
	w.snapshots.take(pos)
	return nil
}

// AddNote records a note for the manifest. It is journaled at once; adding a note equal to one already
// recorded (by an earlier run) does nothing.
func (w *Writer) AddNote(n manifest.Note) error {
	if err := w.usable(); err != nil {
		return err
	}
	if n.Kind == "" {
		return w.fail(fmt.Errorf("add note: no kind"))
	}
	if err := w.wait(); err != nil {
		return err
	}
	if slices.Contains(w.j.Notes, n) {
		return nil
	}
	w.j.Notes = append(w.j.Notes, n)
	if err := w.j.write(w.st); err != nil {
		return w.fail(err)
	}
	return nil
}
