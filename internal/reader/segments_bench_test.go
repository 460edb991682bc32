package reader

import (
	"bufio"
	"context"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/axarchive/axarchive/internal/segmenttest"
)

// BenchmarkSegments iterates a generated store of one million events (about 190 bytes each, 4 per block) in
// 16 MiB pre-allocated segments, and compares it with the bare cost of reading and CRC-checking the same
// bytes. MB/s counts the segment data (headers, blocks and markers, not the unused pre-allocated space), so
// the two sub-benchmarks' MB/s give the reader's overhead as a ratio. The store is written once, to a
// temporary directory, and read from the page cache.
func BenchmarkSegments(b *testing.B) {
	dir := b.TempDir()
	st, err := segmenttest.WriteStore(dir, segmenttest.StoreOptions{Entries: 1_000_000, PerBlock: 4, SegmentSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("store: %d files, %d events, %d bytes of data, %d bytes of events", len(st.Files), st.Entries, st.DataBytes, st.EventBytes)

	b.Run("events", func(b *testing.B) {
		s, err := OpenSegments(SegmentsOptions{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(st.DataBytes)
		b.ReportAllocs()
		var peak uint64
		var ms runtime.MemStats
		b.ResetTimer()
		for range b.N {
			it := s.Events(context.Background(), 0)
			var n int64
			for it.Next() {
				if len(it.Event()) == 0 {
					b.Fatal("empty event")
				}
				if n++; n%(1<<17) == 0 {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
			}
			if it.Err() != nil || n != st.Entries {
				b.Fatalf("read %d events: %v", n, it.Err())
			}
		}
		b.ReportMetric(float64(st.Entries)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	})

	b.Run("check", func(b *testing.B) {
		b.SetBytes(st.DataBytes)
		b.ReportAllocs()
		for range b.N {
			rep, err := CheckSegments(SegmentsOptions{Dir: dir})
			if err != nil || rep.Verdict != VerdictIntact {
				b.Fatalf("check: %v %v", err, rep)
			}
		}
	})

	// bare is the floor: read the same bytes through the same buffer size and CRC all of them, without
	// parsing anything.
	b.Run("bare", func(b *testing.B) {
		b.SetBytes(st.DataBytes)
		b.ReportAllocs()
		buf := make([]byte, readBufferSize)
		var sum uint32
		for range b.N {
			for i, path := range st.Files {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				r := bufio.NewReaderSize(io.LimitReader(f, st.Used[i]), readBufferSize)
				for {
					n, err := r.Read(buf)
					sum = crc32.Update(sum, crc32.IEEETable, buf[:n])
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				f.Close()
			}
		}
		_ = sum
	})
}
