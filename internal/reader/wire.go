package reader

import (
	"fmt"

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
// messages are such sequences in turn. at is b's offset in the event, for the message.
func walkMessage(b []byte, at int, nested func(protowire.Number) func([]byte, int) error) error {
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return fmt.Errorf("at byte %d: invalid field tag: %v", at+i, protowire.ParseError(n))
		}
		fieldAt := at + i
		i += n
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b[i:])
			if m < 0 {
				return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, protowire.ParseError(m))
			}
			if check := nested(num); check != nil {
				if err := check(v, at+i+m-len(v)); err != nil {
					return err
				}
			}
			i += m
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i:])
		if m < 0 {
			return fmt.Errorf("at byte %d: field %d: %v", fieldAt, num, protowire.ParseError(m))
		}
		i += m
	}
	return nil
}
