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
func checkEvent(b []byte) error { return checkMessage(b, eventMessages, 0) }

// messageFields says which length-delimited fields of a message are messages themselves, and their shape.
type messageFields map[protowire.Number]messageFields

var (
	serializedObject = messageFields{}
	metaDataValue    = messageFields{5: serializedObject}                   // bytes_value
	metaDataEntry    = messageFields{2: metaDataValue}                      // map entry: key 1, value 2
	eventMessages    = messageFields{6: serializedObject, 7: metaDataEntry} // payload, meta_data
)

func checkMessage(b []byte, nested messageFields, at int) error {
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
			if sub, ok := nested[num]; ok {
				if err := checkMessage(v, sub, at+i+m-len(v)); err != nil {
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
