package eventgen_test

import (
	"testing"

	"github.com/axarchive/axarchive/internal/eventgen"
)

// BenchmarkNext measures the cost of one generated event; benchmarks that load a million events pay it
// a million times.
func BenchmarkNext(b *testing.B) {
	g := eventgen.New(1, eventgen.Options{})
	b.ReportAllocs()
	for b.Loop() {
		g.Next()
	}
}
