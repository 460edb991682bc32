package writer

import (
	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
)

// Form is the form a sink takes events in.
type Form int

const (
	// Lines are canonical JSON lines (archive.AppendEventJSON): what an archive holds.
	Lines Form = iota
	// Protobuf is the protobuf Event as Axon Server stores it (codec.Encode).
	Protobuf
)

// Sink is where a job (internal/job) puts records: events in token order, then snapshots (a ServerSink
// also takes snapshots while its events are still being sent: see its WriteSnapshot). The job's
// pipeline converts each event into the sink's Form on its workers. Creating, resuming and suspending a
// sink are its own: they differ from sink to sink.
type Sink interface {
	Form() Form
	// WriteEvent writes the next event, of token, in the sink's form; txEnd ends a transaction of the
	// source. The bytes are valid only during the call.
	WriteEvent(token int64, event []byte, txEnd bool) error
	// FinishEvents ends the events: snapshots follow.
	FinishEvents() error
	// WriteSnapshot writes the next snapshot.
	WriteSnapshot(r *archive.Record) error
	// Close completes the output. Until it returns nil the output is incomplete, and resumable.
	Close() error
}

// ArchiveSink is an archive directory as a Sink: archive.Writer, which writes the chunks, journal and
// manifest, taking canonical lines.
type ArchiveSink struct {
	*archive.Writer
	tx bool // the archive records its source's transactions
}

// NewArchiveSink returns w as a Sink.
func NewArchiveSink(w *archive.Writer) *ArchiveSink {
	return &ArchiveSink{Writer: w, tx: w.Options().Transactions}
}

func (s *ArchiveSink) Form() Form { return Lines }

func (s *ArchiveSink) WriteEvent(token int64, line []byte, txEnd bool) error {
	if err := s.WriteEventLine(token, line); err != nil {
		return err
	}
	if s.tx && txEnd {
		return s.EndTransaction()
	}
	return nil
}

// SegmentSink is a SegmentStore as a Sink, taking protobuf.
type SegmentSink struct {
	*SegmentStore
	buf []byte
}

// NewSegmentSink returns s as a Sink.
func NewSegmentSink(s *SegmentStore) *SegmentSink { return &SegmentSink{SegmentStore: s} }

func (s *SegmentSink) Form() Form { return Protobuf }

// WriteEvent writes the event: a store numbers its events itself, so token must be NextToken.
func (s *SegmentSink) WriteEvent(_ int64, event []byte, txEnd bool) error {
	return s.SegmentStore.WriteEvent(event, txEnd)
}

func (s *SegmentSink) WriteSnapshot(r *archive.Record) error {
	s.buf = codec.Encode(s.buf[:0], r)
	return s.SegmentStore.WriteSnapshot(s.buf)
}

var (
	_ Sink = (*ArchiveSink)(nil)
	_ Sink = (*SegmentSink)(nil)
)
