package s3store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkThroughput moves the same 64 MiB file up to and down from versitygw on loopback through a
// Store with its default part size and parallelism, and into and out of a local file the way a
// directory archive does (temporary file, fsync, rename; read back), and reports both rates and their
// ratio (s3/local: above 1 means the store is the faster). The local read is mostly from the page cache.
// Figures only: no time is asserted.
func BenchmarkThroughput(b *testing.B) {
	for _, o := range []Options{
		{PartSize: DefaultPartSize, Concurrency: DefaultConcurrency},
		{PartSize: MinPartSize, Concurrency: DefaultConcurrency},
		{PartSize: MinPartSize, Concurrency: 8},
	} {
		b.Run(fmt.Sprintf("part=%dMiB,parallel=%d", o.PartSize>>20, o.Concurrency), func(b *testing.B) { benchThroughput(b, &o) })
	}
}

func benchThroughput(b *testing.B, opts *Options) {
	const size = 64 << 20
	e := newEnv(b, false, opts)
	data := randomBytes(3, size)
	dir := b.TempDir()
	buf := make([]byte, 1<<20)
	var s3Up, s3Down, localUp, localDown time.Duration
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		f, err := e.store.Create("data/events/bench")
		require.NoError(b, err)
		for off := 0; off < size; off += len(buf) {
			_, err := f.Write(data[off : off+len(buf)])
			require.NoError(b, err)
		}
		require.NoError(b, f.Commit())
		s3Up += time.Since(start)

		start = time.Now()
		r, err := e.store.Open("data/events/bench")
		require.NoError(b, err)
		n, err := io.CopyBuffer(io.Discard, r, buf)
		require.NoError(b, err)
		require.EqualValues(b, size, n)
		r.Close()
		s3Down += time.Since(start)

		start = time.Now()
		tmp, err := os.CreateTemp(dir, ".bench-*")
		require.NoError(b, err)
		for off := 0; off < size; off += len(buf) {
			_, err := tmp.Write(data[off : off+len(buf)])
			require.NoError(b, err)
		}
		require.NoError(b, tmp.Sync())
		require.NoError(b, tmp.Close())
		require.NoError(b, os.Rename(tmp.Name(), filepath.Join(dir, "bench")))
		localUp += time.Since(start)

		start = time.Now()
		lf, err := os.Open(filepath.Join(dir, "bench"))
		require.NoError(b, err)
		n, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{lf}, buf)
		require.NoError(b, err)
		require.EqualValues(b, size, n)
		lf.Close()
		localDown += time.Since(start)
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * size / (1 << 20) / d.Seconds() }
	b.ReportMetric(mbps(s3Up), "s3-up-MiB/s")
	b.ReportMetric(mbps(localUp), "local-write-MiB/s")
	b.ReportMetric(localUp.Seconds()/s3Up.Seconds(), "up-ratio")
	b.ReportMetric(mbps(s3Down), "s3-down-MiB/s")
	b.ReportMetric(mbps(localDown), "local-read-MiB/s")
	b.ReportMetric(localDown.Seconds()/s3Down.Seconds(), "down-ratio")
}
