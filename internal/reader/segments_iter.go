package reader

import (
	"context"
	"fmt"
	"os"
)

// segIter walks the entries of a list of segment files of one kind. EventIterator and SnapshotIterator
// are thin names over it.
type segIter struct {
	ctx   context.Context
	files []SegmentFile
	from  int64
	sc    scanner

	i   int      // index in files of the file being read, or to be opened next
	f   *os.File // open file, or nil
	idx int      // next entry of the current block

	tok int64
	ev  []byte
	off int64

	err  error
	cut  *TailCut
	done bool
}

func newSegIter(ctx context.Context, files []SegmentFile, from, maxBlock int64) *segIter {
	it := &segIter{ctx: ctx, files: files, from: max(from, 0), sc: scanner{maxBlock: maxBlock}}
	// File i ends where file i+1 begins, so every file followed by one starting at or before from holds
	// only earlier tokens and need not be opened. (Its continuity with the next is then not checked.)
	for it.i+1 < len(files) && files[it.i+1].First <= it.from {
		it.i++
	}
	if len(files) > 0 {
		it.sc.next = files[it.i].First
	}
	return it
}

func (it *segIter) next() bool {
	if it.done {
		return false
	}
	for {
		if it.idx < len(it.sc.entries) {
			it.tok = it.sc.blockToken + int64(it.idx)
			it.ev, it.off = it.sc.event(it.idx)
			it.idx++
			return true
		}
		if it.f == nil {
			if it.i >= len(it.files) {
				return it.finish(nil)
			}
			if err := it.open(); err != nil {
				return it.finish(err)
			}
		}
		if err := it.ctx.Err(); err != nil {
			return it.finish(err)
		}
		ok, err := it.sc.nextBlock()
		if err != nil {
			return it.finish(err)
		}
		if ok {
			it.idx = 0
			if it.sc.blockToken < it.from {
				it.idx = int(min(it.from-it.sc.blockToken, int64(len(it.sc.entries))))
			}
			continue
		}
		// End of this file's data.
		it.closeFile()
		if it.sc.cut != nil {
			it.cut = it.sc.cut
			return it.finish(nil)
		}
		if it.i+1 < len(it.files) {
			if err := continuity(it.files[it.i], it.sc.next, it.files[it.i+1]); err != nil {
				return it.finish(err)
			}
		}
		it.i++
	}
}

func (it *segIter) open() error {
	file := it.files[it.i]
	f, err := os.Open(file.Path)
	if err != nil {
		return fmt.Errorf("read segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("read segment: %w", err)
	}
	it.f = f
	return it.sc.start(f, fi.Size(), file, it.i == len(it.files)-1)
}

func (it *segIter) closeFile() {
	if it.f != nil {
		it.f.Close() // read-only: nothing to lose
		it.f = nil
	}
}

func (it *segIter) finish(err error) bool {
	it.closeFile()
	it.err, it.done = err, true
	it.ev, it.idx = nil, 0
	it.sc.entries = it.sc.entries[:0]
	return false
}

func (it *segIter) close() error {
	if !it.done {
		it.finish(nil)
	}
	return nil
}

// continuity checks that file prev, whose data ended before token end, is followed by next without a gap
// or an overlap.
func continuity(prev SegmentFile, end int64, next SegmentFile) error {
	switch {
	case end < next.First:
		return &SegmentError{File: next.Path, Offset: 0, Token: end, Kind: next.Kind,
			Err: &GapError{Kind: next.Kind, From: end, To: next.First - 1, Before: prev.Name, After: next.Name}}
	case end > next.First:
		return &SegmentError{File: next.Path, Offset: 0, Token: next.First, Kind: next.Kind,
			Err: fmt.Errorf("%w: %s holds %ss %d to %d, but the next file is named %s (a file renamed to the wrong number?)",
				ErrOverlap, prev.Name, next.Kind.unit(), prev.First, end-1, next.Name)}
	}
	return nil
}

// EventIterator yields the events of a segment store in token order, each as the stored protobuf bytes of
// an Event message. Every block is checksum-verified before any of its events is yielded.
//
// Use it like bufio.Scanner: loop on Next, then check Err, then TailCut. It is not safe for concurrent use.
// It holds at most one file open; Close releases it early.
type EventIterator struct{ it *segIter }

// Next advances to the next event. It returns false at the end of the data or on an error; Err tells which.
func (e *EventIterator) Next() bool { return e.it.next() }

// Token returns the current event's token: the number of its file plus its ordinal in the file.
func (e *EventIterator) Token() int64 { return e.it.tok }

// Event returns the current event's bytes: one protobuf Event exactly as stored. The slice is valid until
// the next call to Next or Close and must not be modified; copy it to keep it.
func (e *EventIterator) Event() []byte { return e.it.ev }

// File returns the path of the segment file holding the current event, for messages.
func (e *EventIterator) File() string { return e.it.sc.file.Path }

// Offset returns the byte offset of the current event in its file: the offset of its 4-byte length prefix,
// which is what Axon Server's index files call the event's position.
func (e *EventIterator) Offset() int64 { return e.it.off }

// Block returns the offset of the block (one transaction, or a 32,767-event part of one) holding the current
// event, the event's index in it and the block's event count.
func (e *EventIterator) Block() (offset int64, index, count int) {
	return e.it.sc.blockOff, e.it.idx - 1, len(e.it.sc.entries)
}

// BlockChecksum returns the CRC-32 of the block holding the current event, as stored and verified.
func (e *EventIterator) BlockChecksum() uint32 { return e.it.sc.blockCRC }

// Err returns the error that ended the iteration, or nil at the end of the data or after Close. Damage is a
// *SegmentError (see the Err* sentinels); a token gap between files also matches *GapError; cancellation
// returns the context's error.
func (e *EventIterator) Err() error { return e.it.err }

// TailCut returns, once Next has returned false with a nil Err, a description of the damaged tail of the
// newest file that was left out, or nil if the data ended cleanly. A non-nil TailCut means events from its
// Token on may exist but could not be read: warn the user and record it.
func (e *EventIterator) TailCut() *TailCut { return e.it.cut }

// NextToken returns, once Next has returned false with a nil Err, the token after the last event read: the
// head of the store as far as the files tell. With a TailCut it is the cut's Token.
func (e *EventIterator) NextToken() int64 { return e.it.sc.next }

// End returns, once Next has returned false with a nil Err, how the data of the newest file ended:
// EndActive (0 marker), EndClosed (−1: the server had moved on to a newer file, which is missing from the
// copy), EndNoMarker or EndTailCut (see TailCut).
func (e *EventIterator) End() EndState { return e.it.sc.end }

// Close releases the open file, if any, and ends the iteration. It is idempotent and always returns nil;
// it does not change Err.
func (e *EventIterator) Close() error { return e.it.close() }

// SnapshotIterator yields the snapshots of a segment store in store order, each as the stored protobuf
// bytes of an Event message (whose snapshot flag is usually absent on disk). It works like EventIterator.
type SnapshotIterator struct{ it *segIter }

// Next advances to the next snapshot. It returns false at the end of the data or on an error; Err tells
// which.
func (s *SnapshotIterator) Next() bool { return s.it.next() }

// Position returns the current snapshot's store position: the number of its file plus its ordinal in the
// file. It counts snapshots, not event tokens.
func (s *SnapshotIterator) Position() int64 { return s.it.tok }

// Event returns the current snapshot's bytes; see EventIterator.Event.
func (s *SnapshotIterator) Event() []byte { return s.it.ev }

// File returns the path of the segment file holding the current snapshot.
func (s *SnapshotIterator) File() string { return s.it.sc.file.Path }

// Offset returns the byte offset of the current snapshot's length prefix in its file.
func (s *SnapshotIterator) Offset() int64 { return s.it.off }

// Block returns the offset of the block holding the current snapshot, the snapshot's index in it and the
// block's entry count.
func (s *SnapshotIterator) Block() (offset int64, index, count int) {
	return s.it.sc.blockOff, s.it.idx - 1, len(s.it.sc.entries)
}

// BlockChecksum returns the CRC-32 of the block holding the current snapshot, as stored and verified.
func (s *SnapshotIterator) BlockChecksum() uint32 { return s.it.sc.blockCRC }

// Err returns the error that ended the iteration; see EventIterator.Err.
func (s *SnapshotIterator) Err() error { return s.it.err }

// TailCut describes a damaged tail left out of the newest snapshot file; see EventIterator.TailCut.
func (s *SnapshotIterator) TailCut() *TailCut { return s.it.cut }

// NextPosition returns, once Next has returned false with a nil Err, the position after the last snapshot.
func (s *SnapshotIterator) NextPosition() int64 { return s.it.sc.next }

// End returns how the data of the newest snapshot file ended; see EventIterator.End.
func (s *SnapshotIterator) End() EndState { return s.it.sc.end }

// Close releases the open file, if any, and ends the iteration; see EventIterator.Close.
func (s *SnapshotIterator) Close() error { return s.it.close() }
