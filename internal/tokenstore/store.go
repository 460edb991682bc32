// Package tokenstore reads and rewrites the token tables of Axon Framework applications (JdbcTokenStore,
// JpaTokenStore; Axon Framework 4 and 5), so that event processors agree with a restored or renumbered
// event store: every processor and segment keeps the token of the last event it handled (TOKENSTORE.md).
//
// The database is behind Store, one small interface, so that another database than PostgreSQL is one
// more implementation of it. The token codecs are in codec.go; the decisions (what is inconsistent,
// what a position becomes) in plan.go; the backup of rewritten rows in backup.go.
package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotTokenTable: the table is not an Axon token table, or none was found.
	ErrNotTokenTable = errors.New("not a token table")
	// ErrClaimed: a processor to rewrite is running (a segment's claim is live).
	ErrClaimed = errors.New("processor claimed")
	// ErrInconsistent: tokens that do not fit the event store (tokens check).
	ErrInconsistent = errors.New("tokens inconsistent with the event store")
)

// ConfigProcessor is the name of the row Axon keeps its storage identifier in; it is no processor.
const ConfigProcessor = "__config"

// DefaultClaimTimeout is Axon's: a claim whose timestamp is older than this has expired.
const DefaultClaimTimeout = 10 * time.Second

// Row is one row of a token table: the token of one segment of one processor.
type Row struct {
	Processor string
	Segment   int32
	Mask      *int32 // Axon Framework 5's mask column; nil without one
	TokenType *string
	Token     []byte // nil: NULL (not started: read from the beginning)
	Timestamp *string
	Owner     *string
}

func (r Row) String() string { return fmt.Sprintf("%s[%d]", r.Processor, r.Segment) }

// Claimed reports whether a node holds the segment: an owner is set and the claim (the timestamp it last
// stored) is younger than timeout. A timestamp that cannot be read counts as a live claim.
func (r Row) Claimed(now time.Time, timeout time.Duration) bool {
	if r.Owner == nil {
		return false
	}
	if r.Timestamp == nil {
		return true
	}
	t, err := time.Parse(time.RFC3339Nano, *r.Timestamp)
	if err != nil {
		return true
	}
	return now.Before(t.Add(timeout))
}

// Decode decodes the row's token; nil for a NULL token. The error names the row.
func (r Row) Decode() (*Token, error) {
	if r.Token == nil {
		if r.TokenType != nil && *r.TokenType != "" {
			return nil, fmt.Errorf("%s: %w: no token bytes, but token type %s", r, ErrMalformed, *r.TokenType)
		}
		return nil, nil
	}
	if r.TokenType == nil {
		return nil, fmt.Errorf("%s: %w: token bytes without a token type", r, ErrMalformed)
	}
	t, err := Decode(*r.TokenType, r.Token)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	return t, nil
}

// Timestamp formats now as Axon does (DateTimeUtils.formatInstant: ISO-8601 UTC, milliseconds).
func Timestamp(now time.Time) string { return now.UTC().Format("2006-01-02T15:04:05.000Z") }

// Store is a token table.
type Store interface {
	// Describe names the database, the table and its layout, without credentials.
	Describe() string
	// Table names the table, for errors: "public.tokenentry".
	Table() string
	// Read reads every row, without locking, in processor and segment order.
	Read(ctx context.Context) ([]Row, error)
	// Begin starts the one transaction a rewrite or restore runs in.
	Begin(ctx context.Context) (Tx, error)
	Close(ctx context.Context) error
}

// Tx is a transaction on a token table.
type Tx interface {
	// Rows reads every row, locked against other writers until the end of the transaction, in
	// processor and segment order.
	Rows(ctx context.Context) ([]Row, error)
	// Update stores row's token, token type, timestamp and owner (identified by processor and segment).
	Update(ctx context.Context, row Row) error
	// Insert adds a row (tokens restore, for a segment deleted since the backup).
	Insert(ctx context.Context, row Row) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}
