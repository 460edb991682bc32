package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axonclient"
)

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{mu: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--load", "1000", "--snapshots", "--access-token", "t"}, out, out)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "listening on 127.0.0.1:") },
		10*time.Second, 10*time.Millisecond)
	assert.Contains(t, out.String(), "loaded 1000 events")
	assert.Contains(t, out.String(), "access token required")

	// It serves over TCP what it loaded, to callers with the token only.
	addr := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())[1]
	conn, err := axonclient.Dial(ctx, axonclient.Config{Address: addr, Token: "t"})
	require.NoError(t, err)
	defer conn.Close()
	last, err := conn.LastToken(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(999), last)
	anon, err := axonclient.Dial(ctx, axonclient.Config{Address: addr})
	require.NoError(t, err)
	defer anon.Close()
	_, err = anon.LastToken(ctx)
	require.ErrorIs(t, err, axonclient.ErrUnauthorized)
	cancel()
	require.NoError(t, <-done)
}

func TestRunBadArguments(t *testing.T) {
	var out bytes.Buffer
	require.Error(t, run(context.Background(), []string{"extra"}, &out, &out))
	require.Error(t, run(context.Background(), []string{"--nope"}, &out, &out))
	require.Error(t, run(context.Background(), []string{"--tls-cert", "missing.pem", "--tls-key", "missing.pem"}, &out, &out))
}
