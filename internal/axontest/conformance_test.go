package axontest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
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

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// ---- AXON.md 2.1: connection, headers, context, auth ----

// AXON.md 2.1: the context comes from AxonIQ-Context (legacy Context), "default" when absent; contexts are
// separate stores (as EE and 2023+ honour the header).
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
}

// AXON.md 2.1 and 2.9: with access control, a missing token is PERMISSION_DENIED AXONIQ-1000 and a wrong
// one AXONIQ-1001, for unary and streaming calls alike; the legacy Access-Token header is accepted.
func TestAccessToken(t *testing.T) {
	s := axontest.NewServer(t, axontest.WithAccessToken("secret"))
	cases := []struct {
		name     string
		md       []string
		axonCode string
	}{
		{"missing", nil, "AXONIQ-1000"},
		{"wrong", []string{"AxonIQ-Access-Token", "guess"}, "AXONIQ-1001"},
		{"ok", []string{"AxonIQ-Access-Token", "secret"}, ""},
		{"legacy header", []string{"Access-Token", "secret"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ctx := connect(t, s, tc.md...)
			var trailer metadata.MD
			_, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{}, grpc.Trailer(&trailer))
			_, appendTrailer, appendErr := appendTxn(ctx, c, nonDomain("", 0))
			stream := listStream(t, ctx, c, 0, 10)
			r := startRecv(stream)
			if tc.axonCode == "" {
				require.NoError(t, err)
				require.NoError(t, appendErr)
				r.event(t)
				return
			}
			requireAxonError(t, err, trailer, codes.PermissionDenied, tc.axonCode)
			requireAxonError(t, appendErr, appendTrailer, codes.PermissionDenied, tc.axonCode)
			requireAxonError(t, r.end(t, 5*time.Second), stream.Trailer(), codes.PermissionDenied, tc.axonCode)
		})
	}
	assert.Equal(t, 2, s.EventCount("default"), "refused appends store nothing")
}

// AXON.md 2.1 and 2.9: a server that limits its contexts (EE) refuses others with NOT_FOUND AXONIQ-1302.
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

// AXON.md 2.1: the server accepts messages up to max-message-size (4 MiB by default, per Event in
// AppendEvent) and refuses larger ones with RESOURCE_EXHAUSTED and no Axon code; it does not cap what it
// sends.
func TestMaxMessageSize(t *testing.T) {
	big := func(size int) []byte {
		return eventgen.Encode(&eventgen.Event{PayloadType: "blob", PayloadData: bytes.Repeat([]byte{0xab}, size)})
	}
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	_, tr, err := appendTxn(ctx, c, big(100), big(axontest.DefaultMaxMessageSize))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Empty(t, tr.Get("AxonIQ-ErrorCode"))
	assert.Equal(t, 0, s.EventCount("default"), "the whole transaction is refused")
	mustAppend(t, ctx, c, big(axontest.DefaultMaxMessageSize-100))

	// Outbound is not capped: a 6 MiB event stored elsewhere is served.
	require.NoError(t, s.Load("default", [][]byte{big(6 << 20)}))
	r := startRecv(listStream(t, ctx, c, 1, 1))
	assert.Len(t, r.event(t).Event.Payload.Data, 6<<20)

	s2 := axontest.NewServer(t, axontest.WithMaxMessageSize(8<<20))
	c2, ctx2 := connect(t, s2)
	mustAppend(t, ctx2, c2, big(6<<20))
}

// AXON.md 2.1: the server accepts client keepalive pings no more often than every second, also without
// active calls; a client pinging faster gets GOAWAY "too_many_pings" (ENHANCE_YOUR_CALM). Checked on the
// raw HTTP/2 connection, because gRPC-Go's client refuses to ping more often than every 10 s.
func TestKeepalivePolicy(t *testing.T) {
	t.Parallel()
	s := axontest.NewServer(t)
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
			require.NoError(t, err)
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
	assert.Nil(t, pingAll(1100*time.Millisecond, 4), "pings every 1.1 s, without any call, are accepted")
}

// ---- AXON.md 2.2: ListEvents ----

// AXON.md 2.2: tracking_token is the first token delivered (inclusive); tokens are assigned from 0.
func TestListEventsInclusiveStart(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	for i := range 6 {
		mustAppend(t, ctx, c, ev("a", int64(i)))
	}
	r := startRecv(listStream(t, ctx, c, 3, 100))
	assert.Equal(t, []int64{3, 4, 5}, r.tokens(t, 3))
	r = startRecv(listStream(t, ctx, c, 0, 100))
	assert.Equal(t, tokens(0, 5), r.tokens(t, 6))
}

// AXON.md 2.2: a start token below the first stored token fails (AXONIQ-0001, "token before start of
// event store").
func TestListEventsTokenBeforeStart(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	stream := listStream(t, ctx, c, -1, 10)
	err := startRecv(stream).end(t, 5*time.Second)
	msg := requireAxonError(t, err, stream.Trailer(), codes.Canceled, "AXONIQ-0001")
	assert.Contains(t, msg, "before start of event store")

	require.NoError(t, s.Load("default", [][]byte{ev("a", 0), ev("a", 1), ev("a", 2)}))
	require.NoError(t, s.RemoveBefore("default", 2))
	first, err := c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), first.Token)
	stream = listStream(t, ctx, c, 1, 10)
	requireAxonError(t, startRecv(stream).end(t, 5*time.Second), stream.Trailer(), codes.Canceled, "AXONIQ-0001")
	assert.Equal(t, []int64{2}, startRecv(listStream(t, ctx, c, 2, 10)).tokens(t, 1))
}

// AXON.md 2.2: every request adds its permits, only the first request's tracking_token counts, and
// nothing is sent at 0 permits.
func TestListEventsPermitsAddUp(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	var evs [][]byte
	for i := range 20 {
		evs = append(evs, ev("a", int64(i)))
	}
	require.NoError(t, s.Load("default", evs))
	stream := listStream(t, ctx, c, 0, 2)
	r := startRecv(stream)
	assert.Equal(t, []int64{0, 1}, r.tokens(t, 2))
	r.nothingFor(t, 200*time.Millisecond)

	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{TrackingToken: 15, NumberOfPermits: 2}))
	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 1}))
	assert.Equal(t, []int64{2, 3, 4}, r.tokens(t, 3), "later tracking tokens are ignored")
	r.nothingFor(t, 200*time.Millisecond)
}

// AXON.md 1.3 and 2.2: the server casts number_of_permits to a 32-bit int.
func TestListEventsPermitsAre32Bit(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0), ev("a", 1), ev("a", 2), ev("a", 3)}))
	r := startRecv(listStream(t, ctx, c, 0, 1<<32+2))
	assert.Equal(t, []int64{0, 1}, r.tokens(t, 2))
	r.nothingFor(t, 200*time.Millisecond)
}

// AXON.md 2.2: sending happens in rounds of at most 500 events, which a large permit window spans.
func TestListEventsManyRounds(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	evs := eventgen.New(1, eventgen.Options{}).Generate(1234)
	require.NoError(t, s.Load("default", evs))
	r := startRecv(listStream(t, ctx, c, 0, 5000))
	assert.Equal(t, tokens(0, 1233), r.tokens(t, 1234))
}

// AXON.md 2.2: blacklisted payload types (and revisions) are skipped, also when a later request adds
// them; after 1000 skipped in a row one is sent anyway.
func TestListEventsBlacklist(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	typed := func(typ, revision string) []byte {
		return eventgen.Encode(&eventgen.Event{PayloadType: typ, PayloadRevision: revision, PayloadData: []byte("x")})
	}
	var evs [][]byte
	for range 1500 {
		evs = append(evs, typed("Noise", ""))
	}
	evs = append(evs, typed("Noise", "2"), typed("Signal", ""), typed("Later", ""), typed("Signal", ""))
	require.NoError(t, s.Load("default", evs))
	stream, err := c.ListEvents(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 3,
		Blacklist: []*axonpb.PayloadDescription{{Type: "Noise"}}}))
	r := startRecv(stream)
	// 0..999 skipped, 1000 forced out, 1001..1499 skipped; another revision is not blacklisted.
	assert.Equal(t, []int64{1000, 1500, 1501}, r.tokens(t, 3))
	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 5,
		Blacklist: []*axonpb.PayloadDescription{{Type: "Later"}}}))
	assert.Equal(t, []int64{1503}, r.tokens(t, 1))
	r.nothingFor(t, 100*time.Millisecond)
}

// AXON.md 2.2: at the head the stream stays open and delivers events appended later, only once they are
// committed.
func TestListEventsStaysOpenAtHead(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	mustAppend(t, ctx, c, ev("a", 0))
	r := startRecv(listStream(t, ctx, c, 0, 100))
	assert.Equal(t, []int64{0}, r.tokens(t, 1))
	r.nothingFor(t, 200*time.Millisecond)

	// A transaction still open (not half-closed) is invisible.
	open, err := c.AppendEvent(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, open.SendMsg(&rawMsg{ev("b", 0)}))
	r.nothingFor(t, 200*time.Millisecond)

	mustAppend(t, ctx, c, ev("a", 1), ev("a", 2))
	assert.Equal(t, []int64{1, 2}, r.tokens(t, 2))
	_, err = open.CloseAndRecv()
	require.NoError(t, err)
	assert.Equal(t, []int64{3}, r.tokens(t, 1))
}

// AXON.md 2.2: a stream at 0 permits for longer than new-permits-timeout is closed with AXONIQ-0001
// "Timeout waiting for permits from client".
func TestListEventsPermitTimeout(t *testing.T) {
	s := axontest.NewServer(t, axontest.WithPermitTimeout(300*time.Millisecond))
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0), ev("a", 1)}))
	stream := listStream(t, ctx, c, 0, 1)
	r := startRecv(stream)
	assert.Equal(t, []int64{0}, r.tokens(t, 1))
	start := time.Now()
	msg := requireAxonError(t, r.end(t, 5*time.Second), stream.Trailer(), codes.Canceled, "AXONIQ-0001")
	assert.Equal(t, "Timeout waiting for permits from client", msg)
	assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)

	// Permits topped up in time keep the stream alive, even at the head with permits left.
	stream = listStream(t, ctx, c, 0, 1)
	r = startRecv(stream)
	for i := range 3 {
		time.Sleep(150 * time.Millisecond)
		require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 1}), "round %d", i)
	}
	assert.Equal(t, []int64{0, 1}, r.tokens(t, 2))
	r.nothingFor(t, 500*time.Millisecond)
}

// AXON.md 2.2: a client half-close makes the server complete the stream (status OK).
func TestListEventsHalfClose(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	require.NoError(t, s.Load("default", [][]byte{ev("a", 0)}))
	stream := listStream(t, ctx, c, 0, 10)
	r := startRecv(stream)
	assert.Equal(t, []int64{0}, r.tokens(t, 1))
	require.NoError(t, stream.CloseSend())
	assert.ErrorIs(t, r.end(t, 5*time.Second), io.EOF)

	// Cancelling works too.
	cctx, cancel := context.WithCancel(ctx)
	r = startRecv(listStream(t, cctx, c, 0, 10))
	r.tokens(t, 1)
	cancel()
	assert.Equal(t, codes.Canceled, status.Code(r.end(t, 5*time.Second)))
}

// AXON.md 1.3 and 2.2: EventWithToken omits field 1 when the token is 0, and carries the stored event
// bytes unchanged.
func TestListEventsFrames(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	evs := eventgen.New(5, eventgen.Options{}).Generate(50)
	mustAppend(t, ctx, c, evs...)
	stream, err := c.ListEvents(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 100}))
	for i := range evs {
		var m rawMsg
		require.NoError(t, stream.RecvMsg(&m))
		want := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), evs[i])
		if i > 0 {
			tok := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(i))
			want = append(tok, want...)
		}
		require.Equal(t, want, m.b, "frame of token %d", i)
	}
}

// ---- AXON.md 2.3: AppendEvent ----

// AXON.md 2.3: one call is one transaction; tokens are consecutive from 0 in send order, across calls.
func TestAppendTransaction(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	resp, _, err := appendTxn(ctx, c, ev("a", 0), nonDomain("", 0), ev("b", 0), ev("a", 1))
	require.NoError(t, err)
	assert.True(t, resp.Success)
	mustAppend(t, ctx, c, ev("b", 1))
	stored := s.Events("default")
	require.Len(t, stored, 5)
	for i, want := range [][]byte{ev("a", 0), nonDomain("", 0), ev("b", 0), ev("a", 1), ev("b", 1)} {
		assert.Equal(t, int64(i), stored[i].Token)
		assert.Equal(t, want, stored[i].Raw)
	}
}

// AXON.md 2.3: an empty call succeeds and stores nothing.
func TestAppendEmpty(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	resp, _, err := appendTxn(ctx, c)
	require.NoError(t, err)
	assert.True(t, resp.Success)
	assert.Equal(t, 0, s.EventCount("default"))
}

// AXON.md 2.3: a client cancel before the half-close stores nothing.
func TestAppendCancelled(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	cctx, cancel := context.WithCancel(ctx)
	stream, err := c.AppendEvent(cctx, raw)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, stream.SendMsg(&rawMsg{ev("a", int64(i))}))
	}
	time.Sleep(100 * time.Millisecond) // let the server receive them
	cancel()
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, 0, s.EventCount("default"))
	mustAppend(t, ctx, c, ev("a", 0)) // and no sequence was reserved
}

// AXON.md 2.3: sequence validation of domain events, all-or-nothing, with Axon Server's message.
func TestAppendSequenceValidation(t *testing.T) {
	cases := []struct {
		name   string
		stored [][]byte
		txn    [][]byte
		msg    string // "" = accepted
	}{
		{"new aggregate starts at 0", nil, [][]byte{ev("a", 0), ev("a", 1)}, ""},
		{"new aggregate at 1", nil, [][]byte{ev("a", 1)}, "Invalid sequence number 1 for aggregate a, expected 0"},
		{"gap in transaction", nil, [][]byte{ev("a", 0), ev("a", 2)}, "Invalid sequence number 2 for aggregate a, expected 1"},
		{"repeat in transaction", nil, [][]byte{ev("a", 0), ev("a", 0)}, "Invalid sequence number 0 for aggregate a, expected 1"},
		{"interleaved aggregates", nil, [][]byte{ev("a", 0), ev("b", 0), ev("a", 1), ev("b", 1)}, ""},
		{"continues stored", [][]byte{ev("a", 0), ev("a", 1)}, [][]byte{ev("a", 2)}, ""},
		{"duplicate of stored", [][]byte{ev("a", 0), ev("a", 1)}, [][]byte{ev("a", 1)}, "Invalid sequence number 1 for aggregate a, expected 2"},
		{"gap after stored", [][]byte{ev("a", 0)}, [][]byte{ev("a", 3)}, "Invalid sequence number 3 for aggregate a, expected 1"},
		{"non-domain not validated", [][]byte{ev("a", 0)}, [][]byte{nonDomain("a", 7), nonDomain("", 0), nonDomain("", 0)}, ""},
		{"non-domain does not count", [][]byte{nonDomain("a", 0)}, [][]byte{ev("a", 0)}, ""},
		{"all or nothing", nil, [][]byte{nonDomain("", 0), ev("b", 0), ev("a", 5)}, "Invalid sequence number 5 for aggregate a, expected 0"},
		// Checked event by event in send order: the first violation is the one reported.
		{"first violation in send order", [][]byte{ev("a", 0), ev("a", 1)}, [][]byte{ev("a", 5), ev("b", 0), ev("b", 2)}, "Invalid sequence number 5 for aggregate a, expected 2"},
		{"in-transaction gap before stored mismatch", [][]byte{ev("a", 0)}, [][]byte{ev("b", 0), ev("b", 2), ev("a", 3)}, "Invalid sequence number 2 for aggregate b, expected 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := axontest.NewServer(t)
			c, ctx := connect(t, s)
			if tc.stored != nil {
				mustAppend(t, ctx, c, tc.stored...)
			}
			_, tr, err := appendTxn(ctx, c, tc.txn...)
			if tc.msg == "" {
				require.NoError(t, err)
				assert.Equal(t, len(tc.stored)+len(tc.txn), s.EventCount("default"))
				return
			}
			msg := requireAxonError(t, err, tr, codes.OutOfRange, "AXONIQ-2000")
			assert.Equal(t, tc.msg, msg)
			assert.Equal(t, len(tc.stored), s.EventCount("default"))
		})
	}
}

// AXON.md 2.3: concurrent transactions each get consecutive tokens, and the sequence check sees the other
// transactions: of two racing to create the same aggregate, one fails.
func TestAppendConcurrent(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	const writers, txns, size = 8, 10, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("agg-%d", w)
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
	stored := s.Events("default")
	require.Len(t, stored, writers*txns*size)
	for i := 0; i < len(stored); i += size {
		var first axonpb.Event
		require.NoError(t, proto.Unmarshal(stored[i].Raw, &first))
		require.Zero(t, first.AggregateSequenceNumber%size, "transaction starts at token %d", i)
		for j := range size {
			var e axonpb.Event
			require.NoError(t, proto.Unmarshal(stored[i+j].Raw, &e))
			assert.Equal(t, first.AggregateIdentifier, e.AggregateIdentifier)
			assert.Equal(t, first.AggregateSequenceNumber+int64(j), e.AggregateSequenceNumber)
		}
	}

	var failed, ok int
	var mu sync.Mutex
	for range 5 {
		wg.Go(func() {
			_, _, err := appendTxn(ctx, c, ev("race", 0), ev("race", 1))
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
}

// AXON.md 2.3: what is appended must parse as an Event; a transaction with a malformed message or invalid
// UTF-8 in a string field is refused whole.
func TestAppendNotAnEvent(t *testing.T) {
	badUTF8 := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "a\xffb")
	badMeta := eventgen.Encode(&eventgen.Event{Metadata: []eventgen.Meta{{Key: "k", Kind: eventgen.Text, Text: "\xc0"}}})
	for name, bad := range map[string][]byte{
		"garbage":            {0xff, 0xff, 0xff},
		"truncated":          ev("a", 0)[:10],
		"invalid utf-8":      badUTF8,
		"invalid utf-8 meta": badMeta,
	} {
		t.Run(name, func(t *testing.T) {
			s := axontest.NewServer(t)
			c, ctx := connect(t, s)
			_, _, err := appendTxn(ctx, c, ev("a", 0), bad)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			assert.Equal(t, 0, s.EventCount("default"))
		})
	}
}

// AXON.md 2.3: the server assigns nothing and checks nothing else: empty ids, zero timestamps, unsorted
// metadata, edge values all come back byte for byte, through ListEvents as through ListAggregateEvents.
func TestAppendPreservesBytes(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	evs := eventgen.New(9, eventgen.Options{Aggregates: 20}).Generate(300)
	// Nothing assigned or checked: an empty message id, no timestamp, an empty event.
	evs = append(evs, eventgen.Encode(&eventgen.Event{AggregateID: "x", AggregateType: "X", PayloadType: "t"}), []byte{})
	mustAppend(t, ctx, c, evs[:100]...)
	mustAppend(t, ctx, c, evs[100:]...)
	for i, e := range s.Events("default") {
		require.Equal(t, evs[i], e.Raw)
	}
	stream, err := c.ListEvents(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{NumberOfPermits: 1000}))
	for i := range evs {
		var m rawMsg
		require.NoError(t, stream.RecvMsg(&m))
		var e axonpb.EventWithToken
		require.NoError(t, proto.Unmarshal(m.b, &e))
		got, err := proto.Marshal(e.Event)
		require.NoError(t, err)
		assert.Len(t, got, len(evs[i]))
		assert.True(t, bytes.HasSuffix(m.b, evs[i]), "event %d served as stored", i)
	}
}

// AXON.md 1.2 and 2.3: the confirmation is success=true, readable as Confirmation and as
// ConfirmationWithConsistencyMarker; a marker, when a server sends one, is field 2.
func TestAppendConfirmation(t *testing.T) {
	for _, kind := range []axontest.Confirmation{axontest.ConfirmationPlain, axontest.ConfirmationWithMarker} {
		s := axontest.NewServer(t, axontest.WithConfirmation(kind))
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
		if kind == axontest.ConfirmationWithMarker {
			assert.Equal(t, int64(1), marked.ConsistencyMarker.GetToken())
		} else {
			assert.Equal(t, []byte{0x08, 0x01}, reply.b)
		}
	}
}

// AXON.md 2.3 and 2.9: a limit on events per transaction (EE) answers AXONIQ-2002.
func TestAppendTooManyEvents(t *testing.T) {
	s := axontest.NewServer(t, axontest.WithMaxEventsPerTransaction(2))
	c, ctx := connect(t, s)
	mustAppend(t, ctx, c, ev("a", 0), ev("a", 1))
	_, tr, err := appendTxn(ctx, c, ev("a", 2), ev("a", 3), ev("a", 4))
	requireAxonError(t, err, tr, codes.InvalidArgument, "AXONIQ-2002")
	assert.Equal(t, 2, s.EventCount("default"))
}

// ---- AXON.md 2.4: AppendSnapshot ----

// AXON.md 2.4: a snapshot's sequence must not exceed the aggregate's last event sequence (-1 without
// events), unless the check is disabled; snapshots live apart from events.
func TestAppendSnapshot(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	var trailer metadata.MD
	_, err := c.AppendSnapshot(ctx, mustEvent(t, snapshot("a", 0)), grpc.Trailer(&trailer))
	msg := requireAxonError(t, err, trailer, codes.OutOfRange, "AXONIQ-2000")
	assert.Equal(t, "Invalid sequence number while storing snapshot. Highest aggregate a sequence number: -1, snapshot sequence 0.", msg)

	mustAppend(t, ctx, c, ev("a", 0), ev("a", 1), ev("a", 2))
	_, err = c.AppendSnapshot(ctx, mustEvent(t, snapshot("a", 3)), grpc.Trailer(&trailer))
	requireAxonError(t, err, trailer, codes.OutOfRange, "AXONIQ-2000")
	for _, seq := range []int64{2, 0, 1} { // no ordering or uniqueness check
		resp, err := c.AppendSnapshot(ctx, mustEvent(t, snapshot("a", seq)))
		require.NoError(t, err)
		assert.True(t, resp.Success)
	}
	assert.Equal(t, 3, s.SnapshotCount("default"))
	assert.Equal(t, 3, s.EventCount("default"), "snapshots are not events")
	r := startRecv(listStream(t, ctx, c, 0, 10))
	assert.Equal(t, []int64{0, 1, 2}, r.tokens(t, 3))
	r.nothingFor(t, 100*time.Millisecond)

	unchecked := axontest.NewServer(t, axontest.WithCheckSnapshotSequence(false))
	c2, ctx2 := connect(t, unchecked)
	_, err = c2.AppendSnapshot(ctx2, mustEvent(t, snapshot("x", 42)))
	require.NoError(t, err)
}

// AXON.md 2.4: snapshots are stored as received, and one with an empty aggregate type is stored but can
// never be read back by aggregate.
func TestAppendSnapshotStorage(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	mustAppend(t, ctx, c, ev("a", 0))
	untyped := eventgen.Encode(&eventgen.Event{AggregateID: "a", PayloadType: "Order"})
	cc := connectCC(t, s)
	for _, snap := range [][]byte{snapshot("a", 0), untyped} {
		var reply rawMsg
		require.NoError(t, cc.Invoke(ctx, axonpb.EventStore_AppendSnapshot_FullMethodName, &rawMsg{snap}, &reply, raw))
		assert.Equal(t, []byte{0x08, 0x01}, reply.b)
	}
	assert.Equal(t, [][]byte{snapshot("a", 0), untyped}, s.Snapshots("default"))
	snaps := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: "a", MaxSequence: math.MaxInt64})
	assert.Len(t, snaps, 1)
}

// ---- AXON.md 2.5: ListAggregateEvents ----

// AXON.md 2.5: initial_sequence inclusive, max_sequence exclusive (0 = unlimited), domain events only,
// served as stored.
func TestListAggregateEvents(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	for i := range 10 {
		mustAppend(t, ctx, c, ev("a", int64(i)), nonDomain("a", int64(i)), ev(fmt.Sprint("other", i), 0))
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
		t.Run(fmt.Sprintf("%d-%d", tc.initial, tc.max), func(t *testing.T) {
			got := listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "a", InitialSequence: tc.initial, MaxSequence: tc.max})
			var seqs []int64
			for _, b := range got {
				e := mustEvent(t, b)
				assert.Equal(t, "Order", e.AggregateType)
				assert.Equal(t, ev("a", e.AggregateSequenceNumber), b)
				seqs = append(seqs, e.AggregateSequenceNumber)
			}
			assert.Equal(t, tc.want, seqs)
		})
	}
	assert.Empty(t, listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "unknown"}))
}

// AXON.md 2.5: with allow_snapshots the newest snapshot in range comes first, flagged, then the events
// after it.
func TestListAggregateEventsWithSnapshot(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	var evs [][]byte
	for i := range 10 {
		evs = append(evs, ev("a", int64(i)))
	}
	mustAppend(t, ctx, c, evs...)
	require.NoError(t, s.LoadSnapshots("default", [][]byte{snapshot("a", 3), snapshot("a", 6)}))

	seqsOf := func(bs [][]byte) (out []string) {
		for _, b := range bs {
			e := mustEvent(t, b)
			out = append(out, fmt.Sprintf("%d%s", e.AggregateSequenceNumber, map[bool]string{true: "s"}[e.Snapshot]))
		}
		return out
	}
	got := listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "a", AllowSnapshots: true})
	assert.Equal(t, []string{"6s", "7", "8", "9"}, seqsOf(got))
	got = listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "a", AllowSnapshots: true, MaxSequence: 6})
	assert.Equal(t, []string{"3s", "4", "5"}, seqsOf(got))
	got = listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "a", AllowSnapshots: true, InitialSequence: 7})
	assert.Equal(t, []string{"7", "8", "9"}, seqsOf(got))
	got = listAggregate(t, ctx, c, &axonpb.GetAggregateEventsRequest{AggregateId: "a"})
	assert.Len(t, got, 10)
}

// ---- AXON.md 2.6: ListAggregateSnapshots ----

// AXON.md 2.6: newest stored first, snapshot=true set by re-encoding, initial <= seq < max, max <= 0
// returns nothing, max_results limits the entries examined.
func TestListAggregateSnapshots(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	var evs [][]byte
	for i := range 40 {
		evs = append(evs, ev("a", int64(i)))
	}
	mustAppend(t, ctx, c, evs...)
	stored := [][]byte{snapshot("a", 9), snapshot("a", 29), snapshot("a", 19)}
	require.NoError(t, s.LoadSnapshots("default", stored))

	all := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: "a", MaxSequence: math.MaxInt64})
	require.Len(t, all, 3)
	for i, want := range []int{2, 1, 0} { // newest stored first
		assert.Equal(t, append(append([]byte{}, stored[want]...), 0x40, 0x01), all[i], "snapshot %d: stored bytes plus snapshot=true", i)
		assert.True(t, mustEvent(t, all[i]).Snapshot)
	}
	cases := []struct {
		name       string
		initial    int64
		max        int64
		maxResults int32
		want       []int64
	}{
		{"all", 0, math.MaxInt64, 0, []int64{19, 29, 9}},
		{"max exclusive", 0, 29, 0, []int64{19, 9}},
		{"initial inclusive", 19, math.MaxInt64, 0, []int64{19, 29}},
		{"max 0", 0, 0, 0, nil},
		{"max negative", -10, -1, 0, nil},
		{"max results 2", 0, math.MaxInt64, 2, []int64{19, 29}},
		{"max results counts filtered entries", 0, 19, 1, nil},
		{"max results negative", 0, math.MaxInt64, -5, []int64{19, 29, 9}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := listSnapshots(t, ctx, c, &axonpb.GetAggregateSnapshotsRequest{AggregateId: "a",
				InitialSequence: tc.initial, MaxSequence: tc.max, MaxResults: tc.maxResults})
			var seqs []int64
			for _, b := range got {
				seqs = append(seqs, mustEvent(t, b).AggregateSequenceNumber)
			}
			assert.Equal(t, tc.want, seqs)
		})
	}
}

// ---- AXON.md 2.7: token RPCs and ReadHighestSequenceNr ----

// AXON.md 2.7: the empty-store answers.
func TestTokensEmptyStore(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	first, err := c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
	require.NoError(t, err)
	last, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	at, err := c.GetTokenAt(ctx, &axonpb.GetTokenAtRequest{Instant: 1700000000000})
	require.NoError(t, err)
	seq, err := c.ReadHighestSequenceNr(ctx, &axonpb.ReadHighestSequenceNrRequest{AggregateId: "a"})
	require.NoError(t, err)
	assert.Equal(t, int64(0), first.Token)
	assert.Equal(t, int64(-1), last.Token)
	assert.Equal(t, int64(-1), at.Token)
	assert.Equal(t, int64(-1), seq.ToSequenceNr)
}

// AXON.md 2.7: answers on a filled store; only domain events count for ReadHighestSequenceNr.
func TestTokensFilledStore(t *testing.T) {
	s := axontest.NewServer(t)
	c, ctx := connect(t, s)
	stamp := func(ts int64) []byte { return eventgen.Encode(&eventgen.Event{PayloadType: "t", Timestamp: ts}) }
	// Timestamps are client-supplied and not monotonic.
	mustAppend(t, ctx, c, stamp(1000), stamp(2000), stamp(1500), stamp(3000), ev("a", 0), ev("a", 1), nonDomain("a", 9))

	first, err := c.GetFirstToken(ctx, &axonpb.GetFirstTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, int64(0), first.Token)
	last, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	assert.Equal(t, int64(6), last.Token)
	seq, err := c.ReadHighestSequenceNr(ctx, &axonpb.ReadHighestSequenceNrRequest{AggregateId: "a", FromSequenceNr: 5})
	require.NoError(t, err)
	assert.Equal(t, int64(1), seq.ToSequenceNr)

	// The store reads as one segment whose first event is dated 1000 (see store.tokenAt).
	for _, tc := range []struct{ instant, want int64 }{
		{500, 0},           // before the first event: the first token
		{1000, 0},          // the first event dated at or after the instant
		{1200, 1},          // ...
		{1700, 1},          // token 1 (2000) comes before token 2 (1500)
		{2500, 3},          // 3000
		{1700000000000, 4}, // ev("a", 0) is dated 1700000000000
		{1800000000000, 7}, // none: last token + 1
	} {
		at, err := c.GetTokenAt(ctx, &axonpb.GetTokenAtRequest{Instant: tc.instant})
		require.NoError(t, err)
		assert.Equal(t, tc.want, at.Token, "instant %d", tc.instant)
	}
}

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
