package reader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SegmentKind says which store a segment file belongs to. Its value is also its JSON form.
type SegmentKind string

// The two kinds of segment files.
const (
	// EventSegments are *.events files; the number in their name is the token of their first event.
	EventSegments SegmentKind = "events"
	// SnapshotSegments are *.snapshots files; the number in their name counts the snapshot store's own
	// entries and has nothing to do with event tokens.
	SnapshotSegments SegmentKind = "snapshots"
)

func (k SegmentKind) suffix() string { return "." + string(k) }

// unit is the word for an entry's number in messages.
func (k SegmentKind) unit() string {
	if k == SnapshotSegments {
		return "position"
	}
	return "token"
}

// DefaultMaxBlockSize is the largest block the reader buffers unless SegmentsOptions says otherwise. A block
// is one transaction (or a 32,767-event part of one) and must sit in memory whole, because its events are
// only handed out after its checksum has been verified. Axon Server's default segment size is the same.
const DefaultMaxBlockSize = 256 << 20

// readBufferSize is the bufio buffer per open file: large enough that small blocks cost no system calls,
// small enough to keep memory flat however many segments there are.
const readBufferSize = 1 << 20

// SegmentsOptions says where the segment files are. The zero value is not usable: set Dir, or EventsDir
// and/or SnapshotsDir.
type SegmentsOptions struct {
	// Dir is a context directory (data/<context>/ or a copy of one) holding *.events and *.snapshots
	// files side by side, as Axon Server SE keeps them.
	Dir string
	// EventsDir and SnapshotsDir, where set, override Dir for that kind: for installations that keep
	// the two stores apart. With Dir empty, only the kinds whose directory is set are read.
	EventsDir    string
	SnapshotsDir string
	// MaxBlockSize caps the size of one block; 0 means DefaultMaxBlockSize. Larger blocks fail with
	// ErrTooLarge. Raise it only for stores known to hold transactions that large.
	MaxBlockSize int64
}

func (o SegmentsOptions) dirs() (events, snapshots string, err error) {
	events, snapshots = o.Dir, o.Dir
	if o.EventsDir != "" {
		events = o.EventsDir
	}
	if o.SnapshotsDir != "" {
		snapshots = o.SnapshotsDir
	}
	if events == "" && snapshots == "" {
		return "", "", errors.New("open segments: no directory given")
	}
	return events, snapshots, nil
}

func (o SegmentsOptions) maxBlock() int64 {
	if o.MaxBlockSize > 0 {
		return o.MaxBlockSize
	}
	return DefaultMaxBlockSize
}

// SegmentFile is one segment file found by OpenSegments.
type SegmentFile struct {
	// Path is the file's path: the directory given in SegmentsOptions joined with Name.
	Path string `json:"path"`
	// Name is the base name, e.g. 00000000000000000462.events.
	Name string `json:"name"`
	// Kind is events or snapshots.
	Kind SegmentKind `json:"kind"`
	// First is the number in the name: the token (store position) of the file's first entry.
	First int64 `json:"first"`
	// Size is the file size in bytes when it was listed. Files are pre-allocated, so this is usually
	// far more than the data they hold.
	Size int64 `json:"size"`
}

// Segments is a set of segment files opened for reading: the *.events and *.snapshots files of one context.
// It holds no open files; each iterator opens and closes the files it reads, so any number of iterators may
// run at the same time, from any goroutines. The files are opened read-only and never changed.
type Segments struct {
	eventsDir, snapshotsDir string
	events, snapshots       []SegmentFile
	notes                   []string
	maxBlock                int64
}

// OpenSegments lists the segment files described by opts and sorts them by number. It reads no file
// contents: damage is found while iterating, or all at once by CheckSegments.
//
// Files named with exactly 20 decimal digits and the suffix .events or .snapshots are segments. Index, bloom
// and temporary files are ignored. A data file named with 14 digits (Axon Server's old naming, renamed to 20
// digits when the server starts) is read as the segment of that number and noted. Any other entry with a data
// suffix (another name, a number out of range, not a regular file, a symbolic link out of the directory or
// to no regular file) fails with ErrNotSegment: it may hold data the user expects. See Notes.
//
// It fails with ErrNoSegments when no segment file is found, and with ErrOverlap when two files name the
// same segment.
func OpenSegments(opts SegmentsOptions) (*Segments, error) {
	evDir, snDir, err := opts.dirs()
	if err != nil {
		return nil, err
	}
	s := &Segments{eventsDir: evDir, snapshotsDir: snDir, maxBlock: opts.maxBlock()}
	if evDir != "" {
		if s.events, err = s.list(evDir, EventSegments); err != nil {
			return nil, err
		}
	}
	if snDir != "" {
		if s.snapshots, err = s.list(snDir, SnapshotSegments); err != nil {
			return nil, err
		}
	}
	switch {
	case opts.EventsDir != "" && len(s.events) == 0:
		return nil, fmt.Errorf("open segments %s: %w (*.events)%s", evDir, ErrNoSegments, subdirHint(evDir))
	case opts.SnapshotsDir != "" && len(s.snapshots) == 0:
		return nil, fmt.Errorf("open segments %s: %w (*.snapshots)%s", snDir, ErrNoSegments, subdirHint(snDir))
	case len(s.events) == 0 && len(s.snapshots) == 0:
		return nil, fmt.Errorf("open segments %s: %w (*.events or *.snapshots)%s", opts.Dir, ErrNoSegments, subdirHint(opts.Dir))
	}
	for _, files := range [][]SegmentFile{s.events, s.snapshots} {
		if len(files) > 0 && files[0].First != 0 {
			f := files[0]
			s.notes = append(s.notes, fmt.Sprintf("%s: the oldest %s file starts at %s %d, not 0: older segments were removed (retention) or not copied",
				f.Path, f.Kind, f.Kind.unit(), f.First))
		}
	}
	return s, nil
}

// list finds the segment files of one kind in dir, sorted by number.
func (s *Segments) list(dir string, kind SegmentKind) ([]SegmentFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open segments: %w", err)
	}
	var files []SegmentFile
	for _, e := range entries {
		name := e.Name()
		stem, ok := strings.CutSuffix(name, kind.suffix())
		if !ok {
			continue // index, bloom, temp, control DB and anything else that is not data
		}
		path := filepath.Join(dir, name)
		// An entry named like a data file that cannot be read as one makes the copy unusable: skipping
		// it would call a copy intact that may lack the data the user expects in it.
		notSegment := func(format string, args ...any) error {
			return &SegmentError{File: path, Token: -1, Kind: kind, Err: fmt.Errorf("%w: "+format, append([]any{ErrNotSegment}, args...)...)}
		}
		n, legacy, ok := parseSegmentNumber(stem)
		if !ok {
			return nil, notSegment("the name is not a segment number (20 decimal digits, at most %d, then %s)", int64(math.MaxInt64/2), kind.suffix())
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return nil, fmt.Errorf("open segments: %w", err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			// A linked copy counts as the file, if it is one and stays inside the directory.
			target, err := filepath.EvalSymlinks(path)
			if err != nil {
				return nil, notSegment("a symbolic link that does not resolve: %v", err)
			}
			realDir, err := filepath.EvalSymlinks(dir)
			if err != nil {
				return nil, fmt.Errorf("open segments: %w", err)
			}
			if rel, err := filepath.Rel(realDir, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return nil, notSegment("a symbolic link to %s, outside the directory", target)
			}
			if fi, err = os.Stat(target); err != nil {
				return nil, fmt.Errorf("open segments: %w", err)
			}
			if !fi.Mode().IsRegular() {
				return nil, notSegment("a symbolic link to %s, which is not a regular file", target)
			}
		}
		if !fi.Mode().IsRegular() {
			return nil, notSegment("not a regular file (%s)", fileType(fi.Mode()))
		}
		if legacy {
			s.notes = append(s.notes, fmt.Sprintf("%s: read as segment %d: 14-digit name of old Axon Server versions, which rename it to 20 digits on startup", path, n))
		}
		files = append(files, SegmentFile{Path: path, Name: name, Kind: kind, First: n, Size: fi.Size()})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].First < files[j].First })
	for i := 1; i < len(files); i++ {
		if files[i].First == files[i-1].First {
			return nil, &SegmentError{File: files[i].Path, Token: files[i].First, Kind: kind,
				Err: fmt.Errorf("%w: %s and %s are both segment %d", ErrOverlap, files[i-1].Name, files[i].Name, files[i].First)}
		}
	}
	return files, nil
}

func fileType(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// parseSegmentNumber accepts the 20-digit names Axon Server writes, and the 14-digit names of old versions.
// The number must leave room for a file's worth of tokens after it without overflowing int64.
func parseSegmentNumber(stem string) (n int64, legacy, ok bool) {
	if len(stem) != 20 && len(stem) != 14 {
		return 0, false, false
	}
	for _, c := range []byte(stem) {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	n, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || n > math.MaxInt64/2 {
		return 0, false, false
	}
	return n, len(stem) == 14, true
}

// subdirHint helps a user who pointed at data/ instead of data/<context>/.
func subdirHint(dir string) string {
	if dir == "" {
		return ""
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var found []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, f := range sub {
			if strings.HasSuffix(f.Name(), ".events") || strings.HasSuffix(f.Name(), ".snapshots") {
				found = append(found, filepath.Join(dir, e.Name()))
				break
			}
		}
	}
	if len(found) == 0 {
		return ""
	}
	return "; context directories below it: " + strings.Join(found, ", ")
}

// EventFiles returns the *.events files in token order. The slice is a copy.
func (s *Segments) EventFiles() []SegmentFile { return append([]SegmentFile(nil), s.events...) }

// SnapshotFiles returns the *.snapshots files in store order. The slice is a copy.
func (s *Segments) SnapshotFiles() []SegmentFile { return append([]SegmentFile(nil), s.snapshots...) }

// Notes returns what OpenSegments found odd but not fatal, one sentence per entry, for the caller to show:
// skipped files, 14-digit names, a store that does not start at 0.
func (s *Segments) Notes() []string { return append([]string(nil), s.notes...) }

// EventsDir returns the directory searched for *.events files, or "" if none was.
func (s *Segments) EventsDir() string { return s.eventsDir }

// SnapshotsDir returns the directory searched for *.snapshots files, or "" if none was.
func (s *Segments) SnapshotsDir() string { return s.snapshotsDir }

// Events returns an iterator over the events from fromToken on, in token order, each with its token. Files
// whose tokens all lie before fromToken are not opened; in the file holding fromToken, the blocks before it
// are still read and checksum-verified (that is how their events are counted), only not delivered. A
// fromToken before the oldest file starts at that file (see Notes); one past the end yields nothing.
//
// The iterator must be closed if it is abandoned before Next returns false.
func (s *Segments) Events(ctx context.Context, fromToken int64) *EventIterator {
	return &EventIterator{it: newSegIter(ctx, s.events, fromToken, s.maxBlock)}
}

// Snapshots returns an iterator over every snapshot, in store order, each with its store position. It must be
// closed if it is abandoned before Next returns false.
func (s *Segments) Snapshots(ctx context.Context) *SnapshotIterator {
	return &SnapshotIterator{it: newSegIter(ctx, s.snapshots, 0, s.maxBlock)}
}
