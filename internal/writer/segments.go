package writer

import (
	"bufio"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/axarchive/axarchive/internal/crashpoint"
	"github.com/axarchive/axarchive/internal/smallfile"
)

// Segment files as Axon Server writes them (AXON.md section 3): a 5-byte header (version 2, flags 0),
// blocks of one transaction each (size, transaction version 2, event count, length-prefixed events,
// CRC-32 of the entries), a -1 marker where a file was closed because the next block did not fit, a 0
// after the last block of the newest file, zeros up to the segment size.
const (
	segmentHeaderSize = 5
	blockOverhead     = 7 + 4 // size, version and count before the entries; the checksum after them
	segmentMarkerSize = 4

	// DefaultSegmentSize is Axon Server's own (axoniq.axonserver.event.segment-size and
	// snapshot.segment-size).
	DefaultSegmentSize = 256 << 20
	// MaxBlockEvents is the most events one block holds: its count is an int16.
	MaxBlockEvents = 32767

	// SegmentJournal is the file in a directory being written that makes it resumable, and marks it as
	// not yet a store: while it exists every segment file has a temporary name.
	SegmentJournal = "axarchive-segments.json"
	// segmentPartSuffix is appended to a segment file's name until the store is complete. Axon Server
	// only loads names ending in .events or .snapshots, so it never sees a half-written store.
	segmentPartSuffix = ".part"

	segmentJournalFormat = "axarchive-segments-journal"

	// checkpointBytes is how much data is written between two checkpoints of the journal: the most a
	// resumed run writes again.
	checkpointBytes = 64 << 20
)

// SegmentBytes estimates the bytes a store of blocks blocks holding data bytes of entries takes, in
// files of segmentSize: blocks one per event at most; files what the data fills, plus the last one.
func SegmentBytes(data, blocks, segmentSize int64) int64 {
	n := data + blocks*blockOverhead + 2*(segmentHeaderSize+segmentMarkerSize)
	return n + (n/segmentSize+2)*(segmentHeaderSize+segmentMarkerSize)
}

// ErrMismatch is returned for a target that does not hold what the archive says it should: another
// store's, or changed since.
var ErrMismatch = errors.New("target does not match the archive")

// Suffixes of segment files.
const (
	EventsSuffix    = ".events"
	SnapshotsSuffix = ".snapshots"
)

// ErrSegmentDir is returned for a directory that cannot take a new store: not empty, not a directory.
var ErrSegmentDir = errors.New("unusable segment directory")

// SegmentStoreOptions configure a SegmentStore.
type SegmentStoreOptions struct {
	// SegmentSize is the size every file is allocated to (sparsely) and where a file is closed and the
	// next one started; 0 means DefaultSegmentSize. A block too large for an empty file gets a file of its
	// own, of its size.
	SegmentSize int64
	// Source identifies what is written (the caller's choice, e.g. the archives' fingerprints): Resume
	// refuses a directory started for another source.
	Source string
	// NoSync skips fsync: only for tests and benchmarks.
	NoSync bool
	// Check, if set, is called by Close once every file has its final name, before the journal is
	// removed: an error leaves the journal, which marks the directory as no store to start a server on,
	// and a resumed run calls Check again before it removes it.
	Check func() error
}

// SegmentStore writes the event and snapshot segment files of one context into a directory: events in
// token order from 0, grouped into transactions, then snapshots. Files carry temporary names and a
// journal records what is durable, until Close gives them their final names and removes the journal;
// an interrupted run is continued with ResumeSegmentStore. Not safe for concurrent use; errors are sticky.
type SegmentStore struct {
	dir  string
	opts SegmentStoreOptions
	j    segmentJournal
	err  error

	events, snapshots segmentStream
	closed            bool
}

type segmentJournal struct {
	Format      string             `json:"format"`
	Version     int                `json:"version"`
	Source      string             `json:"source"`
	SegmentSize int64              `json:"segmentSize"`
	Events      segmentStreamState `json:"events"`
	Snapshots   segmentStreamState `json:"snapshots"`
	EventsDone  bool               `json:"eventsDone"`
	// Final lists, once every file is complete and durable, the names the files are being renamed to:
	// a resumed run only finishes the renaming.
	Final []string `json:"final,omitempty"`
}

// segmentStreamState is what is durable of one kind of files.
type segmentStreamState struct {
	// Closed lists the first entry of every file closed with a -1 marker, in order.
	Closed []int64 `json:"closed"`
	// Current is the first entry of the file being written, -1 if none; Offset its durable length (the
	// end of its last durable block) and Next the number of the entry after that block.
	Current int64 `json:"current"`
	Offset  int64 `json:"offset"`
	Next    int64 `json:"next"`
	// Blocks counts the durable blocks and Digest is the state of a SHA-256 over their CRC-32 checksums
	// in order (encoding.BinaryMarshaler): what the files read back must show once the store is
	// complete (see Written). A journal of an axarchive that did not keep them has neither.
	Blocks int64  `json:"blocks,omitempty"`
	Digest []byte `json:"digest,omitempty"`
}

// BlockDigest is what a SegmentStore wrote of one kind of files: Entries events (snapshots), Blocks
// blocks, and Sum, the SHA-256 over the blocks' CRC-32 checksums (big-endian) in order. Known is false
// when the store was resumed from a journal that did not keep Blocks and Sum.
type BlockDigest struct {
	Entries, Blocks int64
	Sum             []byte
	Known           bool
}

// segmentStream writes the files of one kind.
type segmentStream struct {
	s      *SegmentStore
	suffix string
	state  *segmentStreamState

	f       *os.File
	w       *bufio.Writer
	first   int64 // first entry of the open file
	off     int64 // bytes written to the open file
	next    int64 // number of the next entry
	pending int64 // bytes written since the last checkpoint

	block   []byte // the open block: header placeholder then entries
	count   int
	scratch [4]byte

	digest hash.Hash // over the CRC-32 of every block written, nil when unknown (see Blocks)
	blocks int64
}

// CreateSegmentStore starts a new store in dir, which must be absent or empty; it is created with its
// parents. It writes the journal first, so that a directory that cannot be written fails before any
// data.
func CreateSegmentStore(dir string, opts SegmentStoreOptions) (*SegmentStore, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentSize < segmentHeaderSize+blockOverhead+segmentMarkerSize+1 {
		return nil, fmt.Errorf("segment size %d bytes is too small for a file header, a block and an end marker", opts.SegmentSize)
	}
	if err := CheckSegmentDir(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create segment directory: %w", err)
	}
	s := &SegmentStore{dir: dir, opts: opts, j: segmentJournal{
		Format: segmentJournalFormat, Version: 1, Source: opts.Source, SegmentSize: opts.SegmentSize,
		Events: segmentStreamState{Current: -1}, Snapshots: segmentStreamState{Current: -1},
	}}
	if err := s.init(); err != nil {
		return nil, err
	}
	if err := s.writeJournal(); err != nil {
		return nil, err
	}
	if !opts.NoSync {
		if err := syncDirectory(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CheckSegmentDir refuses a directory that is not absent or empty (ErrSegmentDir), naming what is in it.
func CheckSegmentDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("segment directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrSegmentDir, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("segment directory: %w", err)
	}
	// What a run killed while writing its first journal leaves: nothing else was written yet.
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return e.Name() == SegmentJournal+".tmp" && e.Type().IsRegular() })
	if len(entries) > 0 {
		if slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() == SegmentJournal }) {
			return fmt.Errorf("%w: %s holds an interrupted import (%s): continue it with --resume, or empty the directory", ErrSegmentDir, dir, SegmentJournal)
		}
		return fmt.Errorf("%w: %s is not empty (it holds %s%s): segment files go into an empty or new directory, never beside other data",
			ErrSegmentDir, dir, entries[0].Name(), moreEntries(len(entries)))
	}
	return nil
}

func moreEntries(n int) string {
	if n > 1 {
		return fmt.Sprintf(" and %d more", n-1)
	}
	return ""
}

// ResumeSegmentStore reopens a store an interrupted run left in dir: every file is cut back to its
// durable length and writing continues from NextToken (or, once the events are done, NextSnapshot).
// opts must name the same Source and segment size.
func ResumeSegmentStore(dir string, opts SegmentStoreOptions) (*SegmentStore, error) {
	b, err := readJournalFile(filepath.Join(dir, SegmentJournal))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s: nothing to resume (start without --resume into an empty directory)", ErrSegmentDir, dir, SegmentJournal)
		}
		return nil, fmt.Errorf("resume segment store: %w", err)
	}
	var j segmentJournal
	if err := json.Unmarshal(b, &j); err != nil || j.Format != segmentJournalFormat || j.Version != 1 {
		return nil, fmt.Errorf("%w: %s is not a journal this axarchive wrote", ErrSegmentDir, filepath.Join(dir, SegmentJournal))
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if j.Source != opts.Source {
		return nil, fmt.Errorf("%w: %s holds an interrupted import of %s, not of %s", ErrMismatch, dir, j.Source, opts.Source)
	}
	if j.SegmentSize != opts.SegmentSize {
		return nil, fmt.Errorf("%w: %s was started with segment size %d, not %d", ErrMismatch, dir, j.SegmentSize, opts.SegmentSize)
	}
	if err := j.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSegmentDir, filepath.Join(dir, SegmentJournal), err)
	}
	s := &SegmentStore{dir: dir, opts: opts, j: j}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSegmentDir, filepath.Join(dir, SegmentJournal), err)
	}
	if len(j.Final) > 0 {
		return s, nil // Close renames what is left
	}
	for _, st := range []*segmentStream{&s.events, &s.snapshots} {
		if err := st.reopen(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// maxSegmentJournalBytes bounds the journal read: it lists the files written (some 25 bytes each), a
// few hundred bytes besides.
const maxSegmentJournalBytes = 16 << 20

func readJournalFile(path string) ([]byte, error) {
	b, err := smallfile.Read(path, maxSegmentJournalBytes)
	if errors.As(err, new(*smallfile.TooLargeError)) {
		err = fmt.Errorf("%w: %s is larger than %d bytes: not a journal this axarchive wrote", ErrSegmentDir, path, maxSegmentJournalBytes)
	}
	return b, err
}

// check makes sure a journal read from disk describes files this package could have written, so that
// the names built from it are safe.
func (j *segmentJournal) check() error {
	if j.SegmentSize <= 0 {
		return fmt.Errorf("segment size %d", j.SegmentSize)
	}
	for _, name := range j.Final {
		// Names go into paths: only what SegmentName makes.
		stem, suffix, _ := strings.Cut(name, ".")
		if len(stem) != 20 || strings.Trim(stem, "0123456789") != "" || ("."+suffix != EventsSuffix && "."+suffix != SnapshotsSuffix) {
			return fmt.Errorf("final name %q is not a segment file name", name)
		}
	}
	for _, st := range []segmentStreamState{j.Events, j.Snapshots} {
		prev := int64(-1)
		for _, c := range st.Closed {
			if c <= prev {
				return fmt.Errorf("closed files out of order")
			}
			prev = c
		}
		if st.Current < -1 || (st.Current >= 0 && st.Current < prev) || st.Next < max(st.Current, 0) ||
			(st.Current >= 0 && st.Offset < segmentHeaderSize) {
			return fmt.Errorf("inconsistent state")
		}
	}
	return nil
}

func (s *SegmentStore) init() error {
	s.events = segmentStream{s: s, suffix: EventsSuffix, state: &s.j.Events, next: s.j.Events.Next, first: -1}
	s.snapshots = segmentStream{s: s, suffix: SnapshotsSuffix, state: &s.j.Snapshots, next: s.j.Snapshots.Next, first: -1}
	for _, st := range []*segmentStream{&s.events, &s.snapshots} {
		state := st.state
		st.blocks = state.Blocks
		switch {
		case len(state.Digest) > 0:
			st.digest = sha256.New()
			if err := st.digest.(encoding.BinaryUnmarshaler).UnmarshalBinary(state.Digest); err != nil {
				return fmt.Errorf("%s digest: %v", strings.TrimPrefix(st.suffix, "."), err)
			}
		case state.Blocks == 0 && len(state.Closed) == 0 && state.Current < 0:
			st.digest = sha256.New() // nothing written yet
		}
	}
	return nil
}

// Written returns what the store wrote, of events and of snapshots.
func (s *SegmentStore) Written() (events, snapshots BlockDigest) {
	return s.events.written(), s.snapshots.written()
}

func (st *segmentStream) written() BlockDigest {
	d := BlockDigest{Entries: st.next, Blocks: st.blocks, Known: st.digest != nil}
	if d.Known {
		d.Sum = st.digest.Sum(nil)
	}
	return d
}

// record sets the journal's state of the stream to what it wrote: called where what it wrote is durable.
func (st *segmentStream) record(current, offset int64) {
	st.state.Current, st.state.Offset, st.state.Next = current, offset, st.next
	st.state.Blocks, st.state.Digest = st.blocks, nil
	if st.digest != nil {
		st.state.Digest, _ = st.digest.(encoding.BinaryMarshaler).MarshalBinary() // never fails for sha256
	}
}

// Dir returns the directory written.
func (s *SegmentStore) Dir() string { return s.dir }

// NextToken returns the token of the next event to write; after Resume, where the interrupted run's
// durable data ends.
func (s *SegmentStore) NextToken() int64 { return s.events.next + int64(s.events.count) }

// DurableToken returns the token after the last durable event: where a run resumed now would continue.
func (s *SegmentStore) DurableToken() int64 { return s.j.Events.Next }

// NextSnapshot returns the store position of the next snapshot to write.
func (s *SegmentStore) NextSnapshot() int64 { return s.snapshots.next }

// EventsDone reports whether FinishEvents was journaled.
func (s *SegmentStore) EventsDone() bool { return s.j.EventsDone }

// Renaming says that every file is complete and durable and only their renaming is left: Close finishes it.
func (s *SegmentStore) Renaming() bool { return len(s.j.Final) > 0 }

func (s *SegmentStore) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// WriteEvent adds the next event (one protobuf Event, as Axon Server stores it) to the open
// transaction; txEnd ends the transaction, which becomes one block. A transaction of more than
// MaxBlockEvents events becomes several blocks, as Axon Server writes it.
func (s *SegmentStore) WriteEvent(event []byte, txEnd bool) error {
	if s.err != nil {
		return s.err
	}
	if s.j.EventsDone {
		return s.fail(fmt.Errorf("write event: the events are finished"))
	}
	return s.events.add(event, txEnd)
}

// FinishEvents writes the open transaction, if any, and journals that the events are complete.
func (s *SegmentStore) FinishEvents() error {
	if s.err != nil || s.j.EventsDone {
		return s.err
	}
	if err := s.events.flushBlock(); err != nil {
		return err
	}
	s.j.EventsDone = true
	return s.checkpoint()
}

// WriteSnapshot adds the next snapshot, after FinishEvents, as a block of its own (as Axon Server writes
// snapshots).
func (s *SegmentStore) WriteSnapshot(event []byte) error {
	if s.err != nil {
		return s.err
	}
	if !s.j.EventsDone {
		return s.fail(fmt.Errorf("write snapshot: FinishEvents first"))
	}
	return s.snapshots.add(event, true)
}

// Close completes the store: end markers, fsync, every file renamed to its final name, the journal
// removed. Only when it returns nil is the directory a store Axon Server may load. On error the directory
// stays resumable.
func (s *SegmentStore) Close() error {
	if s.closed {
		return s.err
	}
	if len(s.j.Final) == 0 {
		if err := s.FinishEvents(); err != nil {
			s.Suspend()
			return err
		}
		var final []string
		for _, st := range []*segmentStream{&s.events, &s.snapshots} {
			names, err := st.complete()
			if err != nil {
				s.Suspend()
				return s.fail(err)
			}
			final = append(final, names...)
		}
		s.j.Final = final
		if err := s.writeJournal(); err != nil {
			s.Suspend()
			return err
		}
	}
	crashpoint.Hit("segments-complete") // faulttest: every file durable under its temporary name
	for _, name := range s.j.Final {
		err := os.Rename(filepath.Join(s.dir, name+segmentPartSuffix), filepath.Join(s.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join(s.dir, name)); serr == nil {
				continue // renamed by the interrupted run
			}
		}
		if err != nil {
			s.Suspend()
			return s.fail(fmt.Errorf("commit segment file: %w", err))
		}
	}
	if err := s.syncDir(); err != nil {
		s.Suspend()
		return s.fail(err)
	}
	if s.opts.Check != nil {
		if err := s.opts.Check(); err != nil {
			s.Suspend()
			return s.fail(err)
		}
	}
	if err := os.Remove(filepath.Join(s.dir, SegmentJournal)); err != nil {
		s.Suspend()
		return s.fail(fmt.Errorf("remove %s: %w", SegmentJournal, err))
	}
	s.closed = true
	return s.syncDir()
}

// Suspend stops writing and leaves the directory resumable from the last checkpoint.
func (s *SegmentStore) Suspend() {
	s.closed = true
	for _, st := range []*segmentStream{&s.events, &s.snapshots} {
		if st.f != nil {
			st.f.Close()
			st.f = nil
		}
	}
}

func (s *SegmentStore) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	return syncDirectory(s.dir)
}

// checkpoint makes what was written durable and journals it.
func (s *SegmentStore) checkpoint() error {
	for _, st := range []*segmentStream{&s.events, &s.snapshots} {
		if err := st.sync(); err != nil {
			return s.fail(err)
		}
	}
	crashpoint.Hit("segments-synced") // faulttest: data durable, the journal not yet updated
	return s.writeJournal()
}

func (s *SegmentStore) writeJournal() error {
	b, err := json.MarshalIndent(&s.j, "", "  ")
	if err != nil {
		return s.fail(err)
	}
	path := filepath.Join(s.dir, SegmentJournal)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return s.fail(fmt.Errorf("write %s: %w", SegmentJournal, err))
	}
	if !s.opts.NoSync {
		if err := syncFile(tmp); err != nil {
			return s.fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return s.fail(fmt.Errorf("write %s: %w", SegmentJournal, err))
	}
	if err := s.syncDir(); err != nil {
		return s.fail(err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// SegmentName returns the name Axon Server gives the file whose first entry is first.
func SegmentName(first int64, suffix string) string { return fmt.Sprintf("%020d%s", first, suffix) }

func (st *segmentStream) name(first int64) string { return SegmentName(first, st.suffix) }

func (st *segmentStream) path(first int64) string {
	return filepath.Join(st.s.dir, st.name(first)+segmentPartSuffix)
}

// add appends an entry to the open block, and writes the block when the transaction ends or the block
// is full.
func (st *segmentStream) add(entry []byte, end bool) error {
	if len(st.block) == 0 {
		st.block = append(st.block[:0], make([]byte, 7)...)
	}
	st.block = binary.BigEndian.AppendUint32(st.block, uint32(len(entry)))
	st.block = append(st.block, entry...)
	st.count++
	if end || st.count == MaxBlockEvents {
		return st.flushBlock()
	}
	return nil
}

// flushBlock writes the open block into the open file, or into a new one when it does not fit with
// room for the end marker (the rule by which Axon Server closes a segment).
func (st *segmentStream) flushBlock() error {
	if st.count == 0 {
		return nil
	}
	b := st.block
	size := len(b) - 7
	binary.BigEndian.PutUint32(b[0:], uint32(size))
	b[4] = 2 // transaction version
	binary.BigEndian.PutUint16(b[5:], uint16(st.count))
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[7:]))
	n := int64(len(b))
	if st.f != nil && st.off+n+segmentMarkerSize > st.s.j.SegmentSize && st.off > segmentHeaderSize {
		if err := st.closeFile(); err != nil {
			return err
		}
	}
	if st.f == nil {
		if err := st.openFile(st.next); err != nil {
			return err
		}
	}
	if _, err := st.w.Write(b); err != nil {
		return st.s.fail(st.writeErr(err))
	}
	if st.digest != nil {
		st.digest.Write(b[len(b)-4:]) // the block's CRC-32
	}
	st.blocks++
	st.off += n
	st.next += int64(st.count)
	st.pending += n
	st.block, st.count = st.block[:0], 0
	if st.pending >= checkpointBytes {
		return st.s.checkpoint()
	}
	return nil
}

func (st *segmentStream) writeErr(err error) error {
	return fmt.Errorf("write segment %s: %w", st.path(st.first), err)
}

// openFile starts a file whose first entry is first.
func (st *segmentStream) openFile(first int64) error {
	f, err := os.OpenFile(st.path(first), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return st.s.fail(fmt.Errorf("create segment: %w", err))
	}
	st.f, st.first = f, first
	if st.w == nil {
		st.w = bufio.NewWriterSize(f, 1<<20)
	} else {
		st.w.Reset(f)
	}
	if _, err := st.w.Write([]byte{2, 0, 0, 0, 0}); err != nil {
		return st.s.fail(st.writeErr(err))
	}
	st.off = segmentHeaderSize
	return nil
}

// closeFile ends the open file with a -1 marker (the next block goes to a new file), makes it durable
// and journals it.
func (st *segmentStream) closeFile() error {
	if err := st.finishFile(-1); err != nil {
		return err
	}
	st.state.Closed = append(st.state.Closed, st.first)
	st.record(-1, 0)
	st.f, st.pending = nil, 0
	return st.s.checkpoint()
}

// finishFile writes the marker, allocates the file to the segment size and syncs it.
func (st *segmentStream) finishFile(marker int32) error {
	binary.BigEndian.PutUint32(st.scratch[:], uint32(marker))
	if _, err := st.w.Write(st.scratch[:]); err != nil {
		return st.s.fail(st.writeErr(err))
	}
	if err := st.w.Flush(); err != nil {
		return st.s.fail(st.writeErr(err))
	}
	// Pre-allocated as Axon Server's own files are; sparsely, so the zeros cost no disk.
	if size := max(st.s.j.SegmentSize, st.off+segmentMarkerSize); size > st.off+segmentMarkerSize {
		if err := st.f.Truncate(size); err != nil {
			return st.s.fail(st.writeErr(err))
		}
	}
	if !st.s.opts.NoSync {
		if err := st.f.Sync(); err != nil {
			return st.s.fail(st.writeErr(err))
		}
	}
	if err := st.f.Close(); err != nil {
		return st.s.fail(st.writeErr(err))
	}
	return nil
}

// sync makes the open file durable up to its last block and records that in the journal's state.
func (st *segmentStream) sync() error {
	if st.f == nil {
		st.record(st.state.Current, st.state.Offset)
		return nil
	}
	if err := st.w.Flush(); err != nil {
		return st.writeErr(err)
	}
	if !st.s.opts.NoSync {
		if err := st.f.Sync(); err != nil {
			return st.writeErr(err)
		}
	}
	st.record(st.first, st.off)
	st.pending = 0
	return nil
}

// reopen continues the file being written when the run was interrupted: it is cut back to its durable
// length. Files the journal does not know (a file opened after the last checkpoint) are removed.
func (st *segmentStream) reopen() error {
	known := map[string]bool{}
	for _, c := range st.state.Closed {
		known[st.name(c)+segmentPartSuffix] = true
		if _, err := os.Stat(st.path(c)); err != nil {
			return fmt.Errorf("%w: %s: %v (the directory changed since the interrupted run)", ErrSegmentDir, st.path(c), err)
		}
	}
	if st.state.Current >= 0 {
		known[st.name(st.state.Current)+segmentPartSuffix] = true
	}
	entries, err := os.ReadDir(st.s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, st.suffix+segmentPartSuffix) && !known[n] && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(st.s.dir, n)); err != nil {
				return err
			}
		}
	}
	if st.state.Current < 0 {
		return nil
	}
	f, err := os.OpenFile(st.path(st.state.Current), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%w: %v (the directory changed since the interrupted run)", ErrSegmentDir, err)
	}
	// Truncate would lengthen a file shorter than the journal says is durable, with zeros where the
	// journal counts blocks: Axon Server would read them as the end of the data.
	if fi, err := f.Stat(); err != nil || fi.Size() < st.state.Offset {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%w: %s holds %d bytes, the journal says %d are durable (the directory changed since the interrupted run)", ErrSegmentDir, st.path(st.state.Current), fi.Size(), st.state.Offset)
		}
		return err
	}
	if err := f.Truncate(st.state.Offset); err != nil {
		f.Close()
		return fmt.Errorf("resume segment %s: %w", st.path(st.state.Current), err)
	}
	if _, err := f.Seek(st.state.Offset, 0); err != nil {
		f.Close()
		return fmt.Errorf("resume segment %s: %w", st.path(st.state.Current), err)
	}
	st.f, st.first, st.off = f, st.state.Current, st.state.Offset
	st.w = bufio.NewWriterSize(f, 1<<20)
	return nil
}

// complete ends the last file with a 0 marker, the end of the data of an active segment (the server
// appends to it after a start), and returns the final names of all files. A kind with no entry has
// no file.
func (st *segmentStream) complete() ([]string, error) {
	var names []string
	for _, c := range st.state.Closed {
		names = append(names, st.name(c))
	}
	if st.f != nil {
		if err := st.finishFile(0); err != nil {
			return nil, err
		}
		names = append(names, st.name(st.first))
		st.record(st.first, st.off)
		st.f = nil
	}
	return names, nil
}
