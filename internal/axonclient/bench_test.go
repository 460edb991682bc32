package axonclient_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// BenchmarkListEvents reads a loaded store through ListEvents: as raw frames (what export does), as raw
// frames each then decoded into the generated struct, and through the generated client, which decodes
// every EventWithToken. One op is one full read of the store.
func BenchmarkListEvents(b *testing.B) {
	const n = 200_000
	const window = 10_000
	s := axontest.NewServer(b)
	events := eventgen.New(1, eventgen.Options{}).Generate(n)
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	if err := s.Load("default", events); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: s.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	readRaw := func(b *testing.B, decode bool) {
		st, err := conn.ListEvents(ctx, 0, window)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		var ev axonpb.Event
		for i := range n {
			token, raw, err := st.Recv()
			if err != nil || token != int64(i) {
				b.Fatal(token, err)
			}
			if decode {
				if err := proto.Unmarshal(raw, &ev); err != nil {
					b.Fatal(err)
				}
			}
			if i%(window/2) == window/2-1 {
				if err := st.AddPermits(window / 2); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	report := func(b *testing.B) {
		b.SetBytes(size)
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			readRaw(b, false)
		}
		report(b)
	})
	b.Run("raw+decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			readRaw(b, true)
		}
		report(b)
	})
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		cc, err := grpc.NewClient("passthrough:///"+s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		c := axonpb.NewEventStoreClient(cc)
		for b.Loop() {
			sctx, cancel := context.WithCancel(ctx)
			st, err := c.ListEvents(sctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Send(&axonpb.GetEventsRequest{NumberOfPermits: window}); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				m, err := st.Recv()
				if err != nil || m.Token != int64(i) {
					b.Fatal(err)
				}
				if i%(window/2) == window/2-1 {
					if err := st.Send(&axonpb.GetEventsRequest{NumberOfPermits: window / 2}); err != nil {
						b.Fatal(err)
					}
				}
			}
			cancel()
		}
		report(b)
	})
}

// BenchmarkAppendEvents imports generated events in transactions of 1000, waiting for each confirmation as
// an import must (AXON.md 5.2). One op is one transaction.
func BenchmarkAppendEvents(b *testing.B) {
	const txn = 1000
	s := axontest.NewServer(b)
	ctx := context.Background()
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: s.Addr()})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// Non-domain events only: generated domain events must be appended in order, once.
	events := eventgen.New(1, eventgen.Options{NonDomainPercent: 100}).Generate(txn)
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := conn.AppendEvents(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(txn)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
