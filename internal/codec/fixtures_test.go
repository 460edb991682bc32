package codec_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive"
	"github.com/axarchive/axarchive/internal/codec"
	"github.com/axarchive/axarchive/internal/reader"
)

// Every event and snapshot Axon Server wrote into the fixtures converts to a record and back to its
// stored bytes, through the archive's JSON line.
func TestFixturesRoundTrip(t *testing.T) {
	for _, dir := range []string{"legacy-v0", "three-segments", "snapshots"} {
		t.Run(dir, func(t *testing.T) {
			s, err := reader.OpenSegments(reader.SegmentsOptions{Dir: filepath.Join("..", "..", "testdata", "segments", dir, "default")})
			require.NoError(t, err)
			n := 0
			check := func(pos int64, raw []byte, snapshot bool) {
				var r archive.Record
				r.Token = pos
				require.NoError(t, codec.Decode(raw, &r), "position %d", pos)
				var line []byte
				var back archive.Record
				if snapshot {
					line = archive.AppendSnapshotJSON(nil, &r)
					require.NoError(t, archive.ParseSnapshotJSON(line, &back))
				} else {
					line = archive.AppendEventJSON(nil, &r)
					require.NoError(t, archive.ParseEventJSON(line, &back))
				}
				require.Equal(t, raw, codec.Encode(nil, &back), "position %d: %s", pos, line)
				n++
			}
			ev := s.Events(context.Background(), 0)
			for ev.Next() {
				check(ev.Token(), ev.Event(), false)
			}
			require.NoError(t, ev.Err())
			ev.Close()
			sn := s.Snapshots(context.Background())
			for sn.Next() {
				check(sn.Position(), sn.Event(), true)
			}
			require.NoError(t, sn.Err())
			sn.Close()
			require.Positive(t, n)
		})
	}
}
