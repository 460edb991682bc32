package axonclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Metadata keys Axon Server reads (gRPC lower-cases keys on the wire).
const (
	contextKey = "axoniq-context"
	tokenKey   = "axoniq-access-token"
)

// Conn is a connection to one context of one Axon Server. It is safe for concurrent use by multiple
// goroutines; the caller owns it and must Close it.
type Conn struct {
	cc   *grpc.ClientConn
	cfg  Config
	addr string
	md   []string // metadata pairs sent with every call

	mu      sync.Mutex
	hsErr   error // the last TLS handshake failure, cleared by a success or a failed TCP dial
	dialErr error // the last TCP dial failure, cleared by a success
	dialed  bool  // a TCP connection was established at least once
}

// Dial connects to Axon Server and waits, at most cfg.DialTimeout, for the connection to be ready; it does
// not call any RPC, so a bad token or unknown context shows up on the first call. It returns an *Error
// matching ErrUnavailable or ErrTLS when the server cannot be reached, or a plain error for an invalid
// configuration (unreadable certificate files, say).
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("dial axon server: %w", err)
	}
	c := &Conn{cfg: cfg, addr: cfg.Address, md: []string{contextKey, cfg.Context}}
	if cfg.Token != "" {
		c.md = append(c.md, tokenKey, cfg.Token)
	}

	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if cfg.useTLS() {
		tc, err := cfg.tlsConfig()
		if err != nil {
			return nil, fmt.Errorf("dial axon server %s: %w", cfg.Address, err)
		}
		creds = &trackingCreds{TransportCredentials: credentials.NewTLS(tc), c: c}
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay = 250 * time.Millisecond // quicker than gRPC's 1 s: a restarted server is back in seconds
	bo.MaxDelay = 5 * time.Second
	cc, err := grpc.NewClient("passthrough:///"+cfg.Address,
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(c.dial),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: cfg.DialTimeout}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                cfg.KeepaliveTime,
			Timeout:             cfg.KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.MaxRecvMsgSize),
			grpc.MaxCallSendMsgSize(cfg.MaxSendMsgSize),
		),
		grpc.WithChainUnaryInterceptor(c.unaryMetadata),
		grpc.WithChainStreamInterceptor(c.streamMetadata),
		grpc.WithUserAgent("axarchive"),
	)
	if err != nil {
		return nil, fmt.Errorf("dial axon server %s: %w", cfg.Address, err)
	}
	c.cc = cc
	if err := c.waitReady(ctx); err != nil {
		cc.Close()
		return nil, err
	}
	return c, nil
}

// waitReady connects and returns once the connection is ready, or with the first failure: gRPC would keep
// retrying in the background, but a person running a command wants to hear at once that the address is
// wrong.
func (c *Conn) waitReady(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	c.cc.Connect()
	for {
		s := c.cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return c.dialFailure(nil)
		}
		if !c.cc.WaitForStateChange(dctx, s) {
			if ctx.Err() != nil {
				return c.convert(ctx, "connect", ctx.Err(), nil, sending)
			}
			return c.dialFailure(fmt.Errorf("no connection after %s", c.cfg.DialTimeout))
		}
	}
}

// dialFailure words a failed connection attempt from what the dialer and the TLS handshake observed.
func (c *Conn) dialFailure(timeout error) error {
	c.mu.Lock()
	hsErr, dialErr, dialed := c.hsErr, c.dialErr, c.dialed
	c.mu.Unlock()
	e := &Error{Op: "connect", Code: codes.Unavailable, Address: c.addr, Context: c.cfg.Context, kind: ErrUnavailable}
	switch {
	case hsErr != nil:
		e.kind, e.Detail, e.cause = ErrTLS, hsErr.Error(), hsErr
	case dialErr != nil:
		e.Detail, e.cause = dialErr.Error(), dialErr
	case dialed && !c.cfg.useTLS():
		// TCP worked but the HTTP/2 handshake did not: typically a plaintext client talking to a TLS port.
		e.Detail = "the server closed the connection before the gRPC handshake completed"
		e.msg = fmt.Sprintf("server at %s closed the connection before the gRPC handshake completed (does it require TLS? check --tls)", c.addr)
	case timeout != nil:
		e.Detail, e.cause = timeout.Error(), timeout
	}
	return e
}

// dial opens the TCP connection and records the outcome for error messages.
func (c *Conn) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			c.dialErr = err
			c.hsErr = nil
		}
		return nil, err
	}
	c.dialErr = nil
	c.dialed = true
	return conn, nil
}

// handshakeErr returns the last TLS handshake failure, if the last connection attempt failed that way.
func (c *Conn) handshakeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hsErr
}

// trackingCreds records TLS handshake failures, which gRPC otherwise reports only as UNAVAILABLE with the
// cause in the message text.
type trackingCreds struct {
	credentials.TransportCredentials
	c *Conn
}

// ClientHandshake records the outcome, except failures caused by the connection being abandoned.
func (t *trackingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := t.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil || ctx.Err() == nil {
		t.c.mu.Lock()
		t.c.hsErr = err
		t.c.mu.Unlock()
	}
	return conn, info, err
}

// Clone keeps the recording.
func (t *trackingCreds) Clone() credentials.TransportCredentials {
	return &trackingCreds{TransportCredentials: t.TransportCredentials.Clone(), c: t.c}
}

// tlsConfig builds the client TLS configuration from the file settings.
func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, and the CLI warns
	}
	if c.CACertFile != "" {
		pem, err := os.ReadFile(c.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA certificates %s: no PEM certificate found", c.CACertFile)
		}
		tc.RootCAs = pool
	}
	if c.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", c.ClientCertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// unaryMetadata and streamMetadata add the context and token to every call. Plain metadata, rather than
// per-RPC credentials, because gRPC refuses credentials that require transport security on a plaintext
// connection, and Axon Server without TLS but with access control is common.
func (c *Conn) unaryMetadata(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(metadata.AppendToOutgoingContext(ctx, c.metadata(ctx)...), method, req, reply, cc, opts...)
}

func (c *Conn) streamMetadata(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(metadata.AppendToOutgoingContext(ctx, c.metadata(ctx)...), desc, cc, method, opts...)
}

// metadata returns the pairs a call carries: the connection's, with the context name replaced when the
// call's context says so (CheckContext's probe).
func (c *Conn) metadata(ctx context.Context) []string {
	name, ok := ctx.Value(contextOverride{}).(string)
	if !ok {
		return c.md
	}
	md := append([]string{}, c.md...)
	md[1] = name // md starts with the context pair (Dial)
	return md
}

// Address returns the server address as host:port.
func (c *Conn) Address() string { return c.addr }

// Context returns the Axon Server context the connection uses.
func (c *Conn) Context() string { return c.cfg.Context }

// Close closes the connection; calls in flight fail. It is safe to call more than once.
func (c *Conn) Close() error {
	err := c.cc.Close()
	if status.Code(err) == codes.Canceled {
		return nil // already closed
	}
	return err
}

// withRetry runs call until it succeeds, fails with something other than UNAVAILABLE, or the retry policy
// is exhausted, sleeping with exponential backoff and jitter in between. Only for idempotent reads.
func (c *Conn) withRetry(ctx context.Context, op string, dir direction, call func(ctx context.Context, trailer *metadata.MD) error) error {
	p := c.cfg.Retry
	wait := p.InitialBackoff
	for attempt := 1; ; attempt++ {
		var trailer metadata.MD
		err := call(ctx, &trailer)
		if err == nil {
			return nil
		}
		cerr := c.convert(ctx, op, err, trailer, dir)
		if attempt >= p.MaxAttempts || status.Code(err) != codes.Unavailable || ctx.Err() != nil || errors.Is(cerr, ErrTLS) {
			return cerr
		}
		// Full jitter around the nominal wait spreads out clients that failed together.
		d := wait/2 + time.Duration(rand.Int64N(int64(wait)+1))
		if p.OnRetry != nil {
			p.OnRetry(op, attempt+1, d, cerr)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return cerr
		case <-t.C:
		}
		wait = min(wait*2, p.MaxBackoff)
	}
}
