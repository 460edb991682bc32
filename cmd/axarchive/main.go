// Command axarchive exports an Axon Server event store to a vendor-neutral archive, verifies and reads
// archives, and imports them back. See README.md and SPEC.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
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
