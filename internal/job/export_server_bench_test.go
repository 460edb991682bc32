package job_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/job"
)

// benchStore starts a test double whose context holds n generated events (seed 1) and their
// snapshots, and returns it with the events' protobuf bytes.
func benchStore(b *testing.B, context string, n int) (*axontest.Server, int64) {
	s := axontest.NewServer(b)
	g := eventgen.New(1, eventgen.Options{})
	events := g.Generate(n)
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	if err := s.Load(context, events); err != nil {
		b.Fatal(err)
	}
	if err := s.LoadSnapshots(context, g.Snapshots()); err != nil {
		b.Fatal(err)
	}
	return s, size
}

// BenchmarkLiveExport exports a store of 200,000 generated events (and their snapshots) from the test
// double, which runs in the same process and shares the cores, as it does in go run ./internal/bench.
// MB/s counts the events' protobuf bytes. One op is one whole export.
//
// Run: go test ./internal/job -run '^$' -bench LiveExport -benchtime 3x
func BenchmarkLiveExport(b *testing.B) {
	const n = 200_000
	s, size := benchStore(b, "default", n)
	ctx := context.Background()
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: s.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(b.TempDir(), "a")
		res, err := job.ExportServer(ctx, conn, job.ExportOptions{Dir: dir})
		if err != nil || res.Events != n {
			b.Fatalf("export: %v (%+v)", err, res)
		}
		os.RemoveAll(dir)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
