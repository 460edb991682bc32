package axonclient

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Defaults applied by Dial to zero fields of Config.
const (
	// DefaultPort is Axon Server's gRPC port, used when Config.Address has no port.
	DefaultPort = "8124"
	// DefaultContext is the context Axon Server uses when a call names none.
	DefaultContext = "default"
	// DefaultMaxRecvMsgSize is large because Axon Server does not cap what it sends: an event stored on a
	// server whose max-message-size was raised must still be readable.
	DefaultMaxRecvMsgSize = 256 << 20
	// DefaultMaxSendMsgSize leaves the real decision to the server (4 MiB unless
	// axoniq.axonserver.max-message-size was raised), which reports it as ErrTooLarge; the client limit only
	// stops absurd messages before they are sent.
	DefaultMaxSendMsgSize = 64 << 20
	// DefaultKeepaliveTime is also gRPC-Go's minimum, which it enforces by itself; Axon Server accepts pings
	// every second or slower and sends GOAWAY "too_many_pings" to faster clients.
	DefaultKeepaliveTime = 10 * time.Second
	// DefaultKeepaliveTimeout is how long a keepalive ping may go unanswered before the connection is
	// considered dead.
	DefaultKeepaliveTimeout = 20 * time.Second
	// DefaultDialTimeout bounds how long Dial waits for the connection to become ready.
	DefaultDialTimeout = 10 * time.Second
	// DefaultTokenEnv is the environment variable LoadToken is usually given.
	DefaultTokenEnv = "AXONIQ_ACCESS_TOKEN"
)

// minKeepaliveTime is the floor for Config.KeepaliveTime. Axon Server refuses pings more often than every
// second, and gRPC-Go raises anything below 10 s to 10 s anyway (with a log line we would rather avoid).
const minKeepaliveTime = 10 * time.Second

// Config says how to reach Axon Server. The zero value connects to localhost:8124, context "default", in
// plaintext, without an access token.
type Config struct {
	// Address is host:port; a bare host gets port 8124. Empty means "localhost".
	Address string
	// Context is the Axon Server context sent as AxonIQ-Context; empty means "default".
	Context string
	// Token is the access token sent as AxonIQ-Access-Token; empty sends none. Use LoadToken to read it from
	// a file or the environment.
	Token string

	// TLS enables TLS with the system roots. CACertFile, ClientCertFile, InsecureSkipVerify and ServerName
	// imply it.
	TLS bool
	// CACertFile is a PEM file of CA certificates to trust instead of the system roots.
	CACertFile string
	// ClientCertFile and ClientKeyFile are a PEM certificate and key for mutual TLS; both or neither.
	ClientCertFile string
	ClientKeyFile  string
	// InsecureSkipVerify accepts any server certificate. It defeats TLS's protection against a
	// man-in-the-middle; callers should warn loudly when it is set.
	InsecureSkipVerify bool
	// ServerName overrides the host name checked against the server certificate.
	ServerName string

	// MaxRecvMsgSize is the largest message accepted from the server; 0 means DefaultMaxRecvMsgSize.
	MaxRecvMsgSize int
	// MaxSendMsgSize is the largest message sent; 0 means DefaultMaxSendMsgSize. Events over it are refused
	// before anything of their transaction is sent.
	MaxSendMsgSize int

	// KeepaliveTime is the interval of keepalive pings; 0 means DefaultKeepaliveTime, and values below 10 s
	// are raised to 10 s.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long a ping may go unanswered; 0 means DefaultKeepaliveTimeout.
	KeepaliveTimeout time.Duration
	// DialTimeout bounds how long Dial waits for the connection; 0 means DefaultDialTimeout.
	DialTimeout time.Duration

	// Retry governs retries of idempotent reads; the zero value is a sensible policy.
	Retry RetryPolicy
}

// RetryPolicy governs how idempotent reads (the token calls, HighestSequence, ListAggregateSnapshots,
// ListAggregateEvents) are retried when the server is UNAVAILABLE. Appends are never retried: a transaction
// whose confirmation was lost may or may not have been stored. The zero value means 5 attempts with
// backoff from 100 ms doubling up to 2 s, each wait jittered by ±50 %.
type RetryPolicy struct {
	// MaxAttempts counts the first call; 0 means 5, 1 means no retries.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry; 0 means 100 ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between attempts; 0 means 2 s.
	MaxBackoff time.Duration
	// OnRetry, if set, is told of every retry before its wait: the operation, the attempt about to be made
	// (2 for the first retry), the wait and the error of the failed attempt. Commands use it to report
	// each retry to the user. It may be called from several goroutines at once.
	OnRetry func(op string, attempt int, wait time.Duration, err error)
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 2 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}

// useTLS reports whether the configuration asks for TLS, explicitly or through a TLS-only setting.
func (c Config) useTLS() bool {
	return c.TLS || c.CACertFile != "" || c.ClientCertFile != "" || c.ClientKeyFile != "" ||
		c.InsecureSkipVerify || c.ServerName != ""
}

// withDefaults fills zero fields and validates the rest.
func (c Config) withDefaults() (Config, error) {
	addr, err := NormalizeAddress(c.Address)
	if err != nil {
		return c, err
	}
	c.Address = addr
	if c.Context == "" {
		c.Context = DefaultContext
	}
	if c.MaxRecvMsgSize <= 0 {
		c.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if c.MaxSendMsgSize <= 0 {
		c.MaxSendMsgSize = DefaultMaxSendMsgSize
	}
	if c.KeepaliveTime <= 0 {
		c.KeepaliveTime = DefaultKeepaliveTime
	}
	if c.KeepaliveTime < minKeepaliveTime {
		c.KeepaliveTime = minKeepaliveTime
	}
	if c.KeepaliveTimeout <= 0 {
		c.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		return c, errors.New("client certificate and client key must be given together")
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		return c, errors.New("access token contains a line break")
	}
	c.Retry = c.Retry.withDefaults()
	return c, nil
}

// NormalizeAddress returns addr as host:port, adding DefaultPort to a bare host (including bracketed or bare
// IPv6 literals) and "localhost" to a bare ":port".
func NormalizeAddress(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return net.JoinHostPort("localhost", DefaultPort), nil
	}
	if strings.Contains(addr, "://") {
		return "", fmt.Errorf("server address %q: want host or host:port, not a URL", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port (or a bare IPv6 literal, whose colons confuse SplitHostPort).
		host = addr
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
		if strings.ContainsAny(host, "[]") {
			return "", fmt.Errorf("server address %q: %w", addr, err)
		}
		if strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", fmt.Errorf("server address %q: %w", addr, err)
		}
		return net.JoinHostPort(host, DefaultPort), nil
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = DefaultPort
	}
	return net.JoinHostPort(host, port), nil
}

// LoadToken returns the access token from the first source that is set: value itself, then the contents
// of file (trailing line breaks and spaces removed), then the environment variable envVar (usually
// DefaultTokenEnv). It returns "" if none is set, so that a token never needs to appear on a command line.
// It fails if the file cannot be read or is empty.
func LoadToken(value, file, envVar string) (string, error) {
	if value != "" {
		return value, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read access token: %w", err)
		}
		tok := strings.TrimRight(string(b), "\r\n\t ")
		if tok == "" {
			return "", fmt.Errorf("read access token %s: file is empty", file)
		}
		return tok, nil
	}
	if envVar != "" {
		return strings.TrimRight(os.Getenv(envVar), "\r\n\t "), nil
	}
	return "", nil
}
