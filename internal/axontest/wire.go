package axontest

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/axarchive/axarchive/internal/axonclient"
)

// eventInfo is what the server needs to know of an event: the fields it indexes and validates.
type eventInfo struct {
	aggregateID []byte // aliases the event's bytes, so that parsing allocates nothing
	domain      bool   // the aggregate type is not empty (AXON.md 2.3)
	sequence    int64
	timestamp   int64
}

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// parseEvent checks that b parses as an Event (AXON.md 1.3) the way a protobuf runtime parses it (malformed
// tags, truncated values, invalid UTF-8 in string fields, in the event and in its nested messages, are
// errors; unknown fields and known fields with an unexpected wire type are skipped), and returns the
// indexed fields. It does not allocate for the bytes it skips, which is what makes loading a million events
// fast.
func parseEvent(b []byte) (eventInfo, error) {
	var info eventInfo
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return info, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 2 || num == 4) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return info, protowire.ParseError(n)
			}
			if !utf8.Valid(v) {
				return info, fmt.Errorf("field %d: %w", num, errInvalidUTF8)
			}
			if num == 2 {
				info.aggregateID = v
			} else if num == 4 {
				info.domain = len(v) > 0
			}
			b = b[n:]
		case (num == 3 || num == 5 || num == 8) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return info, protowire.ParseError(n)
			}
			if num == 3 {
				info.sequence = int64(v)
			} else if num == 5 {
				info.timestamp = int64(v)
			}
			b = b[n:]
		case num == 6 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return info, protowire.ParseError(n)
			}
			if err := checkSerializedObject(v); err != nil {
				return info, fmt.Errorf("payload: %w", err)
			}
			b = b[n:]
		case num == 7 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return info, protowire.ParseError(n)
			}
			if err := checkMetaEntry(v); err != nil {
				return info, fmt.Errorf("metadata: %w", err)
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return info, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return info, nil
}

// walk calls field for every field of message b, which handles the fields it knows and returns -1 for the
// others, which walk skips.
func walk(b []byte, field func(num protowire.Number, typ protowire.Type, b []byte) (int, error)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		n, err := field(num, typ, b)
		if err != nil {
			return err
		}
		if n < 0 {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
		}
		b = b[n:]
	}
	return nil
}

// consumeString consumes a length-delimited value that must be UTF-8.
func consumeString(b []byte) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	if !utf8.Valid(v) {
		return 0, errInvalidUTF8
	}
	return n, nil
}

// checkSerializedObject: 1 type string, 2 revision string, 3 data bytes.
func checkSerializedObject(b []byte) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			return consumeString(b)
		}
		return -1, nil
	})
}

// checkMetaEntry: a map entry, 1 key string, 2 value MetaDataValue.
func checkMetaEntry(b []byte) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			return consumeString(b)
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			return n, checkMetaValue(v)
		}
		return -1, nil
	})
}

// checkMetaValue: the oneof of MetaDataValue; 1 text string and 5 bytes SerializedObject need checking.
func checkMetaValue(b []byte) error {
	return walk(b, func(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			return consumeString(b)
		case num == 5 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			return n, checkSerializedObject(v)
		}
		return -1, nil
	})
}

// withSnapshotFlag returns the event re-encoded with snapshot=true, as Axon Server serves snapshots
// (AXON.md 2.6): it parses the stored event, sets the flag and serializes again. For a canonically encoded
// event that equals the stored bytes with any field 8 removed and "snapshot: true" (0x40 0x01) written
// after field 7 and before unknown fields, which Java writes last; that is what this produces, keeping
// the metadata order as Java's parser does.
func withSnapshotFlag(raw []byte) []byte {
	out := make([]byte, 0, len(raw)+2)
	var tail []byte
	b := raw
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break // stored events were validated on append; never reached
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			break
		}
		field := b[:n+m]
		b = b[n+m:]
		switch {
		case num < 8:
			out = append(out, field...)
		case num > 8:
			tail = append(tail, field...)
		}
	}
	out = protowire.AppendTag(out, 8, protowire.VarintType)
	out = protowire.AppendVarint(out, 1)
	return append(out, tail...)
}

// eventWithToken is an EventWithToken frame (AXON.md 1.3) in two parts, so that the stored event is sent
// without being copied: head holds the token (omitted when 0, as the server does) and the event's tag and
// length, event the stored bytes.
type eventWithToken struct {
	head  []byte
	event []byte
}

// appendHead appends the head of an EventWithToken frame for an event of size bytes.
func appendHead(b []byte, token int64, size int) []byte {
	if token != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(token))
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(size))
}

// serverCodec is axonclient.Codec plus eventWithToken.
type serverCodec struct{ axonclient.Codec }

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*eventWithToken); ok {
		// gRPC writes the buffers after SendMsg returns; both are never modified, and SliceBuffer's Free is
		// a no-op, so handing them over is safe.
		return mem.BufferSlice{mem.SliceBuffer(f.head), mem.SliceBuffer(f.event)}, nil
	}
	return c.Codec.Marshal(v)
}

// confirmation is Confirmation{success: true}, which is also ConfirmationWithConsistencyMarker{success:
// true} without a marker: the two are wire compatible.
var confirmation = []byte{0x08, 0x01}

// confirmationWithMarker is ConfirmationWithConsistencyMarker{success: true, consistency_marker: {token}}.
func confirmationWithMarker(token int64) []byte {
	b := append([]byte(nil), confirmation...)
	var marker []byte
	if token != 0 {
		marker = protowire.AppendTag(marker, 1, protowire.VarintType)
		marker = protowire.AppendVarint(marker, uint64(token))
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, marker)
}

// payloadOf returns the type and revision of an event's payload (field 6, SerializedObject fields 1 and
// 2); the event was validated when it was stored.
func payloadOf(event []byte) (typ, revision string) {
	_ = walk(event, func(num protowire.Number, wt protowire.Type, b []byte) (int, error) {
		if num != 6 || wt != protowire.BytesType {
			return -1, nil
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		_ = walk(v, func(num protowire.Number, wt protowire.Type, b []byte) (int, error) {
			if (num == 1 || num == 2) && wt == protowire.BytesType {
				s, n := protowire.ConsumeString(b)
				if n < 0 {
					return 0, protowire.ParseError(n)
				}
				if num == 1 {
					typ = s
				} else {
					revision = s
				}
				return n, nil
			}
			return -1, nil
		})
		return n, nil
	})
	return typ, revision
}
