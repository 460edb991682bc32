package main

import (
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// scriptToken is the access token of every script's test double: the scripts prove they send it.
const scriptToken = "s3cret-t0ken"

type serverKey struct{}

// setupServer starts an Axon Server test double for a script, on loopback, and exports $AXON_ADDR and
// $AXON_TOKEN.
func setupServer(env *testscript.Env) error {
	srv, err := axontest.Start(axontest.WithAccessToken(scriptToken))
	if err != nil {
		return err
	}
	env.Values[serverKey{}] = srv
	env.Defer(srv.Close)
	env.Setenv("AXON_ADDR", srv.Addr())
	env.Setenv("AXON_TOKEN", scriptToken)
	return nil
}

// cmdAxon drives the script's test double:
//
//	axon load CTX N [SEED]        load N generated events and their snapshots
//	axon append CTX N [SEED]      append N more generated events of a fresh generator
//	axon count CTX N              require the context to hold N events
//	axon snapshots CTX N          require the context to hold N snapshots
//	axon alter CTX TOKEN          change the timestamp of the event at TOKEN behind the API's back
//	axon fail METHOD N            fail the Nth call of METHOD with UNAVAILABLE
//	axon drop N                   drop the next ListEvents stream after N events
//	axon delay DURATION           delay every response (every event of a stream) by DURATION
func cmdAxon(ts *testscript.TestScript, neg bool, args []string) {
	srv, _ := ts.Value(serverKey{}).(*axontest.Server)
	if srv == nil {
		ts.Fatalf("no test double")
	}
	if neg || len(args) < 2 {
		ts.Fatalf("usage: axon load|append|count|snapshots|alter|fail|drop ...")
	}
	num := func(i int) int64 {
		if i >= len(args) {
			ts.Fatalf("axon %s: missing argument", args[0])
		}
		n, err := strconv.ParseInt(args[i], 10, 64)
		ts.Check(err)
		return n
	}
	seed := func(i int) uint64 {
		if i < len(args) {
			return uint64(num(i))
		}
		return 1
	}
	switch args[0] {
	case "load":
		gen := eventgen.New(seed(3), eventgen.Options{Aggregates: 50})
		ts.Check(srv.Load(args[1], gen.Generate(int(num(2)))))
		ts.Check(srv.LoadSnapshots(args[1], gen.Snapshots()))
	case "append":
		gen := eventgen.New(seed(3), eventgen.Options{NonDomainPercent: 100})
		ts.Check(srv.Load(args[1], gen.Generate(int(num(2)))))
	case "count":
		if got := int64(srv.EventCount(args[1])); got != num(2) {
			ts.Fatalf("context %s holds %d events, want %d", args[1], got, num(2))
		}
	case "snapshots":
		if got := int64(srv.SnapshotCount(args[1])); got != num(2) {
			ts.Fatalf("context %s holds %d snapshots, want %d", args[1], got, num(2))
		}
	case "alter":
		token := num(2)
		events := srv.Events(args[1])
		if token < 0 || token >= int64(len(events)) {
			ts.Fatalf("no event at token %d", token)
		}
		var r archive.Record
		ts.Check(codec.Decode(events[token].Raw, &r))
		r.Timestamp++
		ts.Check(srv.ReplaceEvent(args[1], token, codec.Encode(nil, &r)))
	case "fail":
		srv.FailNthCall(args[1], int(num(2)))
	case "delay":
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		srv.SetDelay(d)
	case "drop":
		srv.DropListEventsAfter(int(num(1)))
	default:
		ts.Fatalf("axon: unknown subcommand %q", args[0])
	}
}

// cmdSleep pauses the script: sleep DURATION.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}
