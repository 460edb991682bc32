package axonclient_test

import (
	"context"
	"fmt"
	"log"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// The export recipe of AXON.md 2.2: capture the last token, stream from the first one with a permit window
// topped up as events arrive, and stop at the captured token.
func ExampleConn_ListEvents() {
	s, err := axontest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Load("default", eventgen.New(1, eventgen.Options{}).Generate(2500)); err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: s.Addr()})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	first, err := conn.FirstToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	last, err := conn.LastToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	const window = 1000
	stream, err := conn.ListEvents(ctx, first, window)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	var events int
	for token := first; token < last; {
		token, _, err = stream.Recv()
		if err != nil {
			log.Fatal(err)
		}
		events++
		if events%(window/2) == 0 {
			if err := stream.AddPermits(window / 2); err != nil {
				log.Fatal(err)
			}
		}
	}
	fmt.Println(events, "events up to token", last)
	// Output: 2500 events up to token 2499
}

// One AppendEvents call is one transaction; a sequence error rejects all of it.
func ExampleConn_AppendEvents() {
	s, err := axontest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: s.Addr()})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	event := func(seq int64) []byte {
		return eventgen.Encode(&eventgen.Event{AggregateID: "order-1", AggregateType: "Order", AggregateSequence: seq, PayloadType: "Placed"})
	}
	fmt.Println(conn.AppendEvents(ctx, [][]byte{event(0), event(1)}))
	err = conn.AppendEvents(ctx, [][]byte{event(2), event(4)})
	fmt.Println(err)
	last, _ := conn.LastToken(ctx)
	fmt.Println("last token", last)
	// Output:
	// <nil>
	// append events: invalid aggregate sequence: Invalid sequence number 4 for aggregate order-1, expected 3 (AXONIQ-2000)
	// last token 1
}
