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
	tuneMemory(os.Getenv("GOMEMLIMIT"), os.Getenv("GOGC"))
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

// defaultMemoryLimit is the soft limit of the Go heap unless GOMEMLIMIT says otherwise, and
// defaultGCPercent the collector's GOGC unless GOGC does. The pipelines hold a bounded working set (about
// 50 MiB at most, while an import and its check both run). The collector then runs when the heap has
// tripled, or reaches the limit, whichever comes first: fewer collections (an export is 4% faster than at
// GOGC=100), with peak RSS still near 110 MiB.
const (
	defaultMemoryLimit = 100 << 20
	defaultGCPercent   = 200
)

// tuneMemory applies the defaults the user has not overridden (the runtime reads GOMEMLIMIT and GOGC on
// its own) and returns the limit and the percentage in force.
func tuneMemory(memLimitEnv, gogcEnv string) (limit int64, percent int) {
	if memLimitEnv == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	limit = debug.SetMemoryLimit(-1)
	if gogcEnv == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return limit, percent
}
