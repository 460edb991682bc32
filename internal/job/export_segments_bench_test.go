package job_test

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/axarchive/axarchive/internal/job"
	"github.com/axarchive/axarchive/internal/reader"
	"github.com/axarchive/axarchive/internal/segmenttest"
)

// BenchmarkSegmentsExport turns a generated store of many segment files into an archive (issue 4), and in
// the same iteration reads the same files bare (open, read the used bytes, CRC-32 them, nothing parsed),
// so that the ratio of the two times is measured on one machine state:
//
//   - MB/s counts the segment data (headers, blocks, markers; not the unused pre-allocated space);
//   - export/bare is the export's time over the bare read's time;
//   - peak-heap-MiB is the largest Go heap in use seen during the exports, sampled every few milliseconds:
//     it must not grow with the number of segments (compare -benchtime runs with more files via
//     AXARCHIVE_BENCH_EVENTS).
//
// Run: go test ./internal/job -run '^$' -bench SegmentsExport -benchtime 3x
func BenchmarkSegmentsExport(b *testing.B) {
	events := int64(300_000)
	if s := os.Getenv("AXARCHIVE_BENCH_EVENTS"); s != "" {
		if _, err := fmt.Sscan(s, &events); err != nil {
			b.Fatal(err)
		}
	}
	src := filepath.Join(b.TempDir(), "default")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	// 2 MiB segments: many files (Axon Server's default is 256 MiB, mostly zeros).
	st, err := segmenttest.WriteStore(src, segmenttest.StoreOptions{Entries: events, PerBlock: 1, SegmentSize: 2 << 20, PayloadSize: 200})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("store: %d files, %d events, %.1f MiB of data", len(st.Files), st.Entries, float64(st.DataBytes)/(1<<20))

	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sample := func() {
		defer wg.Done()
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}

	b.SetBytes(st.DataBytes)
	b.ReportAllocs()
	var exportTime, bareTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		start := time.Now()
		bareRead(b, st)
		bareTime += time.Since(start)
		dir := filepath.Join(b.TempDir(), "a")
		runtime.GC()
		wg.Add(1)
		go sample()
		b.StartTimer()

		start = time.Now()
		res, err := job.ExportSegments(context.Background(), reader.SegmentsOptions{Dir: src}, job.ExportOptions{Dir: dir})
		exportTime += time.Since(start)

		b.StopTimer()
		stop <- struct{}{}
		wg.Wait()
		if err != nil || res.Events != st.Entries {
			b.Fatalf("export %d: %v (%v events)", i, err, res)
		}
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(exportTime.Seconds()/bareTime.Seconds(), "export/bare")
	b.ReportMetric(float64(st.Entries)*float64(b.N)/exportTime.Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// bareRead is the floor: the same files, the same bytes, a CRC over all of them.
func bareRead(b *testing.B, st *segmenttest.StoreStats) {
	buf := make([]byte, 1<<20)
	var sum uint32
	for i, path := range st.Files {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReaderSize(io.LimitReader(f, st.Used[i]), 1<<20)
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
	_ = sum
}
