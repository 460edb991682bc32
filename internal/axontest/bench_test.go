package axontest_test

import (
	"testing"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// BenchmarkLoad measures Load of a million generated events into a fresh server (generation excluded).
func BenchmarkLoad(b *testing.B) {
	const n = 1_000_000
	events := eventgen.New(1, eventgen.Options{Aggregates: 100_000}).Generate(n)
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	b.SetBytes(size)
	for b.Loop() {
		s, err := axontest.Start()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Load("default", events); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
