package axontest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// The conformance tests talk to the double through the generated gRPC client only, never through
// axonclient, so that the double is checked independently of the client layer it is used to test.

// rawMsg is a message carried as its bytes by testCodec.
type rawMsg struct{ b []byte }

// testCodec sends and receives *rawMsg verbatim and everything else as protobuf. It is deliberately
// separate from axonclient.Codec.
type testCodec struct{}

func (testCodec) Name() string { return "proto" }

func (testCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*rawMsg); ok {
		return r.b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (testCodec) Unmarshal(b []byte, v any) error {
	if r, ok := v.(*rawMsg); ok {
		r.b = append([]byte{}, b...)
		return nil
	}
	return proto.Unmarshal(b, v.(proto.Message))
}

var raw = grpc.ForceCodec(testCodec{})

// server is what a conformance row talks to: the double or the real Axon Server.
type server interface{ Addr() string }

// connect returns a generated client for the server and a context carrying the given metadata pairs.
func connect(t *testing.T, s server, md ...string) (axonpb.EventStoreClient, context.Context) {
	t.Helper()
	cc := connectCC(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return axonpb.NewEventStoreClient(cc), ctx
}

// connectCC returns a plaintext client connection to the server.
func connectCC(t *testing.T, s server) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// ev returns a domain event of aggregate id, canonically encoded.
func ev(id string, seq int64) []byte {
	return eventgen.Encode(&eventgen.Event{MessageID: id + "-" + strings.Repeat("x", int(seq%3)), AggregateID: id,
		AggregateSequence: seq, AggregateType: "Order", Timestamp: 1700000000000 + seq,
		PayloadType: "com.example.OrderEvent", PayloadData: []byte("<e/>")})
}

// nonDomain returns a non-domain event (empty aggregate type), possibly with an aggregate id.
func nonDomain(id string, seq int64) []byte {
	return eventgen.Encode(&eventgen.Event{MessageID: "nd", AggregateID: id, AggregateSequence: seq,
		PayloadType: "com.example.Notification", PayloadData: []byte("{}")})
}

// snapshot returns a snapshot of aggregate id at seq.
func snapshot(id string, seq int64) []byte {
	return eventgen.Encode(&eventgen.Event{MessageID: "snap", AggregateID: id, AggregateSequence: seq,
		AggregateType: "Order", Timestamp: 1700000000000, PayloadType: "Order", PayloadData: []byte("<state/>")})
}

// appendTxn sends events as one AppendEvent call and returns the error and trailer.
func appendTxn(ctx context.Context, c axonpb.EventStoreClient, events ...[]byte) (*axonpb.ConfirmationWithConsistencyMarker, metadata.MD, error) {
	stream, err := c.AppendEvent(ctx, raw)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range events {
		if err := stream.SendMsg(&rawMsg{e}); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, nil, err
		}
	}
	resp, err := stream.CloseAndRecv()
	return resp, stream.Trailer(), err
}

// mustAppend appends one transaction and fails the test on error.
func mustAppend(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, events ...[]byte) {
	t.Helper()
	_, _, err := appendTxn(ctx, c, events...)
	require.NoError(t, err)
}

// requireAxonError checks an error as AXON.md 2.9 describes it: status code, description
// "[<code>] <message>" and the AxonIQ-ErrorCode trailer. It returns the message.
func requireAxonError(t *testing.T, err error, trailer metadata.MD, code codes.Code, axonCode string) string {
	t.Helper()
	require.Error(t, err)
	st := status.Convert(err)
	require.Equal(t, code, st.Code(), "status of %v", err)
	require.True(t, strings.HasPrefix(st.Message(), "["+axonCode+"] "), "description %q", st.Message())
	require.Equal(t, []string{axonCode}, trailer.Get("AxonIQ-ErrorCode"))
	return strings.TrimPrefix(st.Message(), "["+axonCode+"] ")
}

// listStream opens ListEvents with a first request.
func listStream(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, from, permits int64) grpc.BidiStreamingClient[axonpb.GetEventsRequest, axonpb.EventWithToken] {
	t.Helper()
	stream, err := c.ListEvents(ctx)
	require.NoError(t, err)
	// io.EOF: the server already ended the call (a refused token, say); its status comes with the next Recv.
	if err := stream.Send(&axonpb.GetEventsRequest{TrackingToken: from, NumberOfPermits: permits}); !errors.Is(err, io.EOF) {
		require.NoError(t, err)
	}
	return stream
}

// receiver reads a ListEvents stream in the background, so that tests can wait with a timeout.
type receiver struct {
	ch chan received
}

type received struct {
	m   *axonpb.EventWithToken
	err error
}

func startRecv(stream grpc.BidiStreamingClient[axonpb.GetEventsRequest, axonpb.EventWithToken]) *receiver {
	r := &receiver{ch: make(chan received, 100000)}
	go func() {
		for {
			m, err := stream.Recv()
			r.ch <- received{m, err}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// tokens receives n events and returns their tokens.
func (r *receiver) tokens(t *testing.T, n int) []int64 {
	t.Helper()
	var out []int64
	for range n {
		select {
		case got := <-r.ch:
			require.NoError(t, got.err)
			out = append(out, got.m.Token)
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d of %d events", len(out), n)
		}
	}
	return out
}

// event receives one event.
func (r *receiver) event(t *testing.T) *axonpb.EventWithToken {
	t.Helper()
	select {
	case got := <-r.ch:
		require.NoError(t, got.err)
		return got.m
	case <-time.After(5 * time.Second):
		t.Fatal("no event received")
	}
	return nil
}

// nothingFor checks that nothing arrives within d.
func (r *receiver) nothingFor(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("stream delivered %v (err %v), expected nothing", got.m, got.err)
	case <-time.After(d):
	}
}

// end waits for the stream to end and returns its error (io.EOF for a clean end).
func (r *receiver) end(t *testing.T, within time.Duration) error {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got := <-r.ch:
			if got.err != nil {
				return got.err
			}
		case <-deadline:
			t.Fatal("stream did not end")
		}
	}
}

func tokens(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
