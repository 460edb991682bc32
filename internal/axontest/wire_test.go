package axontest

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/axarchive/axarchive/internal/axonpb"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// parseEvent must accept exactly what a protobuf runtime accepts as an Event, and return its fields.
func checkParse(t *testing.T, b []byte) {
	var want axonpb.Event
	wantErr := proto.Unmarshal(b, &want)
	info, err := parseEvent(b)
	if wantErr != nil {
		require.Error(t, err, "proto.Unmarshal refuses (%v) but parseEvent accepts %x", wantErr, b)
		return
	}
	require.NoError(t, err, "proto.Unmarshal accepts but parseEvent refuses %x", b)
	assert.Equal(t, want.AggregateIdentifier, string(info.aggregateID))
	assert.Equal(t, want.AggregateType != "", info.domain)
	assert.Equal(t, want.AggregateSequenceNumber, info.sequence)
	assert.Equal(t, want.Timestamp, info.timestamp)
}

// TestParseEventAgreesWithProto mutates generated events (flipped bytes, truncation, insertions) and
// compares parseEvent's verdict with proto.Unmarshal's.
func TestParseEventAgreesWithProto(t *testing.T) {
	g := eventgen.New(11, eventgen.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		b := g.Next()
		checkParse(t, b)
		for range 5 {
			m := slices.Clone(b)
			switch r.IntN(4) {
			case 0:
				m[r.IntN(len(m))] = byte(r.Uint32())
			case 1:
				m = m[:r.IntN(len(m))]
			case 2:
				i := r.IntN(len(m))
				m = slices.Insert(m, i, byte(r.Uint32()), byte(r.Uint32()))
			case 3:
				m[r.IntN(len(m))] ^= 0x80
			}
			checkParse(t, m)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, b := range eventgen.New(1, eventgen.Options{}).Generate(20) {
		f.Add(b)
	}
	f.Add([]byte{0x3a, 0x02, 0x12, 0x00})
	f.Fuzz(checkParse)
}

// withSnapshotFlag must produce what a protobuf runtime writes for the stored event with snapshot set,
// for canonically encoded events (Go's deterministic mode sorts map keys, so compare with sorted ones).
func TestWithSnapshotFlag(t *testing.T) {
	g := eventgen.New(12, eventgen.Options{})
	checked := 0
	for range 2000 {
		e := g.NextEvent()
		slices.SortFunc(e.Metadata, func(a, b eventgen.Meta) int {
			if a.Key < b.Key {
				return -1
			}
			if a.Key > b.Key {
				return 1
			}
			return 0
		})
		for _, already := range []bool{false, true} {
			e.Snapshot = already
			stored := eventgen.Encode(&e)
			var pe axonpb.Event
			require.NoError(t, proto.Unmarshal(stored, &pe))
			pe.Snapshot = true
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pe)
			require.NoError(t, err)
			require.Equal(t, want, withSnapshotFlag(stored))
			checked++
		}
	}
	assert.Equal(t, 4000, checked)
}
