package realserver_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/realserver"
)

func TestMain(m *testing.M) { os.Exit(realserver.Main(m)) }

func lastToken(t *testing.T, s *realserver.Server) int64 {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last, err := axonpb.NewEventStoreClient(conn).GetLastToken(ctx, &axonpb.GetLastTokenRequest{})
	require.NoError(t, err)
	return last.Token
}

func appendOne(t *testing.T, s *realserver.Server) {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := axonpb.NewEventStoreClient(conn).AppendEvent(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&axonpb.Event{MessageIdentifier: "m1", Payload: &axonpb.SerializedObject{Type: "T"}}))
	_, err = stream.CloseAndRecv()
	require.NoError(t, err)
}

// A fresh server has an empty store, keeps its events over a kill -9 and a restart, and the pool hands the
// next test an empty store again.
func TestFreshServerLifecycle(t *testing.T) {
	var first *realserver.Server
	t.Run("use", func(t *testing.T) {
		s := realserver.Fresh(t)
		first = s
		require.Equal(t, int64(-1), lastToken(t, s))
		appendOne(t, s)
		require.Equal(t, int64(0), lastToken(t, s))
		require.NoError(t, s.Kill())
		require.NoError(t, s.Start())
		require.Equal(t, int64(0), lastToken(t, s), "events survive kill -9 and a restart")
		require.FileExists(t, s.ContextDir("default")+"/00000000000000000000.events")
	})
	t.Run("reuse", func(t *testing.T) {
		s := realserver.Fresh(t)
		require.Same(t, first, s, "the pool recycles the server instead of starting another")
		require.Equal(t, int64(-1), lastToken(t, s), "a recycled server has an empty store")
	})
}
