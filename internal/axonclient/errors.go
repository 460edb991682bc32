package axonclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Sentinel errors for branching with errors.Is. Every error returned by a *Conn method that comes from the
// server or the connection is an *Error, which matches at most one of these.
var (
	// ErrUnauthorized: the server refused the access token or none was sent (PERMISSION_DENIED,
	// AXONIQ-1000 / AXONIQ-1001, or UNAUTHENTICATED).
	ErrUnauthorized = errors.New("access token missing or not accepted")
	// ErrUnavailable: the server could not be reached or the connection was lost (UNAVAILABLE).
	ErrUnavailable = errors.New("server unavailable")
	// ErrSequence: the server rejected an event or snapshot for its aggregate sequence number (OUT_OF_RANGE,
	// AXONIQ-2000). Nothing of the rejected transaction was stored.
	ErrSequence = errors.New("invalid aggregate sequence")
	// ErrTooLarge: a message exceeded a size limit, the server's (axoniq.axonserver.max-message-size) or this
	// client's (Config.MaxSendMsgSize, Config.MaxRecvMsgSize); also AXONIQ-2001 (payload too large).
	ErrTooLarge = errors.New("message too large")
	// ErrContextNotFound: the server does not know the context (NOT_FOUND, AXONIQ-1302 or AXONIQ-6000).
	ErrContextNotFound = errors.New("context not found")
	// ErrTLS: the TLS handshake failed (bad certificate, unknown authority, server not speaking TLS, ...).
	ErrTLS = errors.New("tls handshake failed")
)

// Error is a failed call to Axon Server, converted from the gRPC status and the AxonIQ-ErrorCode trailer.
// Errors.Is matches the sentinel for its kind (if any) and the underlying cause, which is the gRPC status
// error or, when the caller's context ended, the context's error. status.Code(err) returns Code.
type Error struct {
	// Op is the operation, e.g. "append events"; it prefixes the message.
	Op string
	// Code is the gRPC status code.
	Code codes.Code
	// AxonCode is the AxonIQ-ErrorCode trailer, e.g. "AXONIQ-2000"; empty if the server sent none (errors
	// raised by gRPC itself, such as connection failures and size limits, have none).
	AxonCode string
	// Detail is the server's description without the "[AXONIQ-xxxx] " prefix, or the local cause.
	Detail string
	// Address is the server address the connection was made to.
	Address string
	// Context is the Axon Server context the call was made in.
	Context string

	kind  error
	cause error
	msg   string
	st    *status.Status
}

// Error returns a message a person can act on, such as
// "append events: invalid aggregate sequence: Invalid sequence number 3 for aggregate a1, expected 2 (AXONIQ-2000)".
func (e *Error) Error() string {
	msg := e.msg
	if msg == "" {
		msg = e.describe()
	}
	if e.Op == "" {
		return msg
	}
	return e.Op + ": " + msg
}

// Unwrap returns the sentinel for the error's kind and the underlying cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// GRPCStatus returns the status the server (or gRPC) reported, so that status.Code and status.FromError see
// through the conversion.
func (e *Error) GRPCStatus() *status.Status {
	if e.st != nil {
		return e.st
	}
	return status.New(e.Code, e.Detail)
}

func (e *Error) code() string {
	if e.AxonCode == "" {
		return ""
	}
	return " (" + e.AxonCode + ")"
}

func (e *Error) detail() string {
	if e.Detail == "" {
		return ""
	}
	return ": " + e.Detail
}

// describe words the error from its kind; hints name the knob to turn.
func (e *Error) describe() string {
	switch e.kind {
	case ErrUnauthorized:
		return "access token missing or not accepted" + e.code()
	case ErrSequence:
		return "invalid aggregate sequence" + e.detail() + e.code()
	case ErrUnavailable:
		if e.AxonCode != "" {
			return "server unavailable" + e.detail() + e.code()
		}
		return fmt.Sprintf("server unreachable at %s (is Axon Server running? check --server)", e.Address)
	case ErrTooLarge:
		if e.AxonCode != "" {
			return "event payload too large" + e.detail() + e.code()
		}
		return "message larger than the server's max message size (raise axoniq.axonserver.max-message-size)"
	case ErrContextNotFound:
		return fmt.Sprintf("context %q not found", e.Context) + e.code()
	case ErrTLS:
		return fmt.Sprintf("TLS handshake with %s failed%s", e.Address, e.detail())
	}
	if e.cause != nil && (errors.Is(e.cause, context.Canceled) || errors.Is(e.cause, context.DeadlineExceeded)) {
		return e.cause.Error()
	}
	return fmt.Sprintf("server returned %s%s%s", e.Code, e.detail(), e.code())
}

// direction tells convert which size limit a RESOURCE_EXHAUSTED without an Axon code refers to: gRPC-go
// enforces the receive limit locally and the server enforces its inbound limit, and the two cannot be told
// apart from the status alone (only from the message text, which is not a contract).
type direction int

const (
	sending   direction = iota // the large message was one we sent: the server's limit
	receiving                  // the large message was one we received: our own receive limit
	// appending is sending events or a snapshot, which Axon Server cancels (CANCELLED, no code or
	// AXONIQ-0001) when one exceeds its max-message-size: gRPC-Java's RESOURCE_EXHAUSTED only reaches its log.
	appending
)

// axonCodeKey is the trailer in which Axon Server names its error code (gRPC lower-cases metadata keys).
const axonCodeKey = "axoniq-errorcode"

// convert turns the error of a gRPC call into an *Error. ctx is the call's context: when it has ended, the
// context error becomes the cause so that errors.Is(err, context.Canceled) holds.
func (c *Conn) convert(ctx context.Context, op string, err error, trailer metadata.MD, dir direction) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	e := &Error{
		Op:      op,
		Code:    st.Code(),
		Detail:  st.Message(),
		Address: c.addr,
		Context: c.cfg.Context,
		cause:   err,
		st:      st,
	}
	if v := trailer.Get(axonCodeKey); len(v) > 0 {
		e.AxonCode = v[0]
		// Axon Server repeats the code in the description; keep the sentence only.
		e.Detail = strings.TrimPrefix(e.Detail, "["+e.AxonCode+"] ")
	}
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && ctxErr == nil && e.Code == codes.DeadlineExceeded && !time.Now().Before(dl) {
		// gRPC noticed the deadline before the context's own timer fired.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && (e.Code == codes.Canceled || e.Code == codes.DeadlineExceeded) {
		e.cause = ctxErr
		return e
	}
	switch e.Code {
	case codes.PermissionDenied, codes.Unauthenticated:
		e.kind = ErrUnauthorized
	case codes.OutOfRange:
		e.kind = ErrSequence
	case codes.NotFound:
		e.kind = ErrContextNotFound
	case codes.Canceled:
		if dir == appending && (e.AxonCode == "" || e.AxonCode == "AXONIQ-0001") {
			e.kind = ErrTooLarge
			e.msg = "the server cancelled the call, as Axon Server does when a message exceeds its max message size (raise axoniq.axonserver.max-message-size)"
		}
	case codes.ResourceExhausted:
		switch {
		case e.AxonCode == "" && dir == receiving:
			e.kind = ErrTooLarge
			e.msg = "message larger than this client's max receive size" + e.detail() +
				" (raise the max receive message size)"
		case e.AxonCode == "":
			e.kind = ErrTooLarge
		}
	case codes.InvalidArgument:
		if e.AxonCode == "AXONIQ-2001" {
			e.kind = ErrTooLarge
		}
	case codes.Unimplemented:
		// Typically the address of something other than Axon Server's gRPC port.
		e.msg = fmt.Sprintf("the server at %s does not implement this call (is it Axon Server's gRPC port?)%s", c.addr, e.detail())
	case codes.Unavailable:
		e.kind = ErrUnavailable
		if hsErr := c.handshakeErr(); hsErr != nil {
			e.kind = ErrTLS
			e.Detail = hsErr.Error()
		}
	}
	return e
}

// localTooLarge reports an event refused before sending because it exceeds Config.MaxSendMsgSize.
func (c *Conn) localTooLarge(op string, index, size int) error {
	return &Error{
		Op:      op,
		Code:    codes.ResourceExhausted,
		Detail:  fmt.Sprintf("event %d is %d bytes, over the client's max send size of %d bytes", index, size, c.cfg.MaxSendMsgSize),
		Address: c.addr,
		Context: c.cfg.Context,
		kind:    ErrTooLarge,
		msg: fmt.Sprintf("event %d is %d bytes, over the client's max send size of %d bytes (raise the max send message size)",
			index, size, c.cfg.MaxSendMsgSize),
	}
}
