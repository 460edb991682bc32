package reader

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// A block whose checksum matches holds what the server wrote; if an entry of it is still not a protobuf
// Event, the file was made or changed by something else, and that is damage, found by every reader (the
// backup checker too) with the file, offset and token. checkEvent walks the wire format of the Event and
// of the messages nested in it (AXON.md 1.3) without decoding any value: every tag valid, every length
// inside its message. Unknown fields are allowed, as the archive keeps them.
func checkEvent(b []byte) error { return walkMessage(b, 0, eventField) }

// The messages nested in an Event (AXON.md 1.3): which length-delimited field of each is a message.
func eventField(num protowire.Number) func([]byte, int) error {
	switch num {
	case 6: // payload
		return checkObject
	case 7: // meta_data: map entries
		return checkMetaEntry
	}
	return nil
}

func checkObject(b []byte, at int) error { return walkMessage(b, at, noMessages) }

func checkMetaEntry(b []byte, at int) error {
	return walkMessage(b, at, func(num protowire.Number) func([]byte, int) error {
		if num == 2 { // value: a MetaDataValue
			return checkMetaValue
		}
		return nil
	})
}

func checkMetaValue(b []byte, at int) error {
	return walkMessage(b, at, func(num protowire.Number) func([]byte, int) error {
		if num == 5 { // bytes_value: a SerializedObject
			return checkObject
		}
		return nil
	})
}

func noMessages(protowire.Number) func([]byte, int) error { return nil }

// walkMessage checks that b is a sequence of well-formed fields, and the fields that nested names
// messages are such sequences in turn. at is b's offset in the event, for the message. Every block of a
// store goes through it, so the common encodings (one-byte tags and lengths, short varints) take a path
// of their own; anything else goes to protowire, which says what is wrong.
func walkMessage(b []byte, at int, nested func(protowire.Number) func([]byte, int) error) error {
	for i := 0; i < len(b); {
		fieldAt := at + i
		var tag uint64
		if c := b[i]; c < 0x80 {
			tag = uint64(c)
			i++
		} else {
			t, n := protowire.ConsumeVarint(b[i:])
			if n < 0 {
				return fmt.Errorf("at byte %d: invalid field tag: %v", fieldAt, protowire.ParseError(n))
			}
			tag = t
			i += n
		}
		num, typ := protowire.DecodeTag(tag)
		if num < protowire.MinValidNumber { // DecodeTag gives -1 beyond int32, as ConsumeTag refuses
			return fmt.Errorf("at byte %d: invalid field number %d", fieldAt, num)
		}
		rest := b[i:]
		switch typ {
		case protowire.VarintType:
			n := 0
			for n < len(rest) && n < 10 && rest[n] >= 0x80 {
				n++
			}
			if n == len(rest) || n == 10 || (n == 9 && rest[9] > 1) {
				_, m := protowire.ConsumeVarint(rest)
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, protowire.ParseError(min(m, -1)))
			}
			i += n + 1
		case protowire.Fixed64Type:
			if len(rest) < 8 {
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, io.ErrUnexpectedEOF)
			}
			i += 8
		case protowire.Fixed32Type:
			if len(rest) < 4 {
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, io.ErrUnexpectedEOF)
			}
			i += 4
		case protowire.BytesType:
			var l uint64
			n := 1
			if len(rest) > 0 && rest[0] < 0x80 {
				l = uint64(rest[0])
			} else if l, n = protowire.ConsumeVarint(rest); n < 0 {
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, protowire.ParseError(n))
			}
			if l > uint64(len(rest)-n) {
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, io.ErrUnexpectedEOF)
			}
			if check := nested(num); check != nil {
				if err := check(rest[n:n+int(l)], at+i+n); err != nil {
					return err
				}
			}
			i += n + int(l)
		default: // groups, and the reserved wire types
			m := protowire.ConsumeFieldValue(num, typ, rest)
			if m < 0 {
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, protowire.ParseError(m))
			}
			i += m
		}
	}
	return nil
}
