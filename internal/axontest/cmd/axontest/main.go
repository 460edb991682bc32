// Command axontest runs the in-process Axon Server double as a standalone process, so that people and
// scripts can try export and import without an Axon Server:
//
//	go run ./internal/axontest/cmd/axontest --listen 127.0.0.1:8124 [--access-token T] [--load N]
//
// With --load it fills the context with N generated events (and, with --snapshots, their snapshots). It
// serves until interrupted; the data lives in memory only.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
)

type options struct {
	listen         string
	token          string
	context        string
	load           int
	snapshots      bool
	seed           uint64
	maxMessageSize int
	tlsCert        string
	tlsKey         string
	cpuProfile     string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "axontest: error: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("axontest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8124", "address to listen on")
	fs.StringVar(&o.token, "access-token", "", "require this access token (default: access control off; also $AXONIQ_ACCESS_TOKEN)")
	fs.StringVar(&o.context, "context", "default", "context that --load fills")
	fs.IntVar(&o.load, "load", 0, "number of generated events to load at start")
	fs.BoolVar(&o.snapshots, "snapshots", false, "with --load, also load generated snapshots")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated events")
	fs.IntVar(&o.maxMessageSize, "max-message-size", axontest.DefaultMaxMessageSize, "largest message accepted, in bytes")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TLS with this PEM certificate (needs --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `FILE` (for work on the double's speed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.token == "" {
		o.token = os.Getenv("AXONIQ_ACCESS_TOKEN")
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	opts := []axontest.Option{axontest.WithListenAddress(o.listen), axontest.WithMaxMessageSize(o.maxMessageSize)}
	if o.token != "" {
		opts = append(opts, axontest.WithAccessToken(o.token))
	}
	if o.tlsCert != "" || o.tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		opts = append(opts, axontest.WithTLS(cert))
	}
	s, err := axontest.Start(opts...)
	if err != nil {
		return err
	}
	defer s.Close()

	if o.load > 0 {
		start := time.Now()
		g := eventgen.New(o.seed, eventgen.Options{})
		if err := s.Load(o.context, g.Generate(o.load)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "axontest: loaded %d events into context %q in %s\n", o.load, o.context, time.Since(start).Round(time.Millisecond))
		if o.snapshots {
			snaps := g.Snapshots()
			if err := s.LoadSnapshots(o.context, snaps); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "axontest: loaded %d snapshots\n", len(snaps))
		}
	}
	access := "access control off"
	if o.token != "" {
		access = "access token required"
	}
	fmt.Fprintf(stdout, "axontest: Axon Server double listening on %s (%s); interrupt to stop\n", s.Addr(), access)
	<-ctx.Done()
	return nil
}
