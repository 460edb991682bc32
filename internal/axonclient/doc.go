// Package axonclient is the gRPC client layer that export and import use to talk to Axon Server's
// EventStore service (AXON.md sections 1 and 2).
//
// Dial returns a *Conn bound to one server address and one context; every call carries the
// AxonIQ-Context header and, when configured, AxonIQ-Access-Token. Events travel as the exact protobuf
// bytes the server sent or will store (RawFrame and Codec): nothing is decoded or re-encoded on the way,
// which keeps archives byte-exact and costs a fraction of decoding into generated structs.
//
// # Reading
//
// The global stream never ends at the head of the store, so an export reads LastToken first, opens
// ListEvents at FirstToken (or where it stopped), tops up permits as it consumes, and closes the stream
// after the last token it wants. ListAggregateSnapshots returns snapshots newest first.
//
// # Writing
//
// One AppendEvents call is one transaction, stored entirely or not at all. Appends are never retried,
// because a transaction whose confirmation was lost may have been stored. AppendSnapshot must come after
// the aggregate's events.
//
// # Errors
//
// Failures from the server or the connection are *Error values that keep the gRPC code (status.Code works
// on them) and the AxonIQ-ErrorCode trailer, word the problem for a person, and match one of the sentinel
// errors (ErrUnauthorized, ErrUnavailable, ErrSequence, ErrTooLarge, ErrContextNotFound, ErrTLS) with
// errors.Is. Idempotent reads are retried with backoff while the server is UNAVAILABLE (RetryPolicy).
package axonclient
