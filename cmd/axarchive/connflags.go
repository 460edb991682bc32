package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/axarchive/axarchive/internal/axonclient"
)

// tokenEnv is read when neither --access-token nor --access-token-file is given, so that a token never
// has to appear on a command line (where ps and shell history see it).
const tokenEnv = "AXONIQ_ACCESS_TOKEN"

// connFlags are the flags of every command that talks to Axon Server.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Usage: "Axon Server gRPC address `HOST[:PORT]` (default port 8124)"},
		&cli.StringFlag{Name: "context", Value: "default", Usage: "Axon Server context (`NAME`)"},
		&cli.StringFlag{Name: "access-token", Usage: "access token (prefer --access-token-file or $" + tokenEnv + ")"},
		&cli.StringFlag{Name: "access-token-file", Usage: "read the access token from `FILE`"},
		&cli.BoolFlag{Name: "tls", Usage: "connect with TLS (implied by the other TLS flags)"},
		&cli.StringFlag{Name: "ca-cert", Usage: "trust the server certificate's issuer in `FILE` (PEM)"},
		&cli.StringFlag{Name: "client-cert", Usage: "client certificate `FILE` (PEM) for mutual TLS"},
		&cli.StringFlag{Name: "client-key", Usage: "client key `FILE` (PEM) for mutual TLS"},
		&cli.BoolFlag{Name: "tls-skip-verify", Usage: "do not verify the server's certificate (insecure)"},
		&cli.IntFlag{Name: "max-message-size", Value: 4 << 20, Usage: "the server's axoniq.axonserver.max-message-size in `BYTES`"},
	}
}

type connOptions struct {
	cfg axonclient.Config
}

func readConnFlags(c *cli.Context) (connOptions, error) {
	if c.String("server") == "" {
		return connOptions{}, usageErrorf("--server is required")
	}
	token, err := axonclient.LoadToken(c.String("access-token"), c.String("access-token-file"), tokenEnv)
	if err != nil {
		return connOptions{}, err
	}
	cfg := axonclient.Config{
		Address:            c.String("server"),
		Context:            c.String("context"),
		Token:              token,
		TLS:                c.Bool("tls"),
		CACertFile:         c.String("ca-cert"),
		ClientCertFile:     c.String("client-cert"),
		ClientKeyFile:      c.String("client-key"),
		InsecureSkipVerify: c.Bool("tls-skip-verify"),
	}
	if n := c.Int("max-message-size"); n > 0 {
		// The server's inbound limit is what an import must stay under; replies may be larger than
		// what we send, so the receive limit stays the client's generous default.
		cfg.MaxSendMsgSize = n + 64<<10
	}
	return connOptions{cfg: cfg}, nil
}

// reportRetries makes every retry of a read (the client layer retries idempotent reads while the server
// is unavailable) print a warning through warn, so that a flaky network is visible.
func (o *connOptions) reportRetries(warn func(string)) {
	o.cfg.Retry.OnRetry = func(op string, attempt int, wait time.Duration, err error) {
		warn(fmt.Sprintf("%v; retrying in %s (attempt %d)", err, wait.Round(time.Millisecond), attempt))
	}
}

func (o connOptions) dial(ctx context.Context, stderr io.Writer) (*axonclient.Conn, error) {
	if o.cfg.InsecureSkipVerify {
		fmt.Fprintln(stderr, "axarchive: warning: --tls-skip-verify: the server's certificate is NOT checked; anyone on the network path can read and alter what is exported or imported")
	}
	conn, err := axonclient.Dial(ctx, o.cfg)
	if err != nil {
		return nil, err
	}
	// Axon Server SE serves "default" whatever context a call names: an export would archive default's
	// events under another name, an import would land in default.
	if err := conn.CheckContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
