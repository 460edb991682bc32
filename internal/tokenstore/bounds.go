package tokenstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/axarchive/axarchive/internal/location"
	"github.com/axarchive/axarchive/internal/s3store"
)

// TokenSource is what Bounds needs of an Axon Server connection (axonclient.Conn).
type TokenSource interface {
	FirstToken(ctx context.Context) (int64, error)
	LastToken(ctx context.Context) (int64, error)
	Address() string
	Context() string
}

// ServerBounds reads a live store's first and last token.
func ServerBounds(ctx context.Context, s TokenSource) (Bounds, error) {
	last, err := s.LastToken(ctx)
	if err != nil {
		return Bounds{}, err
	}
	first, err := s.FirstToken(ctx)
	if err != nil {
		return Bounds{}, err
	}
	return Bounds{First: first, Last: last, Source: fmt.Sprintf("server %s context %s", s.Address(), s.Context())}, nil
}

// ArchiveBounds is the token range of a store restored from archives (a full one and its incrementals,
// oldest first): the first archive's first token to the last one's last token.
func ArchiveBounds(dirs []string) (Bounds, error) {
	return ArchiveBoundsAt(context.Background(), dirs, nil)
}

// ArchiveBoundsAt is ArchiveBounds of locations that may be s3:// URLs (internal/location), configured
// by o (nil: the AWS environment).
func ArchiveBoundsAt(ctx context.Context, dirs []string, o *s3store.Options) (Bounds, error) {
	chain, err := location.OpenChain(ctx, dirs, o)
	if err != nil {
		return Bounds{}, err
	}
	r := chain.Range()
	return Bounds{First: r.First, Last: r.Last, Source: "archive " + strings.Join(dirs, " ")}, nil
}
