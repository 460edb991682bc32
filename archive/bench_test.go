package archive

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// benchEvents is the number of events of the benchmark archives: enough for several chunks at a chunk
// size that keeps the benchmark's disk use modest.
const (
	benchEvents     = 200_000
	benchChunkBytes = 16 << 20
)

var benchLines = sync.OnceValues(func() ([][]byte, int64) {
	evs := plainEvents(0, benchEvents)
	lines := make([][]byte, len(evs))
	var n int64
	for i := range evs {
		lines[i] = AppendEventJSON(nil, &evs[i])
		n += int64(len(lines[i]))
	}
	return lines, n
})

func benchOptions() Options {
	opts := testOptions(0, benchEvents-1)
	opts.ChunkBytes = benchChunkBytes
	return opts
}

func writeBenchArchive(b *testing.B, dir string, opts Options) {
	lines, _ := benchLines()
	w, err := Create(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	for i, line := range lines {
		if err := w.WriteEventLine(int64(i), line); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func report(b *testing.B, records, bytes int64) {
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(records)*float64(b.N)/s, "records/s")
	b.ReportMetric(float64(bytes)*float64(b.N)/s/1e6, "MB/s")
}

// BenchmarkWrite measures the writer's WriteEventLine fast path (hashing, compression, commits);
// MB/s counts JSON Lines.
func BenchmarkWrite(b *testing.B) {
	for _, tc := range []struct {
		name  string
		sync  bool
		level int
	}{
		{"nosync", false, 0},
		{"sync", true, 0},
		{"nosync-level1", false, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			_, size := benchLines()
			opts := benchOptions()
			opts.NoSync = !tc.sync
			opts.Level = tc.level
			base := b.TempDir()
			b.ReportAllocs()
			b.ResetTimer()
			var compressed int64
			for i := 0; i < b.N; i++ {
				dir := filepath.Join(base, "a")
				writeBenchArchive(b, dir, opts)
				b.StopTimer()
				if a, err := Open(dir); err == nil {
					compressed = 0
					for _, c := range a.Manifest().Chunks {
						compressed += c.Size
					}
				}
				os.RemoveAll(dir)
				b.StartTimer()
			}
			report(b, benchEvents, size)
			b.ReportMetric(float64(size)/float64(max(compressed, 1)), "ratio")
			b.ReportMetric(float64(size)/benchEvents, "B/record")
		})
	}
}

func benchArchive(b *testing.B) *Archive {
	dir := filepath.Join(b.TempDir(), "a")
	writeBenchArchive(b, dir, benchOptions())
	a, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkRead measures a verified iteration over all events (Line only, and Record).
func BenchmarkRead(b *testing.B) {
	a := benchArchive(b)
	_, size := benchLines()
	for _, parse := range []bool{false, true} {
		name := "lines"
		if parse {
			name = "records"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				it := a.Events(context.Background(), 0)
				n := 0
				for it.Next() {
					if parse {
						if _, err := it.Record(); err != nil {
							b.Fatal(err)
						}
					}
					n++
				}
				if err := it.Err(); err != nil || n != benchEvents {
					b.Fatal(err, n)
				}
				it.Close()
			}
			report(b, benchEvents, size)
		})
	}
}

// BenchmarkVerify measures full and quick verification.
func BenchmarkVerify(b *testing.B) {
	a := benchArchive(b)
	_, size := benchLines()
	for _, quick := range []bool{false, true} {
		name := "full"
		if quick {
			name = "quick"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Verify(context.Background(), VerifyOptions{Quick: quick}); err != nil {
					b.Fatal(err)
				}
			}
			report(b, benchEvents, size)
		})
	}
}
