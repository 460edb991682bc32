// Command axarchive exports an Axon Server event store to a vendor-neutral archive, verifies and reads
// archives, and imports them back. See README.md and SPEC.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	limitMemory(os.Getenv("GOMEMLIMIT"))
	stopProfiles := startProfiles()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp(os.Stdout, os.Stderr)
	err := app.RunContext(ctx, interspersed(app, os.Args))
	stop()
	if err != nil {
		printError(os.Stderr, err)
	}
	stopProfiles()
	os.Exit(exitCode(err)) // the only os.Exit of the program
}

// defaultMemoryLimit is the soft limit of the Go heap unless GOMEMLIMIT says otherwise. The pipelines
// hold a bounded working set (about 50 MiB at most, while an import and its check both run); without a
// limit the collector lets the heap grow to twice that before it collects. With it, peak RSS stays
// near 110 MiB, at the cost of a few more collections.
const defaultMemoryLimit = 100 << 20

// limitMemory sets defaultMemoryLimit when the user has not set GOMEMLIMIT (the runtime reads that on its
// own) and returns the limit in force.
func limitMemory(env string) int64 {
	if env != "" {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	return defaultMemoryLimit
}
