package eventgen_test

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// metadataKeys returns the metadata keys of an encoded event in wire order.
func metadataKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	var keys []string
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
		if num == 7 {
			entry, n := protowire.ConsumeBytes(b)
			require.GreaterOrEqual(t, n, 0)
			b = b[n:]
			_, _, n = protowire.ConsumeTag(entry)
			key, _ := protowire.ConsumeString(entry[n:])
			keys = append(keys, key)
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
	}
	return keys
}

// TestCanonical checks that events are encoded as Go's deterministic marshalling would encode them,
// except for the order of metadata keys, and that both orders occur.
func TestCanonical(t *testing.T) {
	g := eventgen.New(1, eventgen.Options{})
	sorted, unsorted := 0, 0
	for i := range 5000 {
		raw := g.Next()
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(raw, &ev), "event %d", i)
		keys := metadataKeys(t, raw)
		re, err := proto.MarshalOptions{Deterministic: true}.Marshal(&ev)
		require.NoError(t, err)
		if slices.IsSorted(keys) {
			sorted++
			require.Equal(t, re, raw, "event %d is not canonical", i)
		} else {
			unsorted++
			require.Len(t, re, len(raw), "event %d differs in more than key order", i)
		}
	}
	assert.Greater(t, sorted, 1000)
	assert.Greater(t, unsorted, 1000)
}

// TestMix checks that the generated stream contains every kind of event the tests need.
func TestMix(t *testing.T) {
	g := eventgen.New(7, eventgen.Options{Aggregates: 200})
	const n = 20000
	var total int
	seen := map[string]bool{}
	next := map[string]int64{}
	for range n {
		raw := g.Next()
		total += len(raw)
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(raw, &ev))
		if ev.AggregateType == "" {
			seen["non-domain"] = true
		} else {
			// Domain events of an aggregate are contiguous from 0.
			require.Equal(t, next[ev.AggregateIdentifier], ev.AggregateSequenceNumber, ev.AggregateIdentifier)
			next[ev.AggregateIdentifier]++
		}
		data := ev.GetPayload().GetData()
		switch {
		case bytes.HasPrefix(data, []byte("<")):
			seen["xml"] = true
		case bytes.HasPrefix(data, []byte("{")):
			seen["json"] = true
		case len(data) > 0 && !utf8.Valid(data):
			seen["binary"] = true
		}
		if ev.MessageIdentifier == "" {
			seen["empty id"] = true
		}
		if ev.Timestamp == 0 {
			seen["zero timestamp"] = true
		}
		if ev.GetPayload().GetRevision() == "" {
			seen["no revision"] = true
		} else {
			seen["revision"] = true
		}
		for k, v := range ev.MetaData {
			switch d := v.Data.(type) {
			case nil:
				seen["no value"] = true
			case *axonpb.MetaDataValue_NumberValue:
				if d.NumberValue == math.MinInt64 || d.NumberValue == math.MaxInt64 {
					seen["int64 limit"] = true
				}
			case *axonpb.MetaDataValue_DoubleValue:
				if math.IsNaN(d.DoubleValue) {
					seen["NaN"] = true
				}
				if math.IsInf(d.DoubleValue, 0) {
					seen["Inf"] = true
				}
				if d.DoubleValue == 0 && math.Signbit(d.DoubleValue) {
					seen["-0"] = true
				}
			case *axonpb.MetaDataValue_BytesValue:
				seen["bytes value"] = true
			case *axonpb.MetaDataValue_BooleanValue:
				seen["boolean"] = true
			case *axonpb.MetaDataValue_TextValue:
				if d.TextValue == "" {
					seen["empty text"] = true
				}
			}
			if k == "" {
				seen["empty key"] = true
			}
		}
	}
	for _, want := range []string{"non-domain", "xml", "json", "binary", "empty id", "zero timestamp", "revision",
		"no revision", "no value", "int64 limit", "NaN", "Inf", "-0", "bytes value", "boolean", "empty text", "empty key"} {
		assert.True(t, seen[want], "no %s event generated", want)
	}
	avg := total / n
	t.Logf("average event size %d bytes", avg)
	assert.InDelta(t, 660, avg, 100)
	maxSeq := int64(0)
	for _, a := range g.Aggregates() {
		maxSeq = max(maxSeq, a.LastSequence)
	}
	assert.Greater(t, maxSeq, int64(500), "some aggregate should have a long history")
}

func TestSnapshots(t *testing.T) {
	g := eventgen.New(3, eventgen.Options{Aggregates: 300})
	g.Generate(20000)
	last := map[string]int64{}
	for _, a := range g.Aggregates() {
		last[a.ID] = a.LastSequence
	}
	snaps := g.Snapshots()
	require.NotEmpty(t, snaps)
	assert.Equal(t, snaps, g.Snapshots(), "Snapshots must be repeatable")
	for _, raw := range snaps {
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(raw, &ev))
		require.NotEmpty(t, ev.AggregateType)
		seq, ok := last[ev.AggregateIdentifier]
		require.True(t, ok)
		assert.LessOrEqual(t, ev.AggregateSequenceNumber, seq)
		assert.False(t, ev.Snapshot)
	}
}

func TestDeterministic(t *testing.T) {
	a := eventgen.New(42, eventgen.Options{}).Generate(500)
	b := eventgen.New(42, eventgen.Options{}).Generate(500)
	c := eventgen.New(43, eventgen.Options{}).Generate(500)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
}

// TestEncodeLongFields covers length prefixes of more than one byte in nested messages.
func TestEncodeLongFields(t *testing.T) {
	e := eventgen.Event{PayloadType: "t", PayloadData: bytes.Repeat([]byte{0xff}, 70000),
		Metadata: []eventgen.Meta{{Key: "b", Kind: eventgen.Bytes, BytesData: bytes.Repeat([]byte{1}, 300)}, {Key: "a", Kind: eventgen.NoValue}}}
	raw := eventgen.Encode(&e)
	var ev axonpb.Event
	require.NoError(t, proto.Unmarshal(raw, &ev))
	assert.Len(t, ev.Payload.Data, 70000)
	assert.Len(t, ev.MetaData["b"].GetBytesValue().GetData(), 300)
	assert.Nil(t, ev.MetaData["a"].GetData())
}

// TestEdgeCases checks that EdgeCases holds every edge value it promises, decodes, and forms valid
// aggregate sequences; and that EdgeSnapshots stay within their aggregates' sequences.
func TestEdgeCases(t *testing.T) {
	seen := map[string]bool{}
	next := map[string]int64{}
	for i, raw := range eventgen.EdgeCases() {
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(raw, &ev), "event %d", i)
		if ev.AggregateType != "" {
			require.Equal(t, next[ev.AggregateIdentifier], ev.AggregateSequenceNumber, "event %d", i)
			next[ev.AggregateIdentifier]++
			if ev.AggregateIdentifier == "" {
				seen["empty aggregate id"] = true
			}
		} else if ev.AggregateIdentifier != "" {
			seen["non-domain with aggregate id"] = true
			if ev.AggregateSequenceNumber < 0 {
				seen["negative sequence"] = true
			}
			if ev.AggregateSequenceNumber == math.MaxInt64 {
				seen["max sequence"] = true
			}
		}
		switch ev.Timestamp {
		case 0, -1, math.MaxInt64, math.MinInt64:
			seen["timestamp "+strconv.FormatInt(ev.Timestamp, 10)] = true
		}
		switch {
		case ev.Payload == nil:
			seen["no payload"] = true
		case ev.Payload.Type == "" && len(ev.Payload.Data) > 0:
			seen["empty payload type"] = true
		case len(ev.Payload.Data) > 100000:
			seen["large payload"] = true
		case len(ev.Payload.Data) > 0 && !utf8.Valid(ev.Payload.Data):
			seen["binary payload"] = true
		}
		if ev.MessageIdentifier == "" {
			seen["empty id"] = true
		}
		if ev.Snapshot {
			seen["snapshot flag"] = true
		}
		if len(raw) == 0 {
			seen["empty event"] = true
		}
		if len(ev.ProtoReflect().GetUnknown()) > 0 {
			seen["unknown field"] = true
		}
		keys := metadataKeys(t, raw)
		if len(keys) > 1 && !slices.IsSorted(keys) {
			seen["unsorted metadata"] = true
		}
		for _, k := range keys {
			seen["meta "+k] = true
		}
	}
	for _, want := range []string{"empty aggregate id", "non-domain with aggregate id", "negative sequence", "max sequence",
		"timestamp 0", "timestamp -1", "timestamp 9223372036854775807", "timestamp -9223372036854775808", "no payload",
		"empty payload type", "large payload", "binary payload", "empty id", "snapshot flag", "empty event", "unsorted metadata",
		"meta minLong", "meta maxLong", "meta nan", "meta posInf", "meta negInf", "meta negZero", "meta tiny", "meta empty",
		"meta none", "meta blob", "meta blobEmpty", "meta serialized", "meta active", "meta deleted", "meta ", "meta größe", "meta signalingNaN", "unknown field"} {
		assert.True(t, seen[want], "EdgeCases has no %s", want)
	}
	for _, raw := range eventgen.EdgeSnapshots() {
		var ev axonpb.Event
		require.NoError(t, proto.Unmarshal(raw, &ev))
		assert.Less(t, ev.AggregateSequenceNumber, next[ev.AggregateIdentifier], "snapshot of %q beyond its events", ev.AggregateIdentifier)
	}
}
