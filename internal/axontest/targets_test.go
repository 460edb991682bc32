package axontest_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/realserver"
)

// The conformance table: every row that makes sense on both runs against the double and against the real
// Axon Server SE (internal/realserver), through gRPC only, and the answers the row records with note must
// be the same on both. Rows only the double can play (fault injection, EE's contexts and limits, its own
// instrumentation) say why they stay double-only.
//
// Real servers are slow to start, so rows share one: sharedProps is the server the rows use (unique
// aggregate ids, tokens read relative to the head); the row that needs an empty store runs first, while the
// shared server is still empty (else it takes a Fresh one); access control has a server of its own.

// sharedProps: a short permit timeout, checked often, so that the permit-timeout row runs in seconds.
var sharedProps = []string{"axoniq.axonserver.new-permits-timeout=1000", "axoniq.axonserver.event-processor-permits-check=200"}

// The access tokens of the access-control server; SE refuses to start with access control but no admin token.
const (
	appToken   = "app-secret"
	adminToken = "admin-secret"
)

var accessProps = []string{"axoniq.axonserver.accesscontrol.enabled=true",
	"axoniq.axonserver.accesscontrol.token=" + appToken, "axoniq.axonserver.accesscontrol.admin-token=" + adminToken}

func TestMain(m *testing.M) {
	// Start the real servers while the double-only rows run.
	realserver.Warm(sharedProps...)
	realserver.Warm(accessProps...)
	os.Exit(realserver.Main(m))
}

// target is one server a row runs against.
type target struct {
	server
	real   bool
	prefix string // unique per row, the same on both targets: aggregate ids of this row start with it

	mu    sync.Mutex
	notes []string
}

// id returns an aggregate id of this row.
func (tg *target) id(name string) string { return tg.prefix + name }

// note records an answer that must be the same on the double and on the real server.
func (tg *target) note(format string, args ...any) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.notes = append(tg.notes, fmt.Sprintf(format, args...))
}

// setup says what a row needs of its servers.
type setup struct {
	fresh  bool              // an empty store (the shared real server while still empty, else a Fresh one)
	props  []string          // real server properties; sharedProps when nil
	double []axontest.Option // double options
}

var rowSeq atomic.Int64

// onBoth runs a row against the double and the real server, then checks that both noted the same answers.
func onBoth(t *testing.T, su setup, row func(t *testing.T, tg *target)) {
	t.Helper()
	prefix := fmt.Sprintf("%s#%d/", strings.ReplaceAll(t.Name(), "/", "."), rowSeq.Add(1))
	double := &target{prefix: prefix}
	real := &target{prefix: prefix, real: true}
	t.Run("double", func(t *testing.T) {
		double.server = axontest.NewServer(t, su.double...)
		row(t, double)
	})
	ranReal := t.Run("real", func(t *testing.T) {
		props := su.props
		if props == nil {
			props = sharedProps
		}
		shared := realserver.Shared(t, props...)
		real.server = shared
		if su.fresh {
			// The shared server starts empty: a row that needs an empty store and runs first saves a start.
			if c, ctx := connect(t, shared); head(t, ctx, c) != -1 {
				real.server = realserver.Fresh(t, props...)
			}
		}
		row(t, real)
	})
	if ranReal && real.server != nil && !t.Failed() {
		assert.Equal(t, real.notes, double.notes, "the double answers as the real server")
	}
}

// head returns the last token of the default context (-1 when empty).
func head(t *testing.T, ctx context.Context, c axonpb.EventStoreClient) int64 {
	t.Helper()
	last, err := c.GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	return last.Token
}

// readRaw reads n events from token from on, as the frames the server sent.
func readRaw(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, from int64, n int) [][]byte {
	t.Helper()
	stream, err := c.ListEvents(ctx, raw)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&axonpb.GetEventsRequest{TrackingToken: from, NumberOfPermits: int64(n)}))
	var out [][]byte
	for range n {
		var m rawMsg
		require.NoError(t, stream.RecvMsg(&m))
		out = append(out, m.b)
	}
	require.NoError(t, stream.CloseSend())
	return out
}

// eventsFrom reads n events from token from on and returns their tokens and event bytes.
func eventsFrom(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, from int64, n int) ([]int64, [][]byte) {
	t.Helper()
	var toks []int64
	var evs [][]byte
	for _, f := range readRaw(t, ctx, c, from, n) {
		tok, ev := splitFrame(t, f)
		toks = append(toks, tok)
		evs = append(evs, ev)
	}
	return toks, evs
}

// highest is ReadHighestSequenceNr.
func highest(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, id string) int64 {
	t.Helper()
	r, err := c.ReadHighestSequenceNr(ctx, &axonpb.ReadHighestSequenceNrRequest{AggregateId: id})
	require.NoError(t, err)
	return r.ToSequenceNr
}

// appendSnapshots stores snapshots one by one through AppendSnapshot.
func appendSnapshots(t *testing.T, ctx context.Context, c axonpb.EventStoreClient, snaps ...[]byte) {
	t.Helper()
	for _, s := range snaps {
		_, err := c.AppendSnapshot(ctx, mustEvent(t, s))
		require.NoError(t, err)
	}
}

var maxSeq int64 = math.MaxInt64
