package segmenttest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/internal/writer"
)

// StoreOptions describes a generated store for WriteStore. The zero value writes nothing; set Entries.
type StoreOptions struct {
	// Suffix is Events (the default) or Snapshots.
	Suffix string
	// Entries is the number of events (snapshots) to write.
	Entries int64
	// PerBlock is the number of events per block (transaction); 0 means 1. Snapshots are one per block,
	// as Axon Server writes them.
	PerBlock int
	// SegmentSize is the pre-allocated size of each file; 0 means 16 MiB. Files roll over as Axon
	// Server's do: when the next block and a marker do not fit, the file gets a -1 marker and the next
	// file is named after the next token. A block too big for an empty file gets a file of its own size.
	SegmentSize int64
	// Event appends the bytes of the event with the given token to dst. Nil means SampleEvent with
	// PayloadSize bytes of payload data.
	Event func(dst []byte, token int64) []byte
	// PayloadSize is the payload data size of the default events; 0 means 100.
	PayloadSize int
}

// StoreStats says what WriteStore wrote.
type StoreStats struct {
	// Files are the paths written, in order.
	Files []string
	// Used is, per file, the bytes holding data (header, blocks, end marker); the rest is pre-allocated
	// zeros.
	Used []int64
	// Entries is the number of events written.
	Entries int64
	// DataBytes counts the bytes a reader consumes: headers, blocks and end markers, not the unused
	// pre-allocated space.
	DataBytes int64
	// EventBytes counts the bytes of the events themselves.
	EventBytes int64
}

// WriteStore writes a store of many segment files of one kind into dir, which must exist and may hold
// the other kind's files: with the segment-file writer of axarchive (internal/writer), so that the
// stores the reader is tested and measured on are the ones the import writes. The newest file ends with
// a 0 marker, like an active segment; all others with -1.
func WriteStore(dir string, opts StoreOptions) (*StoreStats, error) {
	suffix := opts.Suffix
	if suffix == "" {
		suffix = Events
	}
	perBlock := int64(max(opts.PerBlock, 1))
	segSize := opts.SegmentSize
	if segSize <= 0 {
		segSize = 16 << 20
	}
	event := opts.Event
	if event == nil {
		payload := opts.PayloadSize
		if payload <= 0 {
			payload = 100
		}
		event = func(dst []byte, token int64) []byte { return SampleEvent(dst, token, payload) }
	}
	// The writer takes an empty directory: write there, then move the files beside the other kind's.
	tmp, err := os.MkdirTemp(dir, ".segmenttest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	store, err := writer.CreateSegmentStore(filepath.Join(tmp, "store"), writer.SegmentStoreOptions{SegmentSize: segSize, NoSync: true})
	if err != nil {
		return nil, err
	}
	st := &StoreStats{Entries: opts.Entries}
	if suffix == Snapshots {
		if err := store.FinishEvents(); err != nil {
			return nil, err
		}
	}
	var buf []byte
	for i := int64(0); i < opts.Entries; i++ {
		buf = event(buf[:0], i)
		st.EventBytes += int64(len(buf))
		if suffix == Snapshots {
			err = store.WriteSnapshot(buf)
		} else {
			err = store.WriteEvent(buf, (i+1)%perBlock == 0)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := store.Close(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(tmp, "store"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Rename(filepath.Join(tmp, "store", e.Name()), path); err != nil {
			return nil, err
		}
		used, err := usedLength(path)
		if err != nil {
			return nil, err
		}
		st.Files = append(st.Files, path)
		st.Used = append(st.Used, used)
		st.DataBytes += used
	}
	if len(st.Files) == 0 {
		// An empty store is one active file: header and marker.
		path := filepath.Join(dir, Name(0, suffix))
		if err := os.WriteFile(path, []byte{2, 0, 0, 0, 0, 0, 0, 0, 0}, 0o644); err != nil {
			return nil, err
		}
		if err := os.Truncate(path, segSize); err != nil {
			return nil, err
		}
		st.Files, st.Used, st.DataBytes = []string{path}, []int64{9}, 9
	}
	return st, nil
}

// usedLength returns the bytes of a segment file that hold data: header, blocks and end marker.
func usedLength(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [4]byte
	off := int64(5)
	for {
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0, fmt.Errorf("%s at %d: %w", path, off, err)
		}
		size := int32(binary.BigEndian.Uint32(b[:]))
		if size == 0 || size == -1 {
			return off + 4, nil
		}
		off += 7 + int64(size) + 4
	}
}

// SampleEvent appends a plausible protobuf Event for token to dst: message id, aggregate id (one of 1000,
// with contiguous sequence numbers), aggregate type, timestamp, and a payload with payloadSize bytes of JSON-
// like data. Field numbers are Axon Server's (AXON.md 1.3).
func SampleEvent(dst []byte, token int64, payloadSize int) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = appendStringNum(dst, "evt-", token)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = appendStringNum(dst, "Aggregate-", token%1000)
	if seq := token / 1000; seq != 0 {
		dst = protowire.AppendTag(dst, 3, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(seq))
	}
	dst = protowire.AppendTag(dst, 4, protowire.BytesType)
	dst = protowire.AppendString(dst, "BenchAggregate")
	dst = protowire.AppendTag(dst, 5, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(1_700_000_000_000+token))

	const typ = "com.example.SomethingHappened"
	dst = protowire.AppendTag(dst, 6, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(1+protowire.SizeBytes(len(typ))+1+protowire.SizeBytes(payloadSize)))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, typ)
	dst = protowire.AppendTag(dst, 3, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(payloadSize))
	for i := 0; i < payloadSize; i++ {
		dst = append(dst, 'a'+byte((token+int64(i))%26))
	}
	return dst
}

func appendStringNum(dst []byte, prefix string, n int64) []byte {
	var b [32]byte
	s := strconv.AppendInt(append(b[:0], prefix...), n, 10)
	return protowire.AppendBytes(dst, s)
}
