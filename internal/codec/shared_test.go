package codec_test

import (
	"bytes"
	"testing"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// TestShared checks that a Shared decoder, reused from event to event, gives the records Decode gives.
func TestShared(t *testing.T) {
	var dec codec.Shared
	var shared, copied archive.Record
	for i, raw := range eventgen.New(7, eventgen.Options{}).Generate(3000) {
		if err := dec.Decode(raw, &shared); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if err := codec.Decode(raw, &copied); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		a, b := archive.AppendEventJSON(nil, &shared), archive.AppendEventJSON(nil, &copied)
		if !bytes.Equal(a, b) {
			t.Fatalf("event %d:\nshared %s\ncopied %s", i, a, b)
		}
		if got := codec.Encode(nil, &shared); !bytes.Equal(got, raw) {
			t.Fatalf("event %d: shared record encodes to other bytes", i)
		}
	}
}

// BenchmarkEventToLine is the export's per-event conversion: protobuf bytes to the canonical JSON line,
// through a reused Shared decoder (what export does) or through Decode, which copies every string. MB/s
// counts protobuf bytes.
func BenchmarkEventToLine(b *testing.B) {
	events := eventgen.New(1, eventgen.Options{}).Generate(10_000)
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	var dec codec.Shared
	for _, bc := range []struct {
		name   string
		decode func([]byte, *archive.Record) error
	}{{"shared", dec.Decode}, {"copy", codec.Decode}} {
		b.Run(bc.name, func(b *testing.B) {
			var rec archive.Record
			var line []byte
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				for _, raw := range events {
					if err := bc.decode(raw, &rec); err != nil {
						b.Fatal(err)
					}
					line = archive.AppendEventJSON(line[:0], &rec)
				}
			}
			b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
