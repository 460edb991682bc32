package axonclient_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonclient"
	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/eventgen"
)

func frame(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

func tokenField(tok int64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(tok))
}

func eventField(ev []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), ev)
}

func TestParseEventWithToken(t *testing.T) {
	ev := eventgen.New(1, eventgen.Options{}).Next()
	unknown := protowire.AppendString(protowire.AppendTag(nil, 9, protowire.BytesType), "future")
	cases := []struct {
		name      string
		frame     []byte
		wantToken int64
		wantEvent []byte
		wantErr   bool
	}{
		{"token 0 omitted", frame(eventField(ev)), 0, ev, false},
		{"token", frame(tokenField(42), eventField(ev)), 42, ev, false},
		{"fields reversed", frame(eventField(ev), tokenField(7)), 7, ev, false},
		{"unknown field skipped", frame(tokenField(1), unknown, eventField(ev)), 1, ev, false},
		{"empty event", frame(tokenField(3), eventField(nil)), 3, []byte{}, false},
		{"no event", frame(tokenField(3)), 3, []byte{}, false},
		{"repeated event merges", frame(eventField(ev[:10]), eventField(ev[10:])), 0, ev, false},
		{"truncated", frame(tokenField(1), eventField(ev))[:20], 0, nil, true},
		{"bad tag", []byte{0x00}, 0, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token, event, err := axonclient.ParseEventWithToken(tc.frame)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantToken, token)
			assert.Equal(t, tc.wantEvent, event)
		})
	}
}

// FuzzParseEventWithToken checks ParseEventWithToken against the generated code: same token, and event
// bytes that decode to the same Event.
func FuzzParseEventWithToken(f *testing.F) {
	for i, ev := range eventgen.New(2, eventgen.Options{}).Generate(10) {
		f.Add(frame(tokenField(int64(i)), eventField(ev)))
	}
	f.Add(frame(eventField(nil), eventField([]byte{0x0a, 0x01, 'x'})))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want axonpb.EventWithToken
		wantErr := proto.Unmarshal(b, &want)
		token, event, err := axonclient.ParseEventWithToken(b)
		if err != nil {
			require.Error(t, wantErr, "ParseEventWithToken refuses what the generated code accepts")
			return
		}
		if wantErr != nil {
			return // a malformed Event inside a well-formed frame: ParseEventWithToken does not look inside
		}
		assert.Equal(t, want.Token, token)
		var got axonpb.Event
		require.NoError(t, proto.Unmarshal(event, &got))
		// Compare encodings rather than with proto.Equal, for which NaN differs from itself.
		det := proto.MarshalOptions{Deterministic: true}
		wantBytes, err := det.Marshal(want.GetEvent())
		require.NoError(t, err)
		gotBytes, err := det.Marshal(&got)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(wantBytes, gotBytes), "%x != %x", wantBytes, gotBytes)
	})
}

// The codec receives a frame into the RawFrame's own array when it is large enough (a stream's one
// buffer), and into a fresh one otherwise, so that a frame a caller kept is never overwritten.
func TestCodecReusesFrameBuffer(t *testing.T) {
	msg := mem.BufferSlice{mem.SliceBuffer([]byte("abc")), mem.SliceBuffer([]byte("de"))}
	var f axonclient.RawFrame
	require.NoError(t, axonclient.Codec{}.Unmarshal(msg, &f))
	require.Equal(t, "abcde", string(f.Data))
	kept := f.Data

	f.Data = make([]byte, 0, 8)
	own := f.Data[:8]
	require.NoError(t, axonclient.Codec{}.Unmarshal(msg, &f))
	require.Equal(t, "abcde", string(f.Data))
	assert.Same(t, &own[0], &f.Data[0], "large enough: reused")

	f.Data = make([]byte, 0, 4)
	small := f.Data[:4]
	require.NoError(t, axonclient.Codec{}.Unmarshal(msg, &f))
	require.Equal(t, "abcde", string(f.Data))
	assert.NotSame(t, &small[0], &f.Data[0], "too small: fresh")

	f.Data = nil
	require.NoError(t, axonclient.Codec{}.Unmarshal(mem.BufferSlice{}, &f))
	assert.NotNil(t, f.Data, "an empty frame is an empty event, not a missing one")
	assert.Equal(t, "abcde", string(kept))
}
