package axonclient_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
	"github.com/axarchive/axarchive/internal/realserver"
)

func TestMain(m *testing.M) { os.Exit(realserver.Main(m)) }

// The import sends a transaction's events while the one before it commits, trusting that a call that is
// not half-closed stores nothing however it ends (AXON.md 2.3): abandoned, or its connection closed as
// when the process dies. Checked against the real Axon Server and the double: the head does not move, and
// the aggregate's sequence numbers are not taken, so the same events commit afterwards.
func TestPendingAppendStoresNothingUntilCommit(t *testing.T) {
	targets := map[string]string{"double": axontest.NewServer(t).Addr()}
	if testing.Short() {
		t.Log("-short: the double only")
	} else {
		targets["real"] = realserver.Shared(t).Addr()
	}
	for name, addr := range targets {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dial := func() *axonclient.Conn {
				conn, err := axonclient.Dial(ctx, axonclient.Config{Address: addr, Context: "default"})
				require.NoError(t, err)
				return conn
			}
			conn := dial()
			defer conn.Close()
			head, err := conn.LastToken(ctx)
			require.NoError(t, err)
			aggregate := fmt.Sprintf("pending-%d", time.Now().UnixNano())
			events := make([][]byte, 3)
			for i := range events {
				events[i] = eventgen.Encode(&eventgen.Event{MessageID: fmt.Sprintf("%s-%d", aggregate, i), AggregateID: aggregate,
					AggregateSequence: int64(i), AggregateType: "Pending", Timestamp: 1, PayloadType: "p", PayloadData: []byte("x")})
			}

			p := conn.BeginAppend(ctx, events)
			time.Sleep(200 * time.Millisecond) // let the events reach the server (nothing to assert on: it must store none)
			p.Abandon()
			got, err := conn.LastToken(ctx)
			require.NoError(t, err)
			assert.Equal(t, head, got, "an abandoned call stored nothing")

			// The connection goes away with the call open, as when the process is killed.
			other := dial()
			other.BeginAppend(ctx, events)
			time.Sleep(200 * time.Millisecond)
			require.NoError(t, other.Close())
			time.Sleep(200 * time.Millisecond)
			got, err = conn.LastToken(ctx)
			require.NoError(t, err)
			assert.Equal(t, head, got, "a call cut off with its connection stored nothing")

			require.NoError(t, conn.BeginAppend(ctx, events).Commit(), "the sequence numbers are free")
			got, err = conn.LastToken(ctx)
			require.NoError(t, err)
			assert.Equal(t, head+3, got)
		})
	}
}
