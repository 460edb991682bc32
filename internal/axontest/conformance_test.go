package axontest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// First, so that it finds the shared real server still empty (see onBoth).
//
// Both, on an empty store: the empty-store answers, tokens assigned from 0 (the token 0 omitted from the
// frame), GetTokenAt before, at, between and past the events (timestamps are client-supplied and not
// monotonic), ReadHighestSequenceNr counting only domain events.
func TestFreshStore(t *testing.T) {
	onBoth(t, setup{fresh: true}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		first, err := c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
		require.NoError(t, err)
		at, err := c.GetTokenAt(ctx, &axonpb.GetTokenAtRequest{Instant: 1700000000000})
		require.NoError(t, err)
		tg.note("empty: first %d last %d at %d highest %d", first.Token, head(t, ctx, c), at.Token, highest(t, ctx, c, "a"))

		stamp := func(ts int64) []byte { return eventgen.Encode(&eventgen.Event{PayloadType: "t", Timestamp: ts}) }
		mustAppend(t, ctx, c, stamp(1000), stamp(2000), stamp(1500), stamp(3000), ev("a", 0), ev("a", 1), nonDomain("a", 9))
		frames := readRaw(t, ctx, c, 0, 2)
		assert.Equal(t, protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), stamp(1000)), frames[0], "token 0 is omitted")
		first, err = c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
		require.NoError(t, err)
		r, err := c.ReadHighestSequenceNr(ctx, &axonpb.ReadHighestSequenceNrRequest{AggregateId: "a", FromSequenceNr: 5})
		require.NoError(t, err)
		tg.note("filled: first %d last %d highest %d", first.Token, head(t, ctx, c), r.ToSequenceNr)
		for _, instant := range []int64{500, 1000, 1200, 1700, 2500, 1700000000000, 1800000000000, math.MaxInt64 / 2} {
			at, err := c.GetTokenAt(ctx, &axonpb.GetTokenAtRequest{Instant: instant})
			require.NoError(t, err)
			tg.note("token at %d: %d", instant, at.Token)
		}
	})
}

// ---- AXON.md 2.1: connection, headers, context, auth ----

// Double-only: EE's separate contexts (the real server here is SE, which has one; TestSingleContext).
// The context comes from AxonIQ-Context (legacy Context), "default" when absent; ContextAdminService lists
// the contexts.
func TestContextHeader(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	mustAppend(t, metadata.AppendToOutgoingContext(ctx, "AxonIQ-Context", "orders"), c, ev("a", 0), ev("a", 1))
	mustAppend(t, metadata.AppendToOutgoingContext(ctx, "Context", "legacy"), c, ev("a", 0))
	mustAppend(t, ctx, c, ev("b", 0))

	assert.Equal(t, 2, s.EventCount("orders"))
	assert.Equal(t, 1, s.EventCount("legacy"))
	assert.Equal(t, 1, s.EventCount("default"))
	last, err := c.GetLastToken(metadata.AppendToOutgoingContext(ctx, "AxonIQ-Context", "orders"), &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, int64(1), last.Token)
	last, err = c.GetLastToken(metadata.AppendToOutgoingContext(ctx, "AxonIQ-Context", "empty"), &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, int64(-1), last.Token)
	names, err := getContexts(t, ctx, s)
	require.NoError(t, err)
	assert.Equal(t, []string{"default", "empty", "legacy", "orders"}, names)
}

// getContexts calls ContextAdminService/GetContexts (EE's admin API) and returns the context names.
func getContexts(t *testing.T, ctx context.Context, s server) ([]string, error) {
	t.Helper()
	stream, err := connectCC(t, s).NewStream(ctx, &grpc.StreamDesc{ServerStreams: true},
		"/io.axoniq.axonserver.grpc.admin.ContextAdminService/GetContexts", raw)
	require.NoError(t, err)
	require.NoError(t, stream.SendMsg(&rawMsg{}))
	require.NoError(t, stream.CloseSend())
	var names []string
	for {
		var m rawMsg
		if err := stream.RecvMsg(&m); err != nil {
			if err == io.EOF {
				return names, nil
			}
			return names, err
		}
		var overview struct{ name string }
		b := m.b
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			require.GreaterOrEqual(t, n, 0)
			b = b[n:]
			if num == 1 && typ == protowire.BytesType {
				v, n := protowire.ConsumeString(b)
				overview.name, b = v, b[n:]
				continue
			}
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
		}
		names = append(names, overview.name)
	}
}

// Both: SE has one context and serves it whatever context a call names (AXON.md 2.1): an append naming
// "orders" lands in "default". It has no ContextAdminService, which is how a client can tell.
func TestSingleContext(t *testing.T) {
	onBoth(t, setup{double: []axontest.Option{axontest.WithSingleContext()}}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		orders := metadata.AppendToOutgoingContext(ctx, "AxonIQ-Context", "orders")
		mustAppend(t, orders, c, ev(tg.id("a"), 0))
		assert.Equal(t, h+1, head(t, ctx, c), "the append naming orders landed in default")
		assert.Equal(t, h+1, head(t, orders, c), "orders reads default")
		assert.Equal(t, int64(0), highest(t, ctx, c, tg.id("a")))
		_, err := getContexts(t, ctx, tg)
		tg.note("GetContexts: %v", status.Code(err))
	})
}

// Double-only: EE's contexts; a server that limits its contexts refuses others with NOT_FOUND AXONIQ-1302
// (AXON.md 2.1 and 2.9).
func TestUnknownContext(t *testing.T) {
	s := axontest.NewServer(t, axontest.WithContexts("default", "orders"))
	c, ctx := connect(t, s, "AxonIQ-Context", "nope")
	var trailer metadata.MD
	_, err := c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{}, grpc.Trailer(&trailer))
	requireAxonError(t, err, trailer, codes.NotFound, "AXONIQ-1302")
	_, tr, err := appendTxn(ctx, c, ev("a", 0))
	requireAxonError(t, err, tr, codes.NotFound, "AXONIQ-1302")

	c, ctx = connect(t, s, "AxonIQ-Context", "orders")
	mustAppend(t, ctx, c, ev("a", 0))
	assert.Equal(t, []string{"orders"}, s.Contexts())
}

// blob returns a non-domain event of exactly size bytes.
func blob(t *testing.T, size int) []byte {
	t.Helper()
	enc := func(n int) []byte {
		return eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{0xab}, n)})
	}
	n := max(size-20, 0)
	for len(enc(n)) < size {
		n++
	}
	b := enc(n)
	require.Len(t, b, size)
	return b
}

// Both: the server accepts an Event of up to max-message-size bytes (4 MiB by default) and refuses a larger
// one, in AppendEvent and AppendSnapshot, by cancelling the call (CANCELLED; gRPC-Java's RESOURCE_EXHAUSTED
// is only in its log; the AXONIQ-0001 trailer may or may not arrive before the stream's reset). The whole
// transaction is refused.
func TestMaxMessageSize(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		_, tr, err := appendTxn(ctx, c, blob(t, 100), blob(t, axontest.DefaultMaxMessageSize+1))
		tg.note("over the limit: %v", status.Code(err))
		if codes := tr.Get("AxonIQ-ErrorCode"); len(codes) > 0 {
			assert.Equal(t, []string{"AXONIQ-0001"}, codes)
		}
		assert.Equal(t, h, head(t, ctx, c), "the whole transaction is refused")
		mustAppend(t, ctx, c, blob(t, axontest.DefaultMaxMessageSize))
		assert.Equal(t, h+1, head(t, ctx, c))

		mustAppend(t, ctx, c, ev(tg.id("a"), 0))
		snap := eventgen.Encode(&eventgen.Event{AggregateID: tg.id("a"), AggregateType: "Order", PayloadType: "Order",
			PayloadData: bytes.Repeat([]byte{1}, axontest.DefaultMaxMessageSize)})
		_, err = c.AppendSnapshot(ctx, mustEvent(t, snap))
		tg.note("snapshot over the limit: %v", status.Code(err))
	})
}

// Double-only: it stores an event larger than a client may send, which the real server would need a
// restart with another max-message-size for. The server does not cap what it sends (AXON.md 2.1).
func TestMaxMessageSizeOutbound(t *testing.T) {
	big := func(size int) []byte {
		return eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{0xab}, size)})
	}
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{big(6 << 20)}))
	r := startRecv(listStream(t, ctx, c, 0, 1))
	assert.Len(t, r.event(t).Event.Payload.Data, 6<<20)

	s2 := axontest.NewServer(t, axontest.WithMaxMessageSize(8<<20))
	c2, ctx2 := connect(t, s2)
	mustAppend(t, ctx2, c2, big(6<<20))
}

// AXON.md 2.1: the server accepts client keepalive pings no more often than every second, also without
// active calls; a client pinging faster gets GOAWAY "too_many_pings" (ENHANCE_YOUR_CALM). Checked on the
// raw HTTP/2 connection, because gRPC-Go's client refuses to ping more often than every 10 s.
//
// Both.
func TestKeepalivePolicy(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, s *target) { keepalivePolicy(t, s) })
}

func keepalivePolicy(t *testing.T, s *target) {
	type goAwayFrame struct {
		code  http2.ErrCode
		debug string
	}
	pingAll := func(interval time.Duration, pings int) *goAwayFrame {
		conn, err := net.Dial("tcp", s.Addr())
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, http2.ClientPreface)
		require.NoError(t, err)
		fr := http2.NewFramer(conn, conn)
		var writeMu sync.Mutex // the framer's writes are not safe for concurrent use
		require.NoError(t, fr.WriteSettings())
		goAway := make(chan *goAwayFrame, 1)
		go func() {
			defer close(goAway)
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if !f.IsAck() {
						writeMu.Lock()
						_ = fr.WriteSettingsAck()
						writeMu.Unlock()
					}
				case *http2.GoAwayFrame:
					goAway <- &goAwayFrame{code: f.ErrCode, debug: string(f.DebugData())}
					return
				}
			}
		}()
		for i := range pings {
			if i > 0 {
				time.Sleep(interval)
			}
			writeMu.Lock()
			err := fr.WritePing(false, [8]byte{byte(i)})
			writeMu.Unlock()
			if err != nil {
				break // the server has closed the connection: its GOAWAY says why
			}
		}
		select {
		case g := <-goAway:
			return g
		case <-time.After(300 * time.Millisecond):
			return nil
		}
	}
	g := pingAll(10*time.Millisecond, 6)
	require.NotNil(t, g, "pings every 10 ms must be refused")
	assert.Equal(t, http2.ErrCodeEnhanceYourCalm, g.code)
	assert.Equal(t, "too_many_pings", g.debug)
	s.note("fast pings: %v %s", g.code, g.debug)
	assert.Nil(t, pingAll(1100*time.Millisecond, 4), "pings every 1.1 s, without any call, are accepted")
}

// ---- AXON.md 2.2: ListEvents ----

// Both: tracking_token is the first token delivered (inclusive).
func TestListEventsInclusiveStart(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		for i := range 6 {
			mustAppend(t, ctx, c, ev(tg.id("a"), int64(i)))
		}
		r := startRecv(listStream(t, ctx, c, h+4, 100))
		assert.Equal(t, tokens(h+4, h+6), r.tokens(t, 3))
		r = startRecv(listStream(t, ctx, c, h+1, 100))
		assert.Equal(t, tokens(h+1, h+6), r.tokens(t, 6))
	})
}

// Both: a negative start token fails the stream with UNKNOWN, no text and no error code (the Java
// connector never sends one: it starts at last seen + 1).
func TestListEventsNegativeToken(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		for _, from := range []int64{-1, -5} {
			stream := listStream(t, ctx, c, from, 10)
			err := startRecv(stream).end(t, 5*time.Second)
			st := status.Convert(err)
			tg.note("from %d: %v %q %v", from, st.Code(), st.Message(), stream.Trailer().Get("AxonIQ-ErrorCode"))
		}
	})
}

// Double-only: retention (removing old segments, EE) cannot be played on SE. A start token below the first
// stored token fails (AXONIQ-0001, "token before start of event store").
func TestListEventsTokenBeforeStart(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0), ev("a", 1), ev("a", 2)}))
	require.NoError(t, s.RemoveBefore("default", 2))
	first, err := c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), first.Token)
	stream := listStream(t, ctx, c, 1, 10)
	msg := requireAxonError(t, startRecv(stream).end(t, 5*time.Second), stream.Trailer(), codes.Canceled, "AXONIQ-0001")
	assert.Contains(t, msg, "before start of event store")
	assert.Equal(t, []int64{2}, startRecv(listStream(t, ctx, c, 2, 10)).tokens(t, 1))
}

// Both: every request adds its permits, only the first request's tracking_token counts, and nothing is
// sent at 0 permits: the permits are exact.
func TestListEventsPermitsAddUp(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		var evs [][]byte
		for i := range 20 {
			evs = append(evs, ev(tg.id("a"), int64(i)))
		}
		mustAppend(t, ctx, c, evs...)
		stream := listStream(t, ctx, c, h+1, 2)
		r := startRecv(stream)
		assert.Equal(t, tokens(h+1, h+2), r.tokens(t, 2))
		r.nothingFor(t, 300*time.Millisecond)

		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{TrackingToken: h + 15, NumberOfPermits: 2}))
		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 1}))
		assert.Equal(t, tokens(h+3, h+5), r.tokens(t, 3), "later tracking tokens are ignored")
		r.nothingFor(t, 300*time.Millisecond)
	})
}

// Both: the server casts number_of_permits to a 32-bit int (AXON.md 1.3).
func TestListEventsPermitsAre32Bit(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		mustAppend(t, ctx, c, ev(tg.id("a"), 0), ev(tg.id("a"), 1), ev(tg.id("a"), 2), ev(tg.id("a"), 3))
		r := startRecv(listStream(t, ctx, c, h+1, 1<<32+2))
		assert.Equal(t, tokens(h+1, h+2), r.tokens(t, 2))
		r.nothingFor(t, 300*time.Millisecond)
	})
}

// withPrefix gives the aggregates of generated events ids of the row's own.
func withPrefix(t *testing.T, tg *target, evs [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(evs))
	for i, b := range evs {
		var r archive.Record
		require.NoError(t, codec.Decode(b, &r))
		if r.AggregateID != "" {
			r.AggregateID = tg.id(r.AggregateID)
		}
		out[i] = codec.Encode(nil, &r)
	}
	return out
}

// Both: sending happens in rounds of at most 500 events, which a large permit window spans.
func TestListEventsManyRounds(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		mustAppend(t, ctx, c, withPrefix(t, tg, eventgen.New(1, eventgen.Options{}).Generate(1234))...)
		r := startRecv(listStream(t, ctx, c, h+1, 5000))
		assert.Equal(t, tokens(h+1, h+1234), r.tokens(t, 1234))
	})
}

// Both: blacklisted payload types (and revisions) are skipped, also when a later request adds them; after
// 999 skipped in a row the next is sent anyway (blacklisted-send-after is 1000, counted down to 1).
func TestListEventsBlacklist(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		typed := func(typ, revision string) []byte {
			return eventgen.Encode(&eventgen.Event{PayloadType: typ, PayloadRevision: revision, PayloadData: []byte("x")})
		}
		var evs [][]byte
		for range 1500 {
			evs = append(evs, typed("Noise", ""))
		}
		evs = append(evs, typed("Noise", "2"), typed("Signal", ""), typed("Later", ""), typed("Signal", ""))
		mustAppend(t, ctx, c, evs...)
		stream, err := c.ListEvents(ctx, raw)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{TrackingToken: h + 1, NumberOfPermits: 3,
			Blacklist: []*axonpb.PayloadDescription{{Type: "Noise"}}}))
		r := startRecv(stream)
		got := r.tokens(t, 3)
		tg.note("first three sent: %v", relative(got, h))
		// The blacklist entry goes first, on its own: in one request with the permits, the real server may
		// use the permits before it reads the entry. (gRPC hands a call's requests to the server in order.)
		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{Blacklist: []*axonpb.PayloadDescription{{Type: "Later"}}}))
		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 5}))
		tg.note("after adding Later: %v", relative(r.tokens(t, 1), h))
		r.nothingFor(t, 300*time.Millisecond)
	})
}

// relative returns tokens as offsets from the head a row started at.
func relative(toks []int64, h int64) []int64 {
	out := make([]int64, len(toks))
	for i, tok := range toks {
		out[i] = tok - h - 1
	}
	return out
}

// Both: at the head the stream stays open and delivers events appended later, only once they are
// committed.
func TestListEventsStaysOpenAtHead(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		mustAppend(t, ctx, c, ev(tg.id("a"), 0))
		r := startRecv(listStream(t, ctx, c, h+1, 100))
		assert.Equal(t, []int64{h + 1}, r.tokens(t, 1))
		r.nothingFor(t, 300*time.Millisecond)

		// A transaction still open (not half-closed) is invisible.
		open, err := c.AppendEvent(ctx, raw)
		require.NoError(t, err)
		require.NoError(t, open.SendMsg(&rawMsg{ev(tg.id("b"), 0)}))
		r.nothingFor(t, 300*time.Millisecond)

		mustAppend(t, ctx, c, ev(tg.id("a"), 1), ev(tg.id("a"), 2))
		assert.Equal(t, tokens(h+2, h+3), r.tokens(t, 2))
		_, err = open.CloseAndRecv()
		require.NoError(t, err)
		assert.Equal(t, []int64{h + 4}, r.tokens(t, 1))
	})
}

// Both: a stream at 0 permits for longer than new-permits-timeout is closed (UNKNOWN without a text, or a
// clean end); permits topped up in time keep it open, also at the head with permits left. (The real server checks every
// event-processor-permits-check ms; sharedProps shortens both.)
func TestListEventsPermitTimeout(t *testing.T) {
	onBoth(t, setup{double: []axontest.Option{axontest.WithPermitTimeout(time.Second)}}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		mustAppend(t, ctx, c, ev(tg.id("a"), 0), ev(tg.id("a"), 1))
		stream, err := c.ListEvents(ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{TrackingToken: h + 1, NumberOfPermits: 1, ClientId: "conformance"}))
		r := startRecv(stream)
		assert.Equal(t, []int64{h + 1}, r.tokens(t, 1))
		start := time.Now()
		// SE closes the tracker and raises its error inside the event stream: the client sees UNKNOWN
		// without a text or, when the close overtakes the error, a clean end.
		if err := r.end(t, 10*time.Second); err != io.EOF {
			st := status.Convert(err)
			assert.Equal(t, codes.Unknown, st.Code(), "%v", err)
			assert.Empty(t, st.Message())
			assert.Empty(t, stream.Trailer().Get("AxonIQ-ErrorCode"))
		}
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)

		stream = listStream(t, ctx, c, h+1, 1)
		r = startRecv(stream)
		for i := range 3 {
			time.Sleep(500 * time.Millisecond)
			require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 1}), "round %d", i)
		}
		assert.Equal(t, tokens(h+1, h+2), r.tokens(t, 2))
		r.nothingFor(t, 1500*time.Millisecond)
	})
}

// Both: a client half-close makes the server complete the stream (status OK); cancelling works too.
func TestListEventsHalfClose(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		mustAppend(t, ctx, c, ev(tg.id("a"), 0))
		stream := listStream(t, ctx, c, h+1, 10)
		r := startRecv(stream)
		assert.Equal(t, []int64{h + 1}, r.tokens(t, 1))
		require.NoError(t, stream.CloseSend())
		assert.ErrorIs(t, r.end(t, 5*time.Second), io.EOF)

		cctx, cancel := context.WithCancel(ctx)
		r = startRecv(listStream(t, cctx, c, h+1, 10))
		r.tokens(t, 1)
		cancel()
		assert.Equal(t, codes.Canceled, status.Code(r.end(t, 5*time.Second)))
	})
}

// splitFrame parses an EventWithToken frame: the token (absent when 0) and the event bytes as sent.
func splitFrame(t *testing.T, f []byte) (int64, []byte) {
	t.Helper()
	var tok int64
	var event []byte
	for len(f) > 0 {
		num, typ, n := protowire.ConsumeTag(f)
		require.Positive(t, n)
		f = f[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(f)
			tok, f = int64(v), f[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(f)
			event, f = v, f[n:]
		default:
			t.Fatalf("unexpected field %d in EventWithToken", num)
		}
	}
	return tok, event
}

// Both: EventWithToken is field 1 (the token, omitted when 0: TestFreshStore) then field 2, the stored
// event bytes unchanged.
func TestListEventsFrames(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		evs := withPrefix(t, tg, eventgen.New(5, eventgen.Options{}).Generate(50))
		mustAppend(t, ctx, c, evs...)
		for i, f := range readRaw(t, ctx, c, h+1, len(evs)) {
			want := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), evs[i])
			if tok := h + 1 + int64(i); tok > 0 {
				want = append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(tok)), want...)
			}
			require.Equal(t, want, f, "frame of token %d", h+1+int64(i))
		}
	})
}

// ---- AXON.md 2.3: AppendEvent ----

// Both: one call is one transaction; tokens are consecutive in send order, across calls; the events are
// served as sent.
func TestAppendTransaction(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		a, b := tg.id("a"), tg.id("b")
		resp, _, err := appendTxn(ctx, c, ev(a, 0), nonDomain("", 0), ev(b, 0), ev(a, 1))
		require.NoError(t, err)
		assert.True(t, resp.Success)
		mustAppend(t, ctx, c, ev(b, 1))
		toks, stored := eventsFrom(t, ctx, c, h+1, 5)
		assert.Equal(t, tokens(h+1, h+5), toks)
		assert.Equal(t, [][]byte{ev(a, 0), nonDomain("", 0), ev(b, 0), ev(a, 1), ev(b, 1)}, stored)
	})
}

// Both: an empty call succeeds and stores nothing.
func TestAppendEmpty(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		resp, _, err := appendTxn(ctx, c)
		require.NoError(t, err)
		assert.True(t, resp.Success)
		assert.Equal(t, h, head(t, ctx, c))
	})
}

// Both: a client cancel before the half-close stores nothing and reserves no sequence.
func TestAppendCancelled(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		cctx, cancel := context.WithCancel(ctx)
		stream, err := c.AppendEvent(cctx, raw)
		require.NoError(t, err)
		for i := range 10 {
			require.NoError(t, stream.SendMsg(&rawMsg{ev(tg.id("a"), int64(i))}))
		}
		time.Sleep(200 * time.Millisecond) // let the server receive them
		cancel()
		time.Sleep(200 * time.Millisecond)
		assert.Equal(t, h, head(t, ctx, c))
		mustAppend(t, ctx, c, ev(tg.id("a"), 0))
	})
}

// Both: sequence validation of domain events, all-or-nothing, with Axon Server's message. The server checks
// in two passes: each aggregate's events must follow one another within the transaction (the first break
// in send order is reported), then each aggregate's first sequence must follow what is stored; of several
// aggregates failing the second pass the server names whichever its hash map holds first.
func TestAppendSequenceValidation(t *testing.T) {
	var many, manyStored [][]byte
	for i := range 30 {
		manyStored = append(manyStored, ev(fmt.Sprintf("{m%02d}", i), 0))
		many = append(many, ev(fmt.Sprintf("{m%02d}", i), 0))
	}
	cases := []struct {
		name   string
		stored [][]byte
		txn    [][]byte
		msg    string // "" = accepted; "?" = compared between the targets only
	}{
		{"new aggregate starts at 0", nil, [][]byte{ev("{a}", 0), ev("{a}", 1)}, ""},
		{"new aggregate at 1", nil, [][]byte{ev("{a}", 1)}, "Invalid sequence number 1 for aggregate {a}, expected 0"},
		{"gap in transaction", nil, [][]byte{ev("{a}", 0), ev("{a}", 2)}, "Invalid sequence number 2 for aggregate {a}, expected 1"},
		{"repeat in transaction", nil, [][]byte{ev("{a}", 0), ev("{a}", 0)}, "Invalid sequence number 0 for aggregate {a}, expected 1"},
		{"interleaved aggregates", nil, [][]byte{ev("{a}", 0), ev("{b}", 0), ev("{a}", 1), ev("{b}", 1)}, ""},
		{"continues stored", [][]byte{ev("{a}", 0), ev("{a}", 1)}, [][]byte{ev("{a}", 2)}, ""},
		{"duplicate of stored", [][]byte{ev("{a}", 0), ev("{a}", 1)}, [][]byte{ev("{a}", 1)}, "Invalid sequence number 1 for aggregate {a}, expected 2"},
		{"gap after stored", [][]byte{ev("{a}", 0)}, [][]byte{ev("{a}", 3)}, "Invalid sequence number 3 for aggregate {a}, expected 1"},
		{"non-domain not validated", [][]byte{ev("{a}", 0)}, [][]byte{nonDomain("{a}", 7), nonDomain("", 0), nonDomain("", 0)}, ""},
		{"non-domain does not count", [][]byte{nonDomain("{a}", 0)}, [][]byte{ev("{a}", 0)}, ""},
		{"all or nothing", nil, [][]byte{nonDomain("", 0), ev("{b}", 0), ev("{a}", 5)}, "Invalid sequence number 5 for aggregate {a}, expected 0"},
		// The in-transaction pass runs first: b's break is reported although a's mismatch comes first.
		{"in-transaction break before stored mismatch", [][]byte{ev("{a}", 0), ev("{a}", 1)}, [][]byte{ev("{a}", 5), ev("{b}", 0), ev("{b}", 2)}, "Invalid sequence number 2 for aggregate {b}, expected 1"},
		{"in-transaction break after stored mismatch", [][]byte{ev("{a}", 0)}, [][]byte{ev("{b}", 0), ev("{b}", 2), ev("{a}", 3)}, "Invalid sequence number 2 for aggregate {b}, expected 1"},
		{"many aggregates not following the store", manyStored, many, "?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			onBoth(t, setup{}, func(t *testing.T, tg *target) {
				ids := func(s string) string {
					for strings.Contains(s, "{") {
						i, j := strings.Index(s, "{"), strings.Index(s, "}")
						s = s[:i] + tg.id(s[i+1:j]) + s[j+1:]
					}
					return s
				}
				fix := func(evs [][]byte) (out [][]byte) {
					for _, e := range evs {
						r := mustEvent(t, e)
						if r.AggregateIdentifier != "" {
							r.AggregateIdentifier = ids(r.AggregateIdentifier)
							r.MessageIdentifier = ids(r.MessageIdentifier)
						}
						b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
						require.NoError(t, err)
						out = append(out, b)
					}
					return out
				}
				c, ctx := connect(t, tg)
				if tc.stored != nil {
					mustAppend(t, ctx, c, fix(tc.stored)...)
				}
				h := head(t, ctx, c)
				_, tr, err := appendTxn(ctx, c, fix(tc.txn)...)
				if tc.msg == "" {
					require.NoError(t, err)
					assert.Equal(t, h+int64(len(tc.txn)), head(t, ctx, c))
					return
				}
				msg := requireAxonError(t, err, tr, codes.OutOfRange, "AXONIQ-2000")
				if tc.msg == "?" {
					tg.note("%s", strings.ReplaceAll(msg, tg.prefix, ""))
				} else {
					assert.Equal(t, ids(tc.msg), msg)
				}
				assert.Equal(t, h, head(t, ctx, c), "nothing of the transaction is stored")
			})
		})
	}
}

// Both: concurrent transactions each get consecutive tokens, and the sequence check sees the other
// transactions: of transactions racing to create the same aggregate, one succeeds.
func TestAppendConcurrent(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		const writers, txns, size = 8, 10, 20
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				id := tg.id(fmt.Sprintf("agg-%d", w))
				for tx := range txns {
					var evs [][]byte
					for i := range size {
						evs = append(evs, ev(id, int64(tx*size+i)))
					}
					mustAppend(t, ctx, c, evs...)
				}
			})
		}
		wg.Wait()
		_, stored := eventsFrom(t, ctx, c, h+1, writers*txns*size)
		for i := 0; i < len(stored); i += size {
			first := mustEvent(t, stored[i])
			require.Zero(t, first.AggregateSequenceNumber%size, "transaction starts at token %d", h+1+int64(i))
			for j := range size {
				e := mustEvent(t, stored[i+j])
				assert.Equal(t, first.AggregateIdentifier, e.AggregateIdentifier)
				assert.Equal(t, first.AggregateSequenceNumber+int64(j), e.AggregateSequenceNumber)
			}
		}

		var failed, ok int
		var mu sync.Mutex
		for range 5 {
			wg.Go(func() {
				_, _, err := appendTxn(ctx, c, ev(tg.id("race"), 0), ev(tg.id("race"), 1))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else {
					assert.Equal(t, codes.OutOfRange, status.Code(err))
					failed++
				}
			})
		}
		wg.Wait()
		assert.Equal(t, 1, ok)
		assert.Equal(t, 4, failed)
	})
}

// Both: what is appended must parse as an Event; a transaction with a malformed message or invalid UTF-8
// in a string field is refused whole, CANCELLED with AXONIQ-9000 and protobuf-java's text.
func TestAppendNotAnEvent(t *testing.T) {
	badUTF8 := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "a\xffb")
	badMeta := eventgen.Encode(&eventgen.Event{Metadata: []eventgen.Meta{{Key: "k", Kind: eventgen.Text, Text: "\xc0"}}})
	for _, bad := range []struct {
		name string
		b    []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"truncated", ev("a", 0)[:10]},
		{"invalid utf-8", badUTF8},
		{"invalid utf-8 meta", badMeta},
	} {
		t.Run(bad.name, func(t *testing.T) {
			onBoth(t, setup{}, func(t *testing.T, tg *target) {
				c, ctx := connect(t, tg)
				h := head(t, ctx, c)
				_, tr, err := appendTxn(ctx, c, ev(tg.id("a"), 0), bad.b)
				tg.note("%s", requireAxonError(t, err, tr, codes.Canceled, "AXONIQ-9000"))
				assert.Equal(t, h, head(t, ctx, c))
			})
		})
	}
}

// Both: the server assigns nothing and checks nothing else: empty ids, zero timestamps, unsorted metadata,
// edge values all come back byte for byte, through ListEvents as through ListAggregateEvents.
func TestAppendPreservesBytes(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		h := head(t, ctx, c)
		evs := withPrefix(t, tg, eventgen.New(9, eventgen.Options{Aggregates: 20}).Generate(300))
		evs = append(evs, withPrefix(t, tg, eventgen.EdgeCases())...)
		// Nothing assigned or checked: an empty message id, no timestamp, an empty event.
		evs = append(evs, eventgen.Encode(&eventgen.Event{AggregateID: tg.id("x"), AggregateType: "X", PayloadType: "t"}), []byte{})
		mustAppend(t, ctx, c, evs[:100]...)
		mustAppend(t, ctx, c, evs[100:]...)
		_, got := eventsFrom(t, ctx, c, h+1, len(evs))
		for i := range evs {
			require.True(t, bytes.Equal(evs[i], got[i]), "event %d served as stored", i)
		}
		byAggregate := map[string][][]byte{}
		for _, e := range evs {
			if r := mustEvent(t, e); r.AggregateType != "" {
				byAggregate[r.AggregateIdentifier] = append(byAggregate[r.AggregateIdentifier], e)
			}
		}
		for id, want := range byAggregate {
			assert.Equal(t, want, listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: id}), "aggregate %s", id)
		}
	})
}

// Both: the confirmation is success=true, the two bytes 08 01, readable as Confirmation and as
// ConfirmationWithConsistencyMarker.
func TestAppendConfirmation(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		stream, err := c.AppendEvent(ctx, raw)
		require.NoError(t, err)
		require.NoError(t, stream.SendMsg(&rawMsg{ev(tg.id("a"), 0)}))
		require.NoError(t, stream.CloseSend())
		var reply rawMsg
		require.NoError(t, stream.RecvMsg(&reply))
		assert.Equal(t, []byte{0x08, 0x01}, reply.b)
	})
}

// Double-only: a DCB-capable server's ConfirmationWithConsistencyMarker (SE 2023 has none); a marker is
// field 2, which clients must ignore.
func TestAppendConfirmationWithMarker(t *testing.T) {
	s := axontest.NewServer(t, axontest.WithConfirmation(axontest.ConfirmationWithMarker))
	c, ctx := connect(t, s)
	mustAppend(t, ctx, c, ev("a", 0))
	stream, err := c.AppendEvent(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, stream.SendMsg(&rawMsg{ev("a", 1)}))
	require.NoError(t, stream.CloseSend())
	var reply rawMsg
	require.NoError(t, stream.RecvMsg(&reply))
	var plain axonpb.Confirmation
	require.NoError(t, proto.Unmarshal(reply.b, &plain))
	assert.True(t, plain.Success)
	var marked axonpb.ConfirmationWithConsistencyMarker
	require.NoError(t, proto.Unmarshal(reply.b, &marked))
	assert.True(t, marked.Success)
	assert.Equal(t, int64(1), marked.ConsistencyMarker.GetToken())
}

// Double-only: EE's max-events-per-transaction (SE has no limit) answers AXONIQ-2002.
func TestAppendTooManyEvents(t *testing.T) {
	s := axontest.NewServer(t, axontest.WithMaxEventsPerTransaction(2))
	c, ctx := connect(t, s)
	mustAppend(t, ctx, c, ev("a", 0), ev("a", 1))
	_, tr, err := appendTxn(ctx, c, ev("a", 2), ev("a", 3), ev("a", 4))
	requireAxonError(t, err, tr, codes.InvalidArgument, "AXONIQ-2002")
	assert.Equal(t, 2, s.EventCount("default"))
}

// ---- AXON.md 2.4: AppendSnapshot ----

// Both: a snapshot's sequence must not exceed the aggregate's last event sequence (-1 without events);
// there is no ordering or uniqueness check, older snapshots are accepted; snapshots are not events.
func TestAppendSnapshot(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		a := tg.id("a")
		var trailer metadata.MD
		_, err := c.AppendSnapshot(ctx, mustEvent(t, snapshot(a, 0)), grpc.Trailer(&trailer))
		msg := requireAxonError(t, err, trailer, codes.OutOfRange, "AXONIQ-2000")
		assert.Equal(t, "Invalid sequence number while storing snapshot. Highest aggregate "+a+" sequence number: -1, snapshot sequence 0.", msg)

		mustAppend(t, ctx, c, ev(a, 0), ev(a, 1), ev(a, 2))
		h := head(t, ctx, c)
		_, err = c.AppendSnapshot(ctx, mustEvent(t, snapshot(a, 3)), grpc.Trailer(&trailer))
		msg = requireAxonError(t, err, trailer, codes.OutOfRange, "AXONIQ-2000")
		assert.Equal(t, "Invalid sequence number while storing snapshot. Highest aggregate "+a+" sequence number: 2, snapshot sequence 3.", msg)
		for _, seq := range []int64{2, 0, 1, 1} {
			resp, err := c.AppendSnapshot(ctx, mustEvent(t, snapshot(a, seq)))
			require.NoError(t, err)
			assert.True(t, resp.Success)
		}
		assert.Len(t, listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: a, MaxSequence: maxSeq}), 4)
		assert.Equal(t, h, head(t, ctx, c), "snapshots are not events")
	})
}

// Double-only: check-sequence-nr-for-snapshots=false would need a real server of its own.
func TestAppendSnapshotUnchecked(t *testing.T) {
	unchecked := axontest.NewServer(t, axontest.WithCheckSnapshotSequence(false))
	c, ctx := connect(t, unchecked)
	_, err := c.AppendSnapshot(ctx, mustEvent(t, snapshot("x", 42)))
	require.NoError(t, err)
}

// Both: snapshots are confirmed with 08 01, and one with an empty aggregate type is stored but can never be
// read back by aggregate.
func TestAppendSnapshotStorage(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		a := tg.id("a")
		mustAppend(t, ctx, c, ev(a, 0))
		untyped := eventgen.Encode(&eventgen.Event{AggregateID: a, PayloadType: "Order"})
		cc := connectCC(t, tg)
		for _, snap := range [][]byte{snapshot(a, 0), untyped} {
			var reply rawMsg
			require.NoError(t, cc.Invoke(ctx, axonpb.EventStore_AppendSnapshot_FullMethodName, &rawMsg{snap}, &reply, raw))
			assert.Equal(t, []byte{0x08, 0x01}, reply.b)
		}
		snaps := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: a, MaxSequence: maxSeq})
		assert.Len(t, snaps, 1)
	})
}

// ---- AXON.md 2.5: ListAggregateEvents ----

// Both: initial_sequence inclusive, max_sequence exclusive (0 = unlimited), domain events only, served as
// stored.
func TestListAggregateEvents(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		a := tg.id("a")
		for i := range 10 {
			mustAppend(t, ctx, c, ev(a, int64(i)), nonDomain(a, int64(i)), ev(tg.id(fmt.Sprint("other", i)), 0))
		}
		cases := []struct {
			initial, max int64
			want         []int64
		}{
			{0, 0, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
			{3, 0, []int64{3, 4, 5, 6, 7, 8, 9}},
			{3, 6, []int64{3, 4, 5}},
			{0, 1, []int64{0}},
			{5, 5, nil},
			{0, -1, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		}
		for _, tc := range cases {
			got := listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: a, InitialSequence: tc.initial, MaxSequence: tc.max})
			var seqs []int64
			for _, b := range got {
				e := mustEvent(t, b)
				assert.Equal(t, "Order", e.AggregateType)
				assert.Equal(t, ev(a, e.AggregateSequenceNumber), b)
				seqs = append(seqs, e.AggregateSequenceNumber)
			}
			assert.Equal(t, tc.want, seqs, "initial %d max %d", tc.initial, tc.max)
		}
		assert.Empty(t, listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: tg.id("unknown")}))
	})
}

// Both: with allow_snapshots the newest snapshot in range comes first, flagged, then the events after it.
func TestListAggregateEventsWithSnapshot(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		a := tg.id("a")
		var evs [][]byte
		for i := range 10 {
			evs = append(evs, ev(a, int64(i)))
		}
		mustAppend(t, ctx, c, evs...)
		appendSnapshots(t, ctx, c, snapshot(a, 3), snapshot(a, 6))

		seqsOf := func(bs [][]byte) (out []string) {
			for _, b := range bs {
				e := mustEvent(t, b)
				out = append(out, fmt.Sprintf("%d%s", e.AggregateSequenceNumber, map[bool]string{true: "s"}[e.Snapshot]))
			}
			return out
		}
		got := listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: a, AllowSnapshots: true})
		assert.Equal(t, []string{"6s", "7", "8", "9"}, seqsOf(got))
		got = listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: a, AllowSnapshots: true, MaxSequence: 6})
		tg.note("max 6: %v", seqsOf(got))
		got = listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: a, AllowSnapshots: true, InitialSequence: 7})
		assert.Equal(t, []string{"7", "8", "9"}, seqsOf(got))
		got = listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: a})
		assert.Len(t, got, 10)
	})
}

// ---- AXON.md 2.6: ListAggregateSnapshots ----

// Both: newest stored first, snapshot=true set by re-encoding, initial <= seq < max, max <= 0 returns
// nothing, max_results limits the entries examined.
func TestListAggregateSnapshots(t *testing.T) {
	onBoth(t, setup{}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg)
		a := tg.id("a")
		var evs [][]byte
		for i := range 40 {
			evs = append(evs, ev(a, int64(i)))
		}
		mustAppend(t, ctx, c, evs...)
		stored := [][]byte{snapshot(a, 9), snapshot(a, 29), snapshot(a, 19)}
		appendSnapshots(t, ctx, c, stored...)

		all := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: a, MaxSequence: math.MaxInt64})
		require.Len(t, all, 3)
		for i, want := range []int{2, 1, 0} { // newest stored first
			assert.Equal(t, append(append([]byte{}, stored[want]...), 0x40, 0x01), all[i], "snapshot %d: stored bytes plus snapshot=true", i)
		}
		cases := []struct {
			name       string
			initial    int64
			max        int64
			maxResults int32
		}{
			{"all", 0, math.MaxInt64, 0},
			{"max exclusive", 0, 29, 0},
			{"initial inclusive", 19, math.MaxInt64, 0},
			{"max 0", 0, 0, 0},
			{"max negative", -10, -1, 0},
			{"max results 2", 0, math.MaxInt64, 2},
			{"max results counts filtered entries", 0, 19, 1},
			{"max results negative", 0, math.MaxInt64, -5},
		}
		for _, tc := range cases {
			got := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: a,
				InitialSequence: tc.initial, MaxSequence: tc.max, MaxResults: tc.maxResults})
			var seqs []int64
			for _, b := range got {
				seqs = append(seqs, mustEvent(t, b).AggregateSequenceNumber)
			}
			tg.note("%s: %v", tc.name, seqs)
		}
	})
}

// ---- AXON.md 2.7: token RPCs and ReadHighestSequenceNr ----

// ---- fault injection and helpers ----

// The fault hooks behave as documented: the n-th call fails with UNAVAILABLE, a stream is dropped after n
// events, a stall holds appends until released, and a restart keeps the data on the same address.
func TestFaults(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", eventgen.New(2, eventgen.Options{}).Generate(100)))

	s.FailNthCall(axontest.MethodGetLastToken, 2)
	_, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	_, err = c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	_, err = c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, 3, s.Calls(axontest.MethodGetLastToken))

	s.DropListEventsAfter(30)
	r := startRecv(listStream(t, ctx, c, 0, 1000))
	assert.Equal(t, tokens(0, 29), r.tokens(t, 30))
	assert.Equal(t, codes.Unavailable, status.Code(r.end(t, 5*time.Second)))
	r = startRecv(listStream(t, ctx, c, 30, 1000)) // the drop was one-shot
	assert.Equal(t, tokens(30, 99), r.tokens(t, 70))

	s.Stall()
	r = startRecv(listStream(t, ctx, c, 0, 1000))
	done := make(chan error, 1)
	go func() { _, _, err := appendTxn(ctx, c, nonDomain("", 0)); done <- err }()
	r.nothingFor(t, 200*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("append finished during a stall: %v", err)
	default:
	}
	s.Unstall()
	require.NoError(t, <-done)
	assert.Len(t, r.tokens(t, 101), 101)

	s.SetDelay(50 * time.Millisecond)
	start := time.Now()
	_, err = c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	s.SetDelay(0)

	addr := s.Addr()
	s.Stop()
	_, err = c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	require.NoError(t, s.Restart())
	assert.Equal(t, addr, s.Addr())
	require.Eventually(t, func() bool {
		last, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
		return err == nil && last.Token == 100
	}, 10*time.Second, 50*time.Millisecond)
}

// The instrumentation tests rely on: committed transactions with their sizes, calls running at once,
// permits outstanding, and a hook after each committed append.
func TestInstrumentation(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	mustAppend(t, ctx, c, ev("a", 0), ev("a", 1))
	mustAppend(t, ctx, c) // stores nothing: no transaction recorded
	require.NoError(t, s.Load("default", [][]byte{ev("a", 2)}))
	assert.Equal(t, []axontest.Transaction{
		{First: 0, Events: 2, Bytes: len(ev("a", 0)) + len(ev("a", 1))},
		{First: 2, Events: 1, Bytes: len(ev("a", 2))},
	}, s.Transactions("default"))
	assert.Equal(t, 1, s.MaxConcurrentCalls(axontest.MethodAppendEvent))

	// Two streams open at once; permits are counted per stream.
	r1 := startRecv(listStream(t, ctx, c, 0, 7))
	r2 := startRecv(listStream(t, ctx, c, 0, 5))
	r1.tokens(t, 3)
	r2.tokens(t, 3)
	assert.Equal(t, 2, s.MaxConcurrentCalls(axontest.MethodListEvents))
	assert.Equal(t, int64(7), s.MaxOutstandingPermits())

	// Another writer slips in between a commit and its confirmation.
	s.AfterAppend(func(context string) {
		s.AfterAppend(nil)
		require.NoError(t, s.Load(context, [][]byte{nonDomain("", 0)}))
	})
	mustAppend(t, ctx, c, ev("a", 3))
	mustAppend(t, ctx, c, ev("a", 4))
	assert.Equal(t, int64(5), s.LastToken("default"))
}

// AXON.md 2.3: only an error or cancel before the half-close stores nothing. A transaction the client
// half-closed and then gave up on while a stall held it is stored when the stall ends (the "confirmation
// lost" case an import must survive); a server stop during the stall drops it, as a crash would.
func TestStallHalfClosedAppend(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	s.Stall()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, _, err := appendTxn(cctx, c, ev("a", 0))
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
	assert.Equal(t, 1, s.Held(axontest.MethodAppendEvent))
	assert.Equal(t, 0, s.EventCount("default"), "nothing is stored during the stall")
	s.Unstall()
	require.Eventually(t, func() bool { return s.EventCount("default") == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 0, s.Held(axontest.MethodAppendEvent))

	s.Stall()
	done := make(chan error, 1)
	go func() { _, _, err := appendTxn(ctx, c, ev("a", 1)); done <- err }()
	require.Eventually(t, func() bool { return s.Held(axontest.MethodAppendEvent) == 1 }, 5*time.Second, time.Millisecond)
	s.Stop()
	assert.Equal(t, codes.Unavailable, status.Code(<-done))
	require.NoError(t, s.Restart())
	s.Unstall()
	assert.Equal(t, 1, s.EventCount("default"), "a transaction held when the server stopped is not stored")
}

// ReplaceEvent swaps stored bytes, which every read then serves.
func TestReplaceEvent(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0), ev("a", 1)}))
	tampered := eventgen.Encode(&eventgen.Event{AggregateID: "a", AggregateSequence: 1, AggregateType: "Order", PayloadType: "evil"})
	require.NoError(t, s.ReplaceEvent("default", 1, tampered))
	require.Error(t, s.ReplaceEvent("default", 2, tampered))
	require.Error(t, s.ReplaceEvent("default", 0, []byte{0xff}))
	got := listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "a"})
	assert.Equal(t, [][]byte{ev("a", 0), tampered}, got)
}

// ReplaceSnapshot swaps stored snapshot bytes, which reads then serve (flagged).
func TestReplaceSnapshot(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0), ev("a", 1)}))
	require.NoError(t, s.LoadSnapshots("default", [][]byte{snapshot("a", 0), snapshot("a", 1)}))
	tampered := eventgen.Encode(&eventgen.Event{AggregateID: "a", AggregateSequence: 1, AggregateType: "Order", PayloadType: "evil"})
	require.NoError(t, s.ReplaceSnapshot("default", 1, tampered))
	require.Error(t, s.ReplaceSnapshot("default", 2, tampered))
	require.Error(t, s.ReplaceSnapshot("default", 0, snapshot("b", 0)), "another aggregate")
	got := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: "a", MaxSequence: math.MaxInt64})
	require.Len(t, got, 2)
	assert.Equal(t, "evil", mustEvent(t, got[0]).Payload.Type)
}

// Load validates like AppendEvent.
func TestLoadValidates(t *testing.T) {
	s := axontest.NewServer(t)
	require.Error(t, s.Load("default", [][]byte{ev("a", 1)}))
	require.Error(t, s.Load("default", [][]byte{{0xff}}))
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0)}))
	require.Error(t, s.LoadSnapshots("default", [][]byte{snapshot("a", 1)}))
	assert.Equal(t, 1, s.EventCount("default"))
}

func mustEvent(t *testing.T, b []byte) *axonpb.Event {
	t.Helper()
	var e axonpb.Event
	require.NoError(t, proto.Unmarshal(b, &e))
	return &e
}

func listAggregate(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, req *axonpb.GetAggregateEventsRequest) [][]byte {
	t.Helper()
	stream, err := c.ListAggregateEvents(ctx, req, raw)
	require.NoError(t, err)
	return drain(t, stream)
}

func listSnapshots(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, req *axonpb.GetAggregateSnapshotsRequest) [][]byte {
	t.Helper()
	stream, err := c.ListAggregateSnapshots(ctx, req, raw)
	require.NoError(t, err)
	return drain(t, stream)
}

func drain(t *testing.T, stream grpc.ClientStream) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		var m rawMsg
		err := stream.RecvMsg(&m)
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		out = append(out, m.b)
	}
}

// DeleteContext empties a context; the others keep their data.
func TestDeleteContext(t *testing.T) {
	s := axontest.NewServer(t)
	require.NoError(t, s.Load("a", [][]byte{ev("x", 0), ev("x", 1)}))
	require.NoError(t, s.LoadSnapshots("a", [][]byte{snapshot("x", 1)}))
	require.NoError(t, s.Load("b", [][]byte{ev("y", 0)}))
	s.DeleteContext("a")
	assert.Equal(t, []string{"b"}, s.Contexts())
	assert.Equal(t, 0, s.EventCount("a"))
	assert.Equal(t, 0, s.SnapshotCount("a"))
	assert.Equal(t, int64(-1), s.LastToken("a"))
	assert.Equal(t, 1, s.EventCount("b"))
	require.NoError(t, s.Load("a", [][]byte{ev("x", 0)}), "a deleted context starts afresh")
}

// Last, so that the access-control server has had the most time to start.
//
// requireBareAxonError checks an Axon Server error whose description is the message alone (no "[code] "
// prefix), as its access-control refusals are.
func requireBareAxonError(t *testing.T, err error, trailer metadata.MD, code codes.Code, axonCode, msg string) {
	t.Helper()
	require.Error(t, err)
	st := status.Convert(err)
	require.Equal(t, code, st.Code(), "status of %v", err)
	assert.Equal(t, msg, st.Message())
	assert.Equal(t, []string{axonCode}, trailer.Get("AxonIQ-ErrorCode"))
}

// Both: with access control, a missing token is PERMISSION_DENIED AXONIQ-1000 "No token for <method>" and a
// wrong one AXONIQ-1001 "Invalid token for <method>", for unary and streaming calls alike; the legacy
// Access-Token header is accepted (AXON.md 2.1, 2.9).
func TestAccessToken(t *testing.T) {
	onBoth(t, setup{props: accessProps, double: []axontest.Option{axontest.WithAccessToken(appToken)}}, func(t *testing.T, tg *target) {
		c, ctx := connect(t, tg, "AxonIQ-Access-Token", appToken)
		before := head(t, ctx, c)
		const svc = "io.axoniq.axonserver.grpc.event.EventStore/"
		cases := []struct {
			name     string
			md       []string
			axonCode string
			text     string
		}{
			{"missing", nil, "AXONIQ-1000", "No token for "},
			{"wrong", []string{"AxonIQ-Access-Token", "guess"}, "AXONIQ-1001", "Invalid token for "},
			{"ok", []string{"AxonIQ-Access-Token", appToken}, "", ""},
			{"legacy header", []string{"Access-Token", appToken}, "", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, ctx := connect(t, tg, tc.md...)
				var trailer metadata.MD
				_, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{}, grpc.Trailer(&trailer))
				_, appendTrailer, appendErr := appendTxn(ctx, c, nonDomain("", 0))
				stream := listStream(t, ctx, c, before+1, 10)
				r := startRecv(stream)
				if tc.axonCode == "" {
					require.NoError(t, err)
					require.NoError(t, appendErr)
					r.event(t)
					return
				}
				requireBareAxonError(t, err, trailer, codes.PermissionDenied, tc.axonCode, tc.text+svc+"GetLastToken")
				requireBareAxonError(t, appendErr, appendTrailer, codes.PermissionDenied, tc.axonCode, tc.text+svc+"AppendEvent")
				requireBareAxonError(t, r.end(t, 5*time.Second), stream.Trailer(), codes.PermissionDenied, tc.axonCode, tc.text+svc+"ListEvents")
			})
		}
		assert.Equal(t, before+2, head(t, ctx, c), "refused appends store nothing")
	})
}
