package job_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/job"
)

// BenchmarkImport imports an archive of 200,000 generated events (and their snapshots) into a fresh
// context of the test double, which runs in the same process and shares the cores: "full" as
// axarchive import runs by default (verify first, then append the events and the snapshots), "append" without the
// verification, and "compare" is the proof that follows an import. MB/s counts the events' protobuf
// bytes. One op is one whole import (or proof).
//
// Run: go test ./internal/job -run '^$' -bench Import -benchtime 3x
func BenchmarkImport(b *testing.B) {
	const n = 200_000
	srv, size := benchStore(b, "source", n)
	ctx := context.Background()
	dial := func(context string) *axonclient.Conn {
		conn, err := axonclient.Dial(ctx, axonclient.Config{Address: srv.Addr(), Context: context})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		return conn
	}
	dir := filepath.Join(b.TempDir(), "archive")
	if _, err := job.ExportServer(ctx, dial("source"), job.ExportOptions{Dir: dir}); err != nil {
		b.Fatal(err)
	}
	targets := 0
	for _, bc := range []struct {
		name string
		opts job.ImportOptions
	}{{"full", job.ImportOptions{}}, {"append", job.ImportOptions{NoVerify: true}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				targets++
				plan, err := job.Import(ctx, dial(fmt.Sprintf("target-%d", targets)), []string{dir}, bc.opts)
				if err != nil || plan.Events != n {
					b.Fatalf("import: %v (%+v)", err, plan)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	b.Run("compare", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		conn := dial("source")
		for b.Loop() {
			d, err := job.Compare(ctx, conn, []string{dir}, job.CompareOptions{})
			if err != nil || !d.Equal() || d.Events != n {
				b.Fatalf("compare: %v (%+v)", err, d)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
