package segmenttest

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// StoreOptions describes a generated store for WriteStore. The zero value writes nothing; set Entries.
type StoreOptions struct {
	// Suffix is Events (the default) or Snapshots.
	Suffix string
	// First is the number of the first file (a store whose older segments were removed starts above 0).
	First int64
	// Entries is the number of events (snapshots) to write.
	Entries int64
	// PerBlock is the number of events per block (transaction); 0 means 1.
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

// WriteStore writes a store of many segment files into dir, which must exist. The newest file ends with a 0
// marker, like an active segment; all others with -1.
func WriteStore(dir string, opts StoreOptions) (*StoreStats, error) {
	suffix := opts.Suffix
	if suffix == "" {
		suffix = Events
	}
	perBlock := max(opts.PerBlock, 1)
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

	st := &StoreStats{}
	var (
		f     *os.File
		w     *bufio.Writer
		off   int64 // bytes written to the current file
		block []byte
		evbuf []byte
		evs   [][]byte
		lens  []int
	)
	closeFile := func(marker int32) error {
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(marker)))
		off += 4
		st.DataBytes += off
		st.Used = append(st.Used, off)
		if err := w.Flush(); err != nil {
			return err
		}
		if off < segSize {
			if err := f.Truncate(segSize); err != nil {
				return err
			}
		}
		return f.Close()
	}
	openFile := func(first int64) error {
		path := filepath.Join(dir, Name(first, suffix))
		var err error
		if f, err = os.Create(path); err != nil {
			return err
		}
		if w == nil {
			w = bufio.NewWriterSize(f, 1<<20)
		} else {
			w.Reset(f)
		}
		w.Write([]byte{2, 0, 0, 0, 0})
		off = 5
		st.Files = append(st.Files, path)
		return nil
	}

	token := opts.First
	end := opts.First + opts.Entries
	for token < end {
		n := min(int64(perBlock), end-token)
		evbuf, evs, lens = evbuf[:0], evs[:0], lens[:0]
		for i := int64(0); i < n; i++ {
			start := len(evbuf)
			evbuf = event(evbuf, token+i)
			lens = append(lens, len(evbuf)-start)
			st.EventBytes += int64(len(evbuf) - start)
		}
		pos := 0
		for _, l := range lens {
			evs = append(evs, evbuf[pos:pos+l:pos+l])
			pos += l
		}
		block, _ = AppendBlock(block[:0], 2, evs)
		if f != nil && off+int64(len(block))+4 > segSize && off > 5 {
			if err := closeFile(-1); err != nil {
				return nil, err
			}
			f = nil
		}
		if f == nil {
			if err := openFile(token); err != nil {
				return nil, err
			}
		}
		w.Write(block)
		off += int64(len(block))
		token += n
	}
	if f == nil {
		if err := openFile(token); err != nil {
			return nil, err
		}
	}
	if err := closeFile(0); err != nil {
		return nil, err
	}
	st.Entries = opts.Entries
	return st, nil
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
