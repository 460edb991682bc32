package axonclient

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// RawFrame is one gRPC message carried as its protobuf bytes, without decoding. Events travel as RawFrames
// so that an archive holds exactly the bytes the server stored, and because decoding every event into
// generated structs costs more than the rest of an export together.
//
// When Codec fills a RawFrame, Data is owned by the receiver: the array Data had, if large enough, or a fresh one. When Codec sends one, Data is
// handed to gRPC as is and must not be modified until the call that sends it has returned.
type RawFrame struct {
	Data []byte
}

// Codec is a gRPC codec that passes *RawFrame values through unchanged and encodes every other message with
// the standard protobuf codec. Its name is "proto", so the content type on the wire is the one every gRPC
// server expects. Use it per call with grpc.ForceCodecV2(Codec{}) or on a server with
// grpc.ForceServerCodecV2(Codec{}). The zero value is ready to use and safe for concurrent use.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// protoCodec is gRPC's own protobuf codec, which pools buffers for generated messages.
var protoCodec = encoding.GetCodecV2(protoenc.Name)

// Name returns "proto": the frames are protobuf, only their decoding is deferred.
func (Codec) Name() string { return protoenc.Name }

// Marshal returns the bytes of a *RawFrame without copying, or the protobuf encoding of a generated message.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *RawFrame:
		if len(m.Data) == 0 {
			return nil, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(m.Data)}, nil
	case proto.Message:
		return protoCodec.Marshal(m)
	default:
		return nil, fmt.Errorf("axonclient codec: cannot marshal %T", v)
	}
}

// Unmarshal copies the frame into a *RawFrame, whose Data is then owned by the caller (gRPC recycles its own
// buffers once Unmarshal returns): into Data's own array when it is not nil and large enough, which lets a
// stream reuse one buffer, or else into a fresh slice. Or it decodes the frame into a generated message.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *RawFrame:
		if n := data.Len(); n <= cap(m.Data) && m.Data != nil {
			m.Data = m.Data[:n]
			data.CopyTo(m.Data)
			return nil
		}
		m.Data = data.Materialize()
		if m.Data == nil {
			m.Data = []byte{}
		}
		return nil
	case proto.Message:
		return protoCodec.Unmarshal(data, m)
	default:
		return fmt.Errorf("axonclient codec: cannot unmarshal into %T", v)
	}
}
