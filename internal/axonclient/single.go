package axonclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrSingleContext: the connection names a context other than "default", and the server is one that has
// only "default" and serves it whatever context a call names (Axon Server SE): what is read would not come
// from, and what is written would not land in, the context named.
var ErrSingleContext = errors.New("server has only the default context")

const methodGetContexts = "/io.axoniq.axonserver.grpc.admin.ContextAdminService/GetContexts"

// contextOverride in a call's context replaces the connection's context name for that call.
type contextOverride struct{}

// CheckContext refuses a context other than "default" on a server that serves "default" for every context
// name (ErrSingleContext); for "default" it asks nothing. Axon Server SE says nothing about its contexts
// over gRPC, but two answers give it away: it has no ContextAdminService (UNIMPLEMENTED, where EE 4.6+
// answers or refuses the caller), and a call naming a context that cannot exist succeeds (EE answers
// NOT_FOUND, older EE without the admin service too). Only a server that gives both answers is taken for
// single-context.
func (c *Conn) CheckContext(ctx context.Context) error {
	if c.cfg.Context == "" || c.cfg.Context == DefaultContext {
		return nil
	}
	const op = "check the context"
	unimplemented, err := c.noContextAdmin(ctx)
	if err != nil {
		return c.convert(ctx, op, err, nil, receiving)
	}
	if !unimplemented {
		return nil
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	probe := "axarchive-no-such-context-" + hex.EncodeToString(nonce[:])
	pctx := context.WithValue(ctx, contextOverride{}, probe)
	if _, err := c.LastToken(pctx); err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Code == codes.NotFound || e.Code == codes.PermissionDenied) {
			return nil // it told the made-up context apart: contexts are real there
		}
		return err
	}
	return &Error{Op: op, Code: codes.FailedPrecondition, Address: c.addr, Context: c.cfg.Context, kind: ErrSingleContext,
		msg: fmt.Sprintf("context %q: the server at %s has one context, \"default\", and serves it whatever context a call names (Axon Server SE)", c.cfg.Context, c.addr)}
}

// noContextAdmin reports whether the server answers ContextAdminService/GetContexts with UNIMPLEMENTED.
func (c *Conn) noContextAdmin(ctx context.Context) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := c.cc.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true}, methodGetContexts, rawCodec)
	if err == nil {
		if err = cs.SendMsg(&RawFrame{}); err == nil || errors.Is(err, io.EOF) {
			_ = cs.CloseSend()
			var m RawFrame
			err = cs.RecvMsg(&m) // the first overview, or the end, or the refusal
		}
	}
	switch status.Code(err) {
	case codes.Unimplemented:
		return true, nil
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		return false, err
	}
	return false, nil // answered, or refused this caller: the service exists
}
