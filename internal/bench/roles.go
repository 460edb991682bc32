package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/reader"
)

// The baselines run as subprocesses of this same program, like axarchive does, so that both sides of a
// comparison pay for a process of their own and the OS reports the peak RSS of each. roleEnv selects a
// baseline instead of the harness; the role prints one JSON roleResult on stdout.
const roleEnv = "AXARCHIVE_BENCH_ROLE"

// roleResult is what a baseline measured itself: the time of its main loop, without its set-up (the
// appender generates its events before it starts the clock).
type roleResult struct {
	Events  int64 `json:"events"`
	Bytes   int64 `json:"bytes"`
	Elapsed int64 `json:"elapsedNanos"`
}

// runRole runs the baseline named by roleEnv, if any, and reports whether it did.
func runRole() bool {
	role := os.Getenv(roleEnv)
	switch role {
	case "":
		return false
	case "launcher":
		serveLauncher()
		return true
	case "noop":
		_ = json.NewEncoder(os.Stdout).Encode(roleResult{})
		return true
	}
	fs := flag.NewFlagSet(role, flag.ExitOnError)
	addr := fs.String("server", "", "test double address")
	ctxName := fs.String("context", "default", "context")
	events := fs.Int("events", 0, "number of events")
	seed := fs.Uint64("seed", 1, "generator seed")
	maxTxBytes := fs.Int64("max-tx-bytes", 0, "transaction size bound in bytes")
	maxTxEvents := fs.Int("max-tx-events", 0, "transaction size bound in events")
	dir := fs.String("dir", "", "segment directory")
	snapshots := fs.Bool("snapshots", false, "append: also append the store's snapshots, after the events")
	_ = fs.Parse(os.Args[1:])
	var res roleResult
	var err error
	switch role {
	case "list":
		res, err = plainList(*addr, *ctxName, int64(*events))
	case "append":
		res, err = plainAppend(*addr, *ctxName, *events, *seed, *maxTxBytes, *maxTxEvents, *snapshots)
	case "segread":
		res, err = segmentPass(*dir)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return true
}

func dialPlain(addr, ctxName string) (*grpc.ClientConn, context.Context, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, nil, err
	}
	return cc, metadata.AppendToOutgoingContext(context.Background(), "axoniq-context", ctxName), nil
}

// plainList reads tokens 0..n-1 of ListEvents with the generated client, which decodes every
// EventWithToken into structs, and discards them. Permits are granted as export grants them.
func plainList(addr, ctxName string, n int64) (roleResult, error) {
	const window = 20000
	cc, ctx, err := dialPlain(addr, ctxName)
	if err != nil {
		return roleResult{}, err
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	st, err := axonpb.NewEventStoreClient(cc).ListEvents(ctx)
	if err != nil {
		return roleResult{}, err
	}
	if err := st.Send(&axonpb.GetEventsRequest{TrackingToken: 0, NumberOfPermits: min(window, n), ClientId: "bench", ComponentName: "bench"}); err != nil {
		return roleResult{}, err
	}
	var res roleResult
	var since int64
	for res.Events < n {
		m, err := st.Recv()
		if err != nil {
			return res, err
		}
		if m.Token != res.Events {
			return res, fmt.Errorf("got token %d, want %d", m.Token, res.Events)
		}
		res.Events++
		res.Bytes += int64(proto.Size(m.GetEvent()))
		if since++; since >= window/2 {
			if err := st.Send(&axonpb.GetEventsRequest{NumberOfPermits: since}); err != nil {
				return res, err
			}
			since = 0
		}
	}
	_ = st.CloseSend()
	res.Elapsed = int64(time.Since(start))
	return res, nil
}

// plainAppend appends the events of the store (seed, n) with the generated client, in transactions
// bounded as axarchive import bounds them, one at a time, each awaiting its confirmation. Each
// transaction's events are generated and decoded into generated structs off the clock, just before it is
// sent, so that the baseline holds one transaction at a time and is timed for appending only.
// With snapshots it then appends the store's snapshots, untimed: that is how the real-server benchmark
// fills its source server.
func plainAppend(addr, ctxName string, n int, seed uint64, maxTxBytes int64, maxTxEvents int, snapshots bool) (roleResult, error) {
	cc, ctx, err := dialPlain(addr, ctxName)
	if err != nil {
		return roleResult{}, err
	}
	defer cc.Close()
	client := axonpb.NewEventStoreClient(cc)
	gen := eventgen.New(seed, eventgen.Options{})
	var res roleResult
	var clock time.Duration
	var pending []byte // generated, not yet in a transaction
	var tx []*axonpb.Event
	for res.Events < int64(n) {
		tx = tx[:0]
		var txBytes int64
		for len(tx) < maxTxEvents && res.Events+int64(len(tx)) < int64(n) {
			if pending == nil {
				pending = gen.Next()
			}
			if len(tx) > 0 && txBytes+int64(len(pending)) > maxTxBytes {
				break
			}
			ev := new(axonpb.Event)
			if err := proto.Unmarshal(pending, ev); err != nil {
				return res, err
			}
			tx = append(tx, ev)
			txBytes += int64(len(pending))
			pending = nil
		}
		start := time.Now()
		st, err := client.AppendEvent(ctx)
		if err != nil {
			return res, err
		}
		for _, ev := range tx {
			if err := st.Send(ev); err != nil {
				return res, err
			}
		}
		if _, err := st.CloseAndRecv(); err != nil {
			return res, fmt.Errorf("transaction at event %d: %w", res.Events, err)
		}
		clock += time.Since(start)
		res.Events += int64(len(tx))
		res.Bytes += txBytes
	}
	res.Elapsed = int64(clock)
	if snapshots {
		for i, raw := range gen.Snapshots() {
			snap := new(axonpb.Event)
			if err := proto.Unmarshal(raw, snap); err != nil {
				return res, err
			}
			if _, err := client.AppendSnapshot(ctx, snap); err != nil {
				return res, fmt.Errorf("snapshot %d: %w", i, err)
			}
		}
	}
	return res, nil
}

// segmentPass reads every event of the segment files in dir through the segment reader, which reads the
// files and checks every block's CRC, and discards the events: an offline export without conversion,
// compression or output.
func segmentPass(dir string) (roleResult, error) {
	start := time.Now()
	s, err := reader.OpenSegments(reader.SegmentsOptions{Dir: dir})
	if err != nil {
		return roleResult{}, err
	}
	it := s.Events(context.Background(), 0)
	defer it.Close()
	var res roleResult
	for it.Next() {
		res.Events++
		res.Bytes += int64(len(it.Event()))
	}
	if err := it.Err(); err != nil && !errors.Is(err, io.EOF) {
		return res, err
	}
	res.Elapsed = int64(time.Since(start))
	return res, nil
}
