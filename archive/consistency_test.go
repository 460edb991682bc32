package archive

import (
	"path/filepath"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestManifestConsistency has one row per rule of SPEC.md 4.3: Open refuses a manifest that breaks it
// with ErrManifest, whatever the chunks hold (the BagIt files are resealed to match the edited manifest,
// so only the rule can be at fault). The golden vector's events chunks hold tokens 0–7, 8–15, 19–26,
// 27–34 and 35–39 around the gap 16–18; its snapshots chunk holds positions 0, 2 and 5.
func TestManifestConsistency(t *testing.T) {
	tests := []struct {
		rule string
		edit func(m *manifest.Manifest)
		want string // a piece of the message: the rule that was hit
	}{
		{"a path is not a chunk name", func(m *manifest.Manifest) { m.Chunks[1].Path = "events/8.jsonl.zst" }, "does not match pattern"},
		{"a path is listed twice", func(m *manifest.Manifest) { m.Chunks[1].Path = m.Chunks[0].Path }, "listed twice"},
		{"a path names another stream than stream", func(m *manifest.Manifest) { m.Chunks[5].Stream = manifest.StreamEvents }, "does not match the path"},
		{"first differs from the name", func(m *manifest.Manifest) { m.Chunks[1].First = 9 }, "does not match the name"},
		{"last < first", func(m *manifest.Manifest) { m.Chunks[1].Last = 7 }, "is before first"},
		{"last - first + 1 < records", func(m *manifest.Manifest) { m.Chunks[1].Records = 9 }, "cannot have distinct tokens"},
		{"chunks of a stream overlap", func(m *manifest.Manifest) { m.Chunks[0].Last = 8 }, "not after the previous chunk's last"},
		{"chunks of a stream are out of order", func(m *manifest.Manifest) { m.Chunks[0], m.Chunks[1] = m.Chunks[1], m.Chunks[0] }, "not after the previous chunk's last"},
		{"an events chunk lies outside the range", func(m *manifest.Manifest) {
			m.Events.LastToken = 38
			m.Events.Count--
			m.Events.Types[0].Count--
		}, "outside the range 0-38"},
		{"an events chunk starts inside a gap", func(m *manifest.Manifest) { m.Gaps[0].From, m.Gaps[0].To = 17, 19 }, "starts or ends in the gap 17-19"},
		{"an events chunk ends inside a gap", func(m *manifest.Manifest) { m.Gaps[0].From, m.Gaps[0].To = 15, 17 }, "starts or ends in the gap 15-17"},
		{"an events chunk follows a snapshots chunk", func(m *manifest.Manifest) {
			m.Chunks[4], m.Chunks[5] = m.Chunks[5], m.Chunks[4]
		}, "listed after snapshots chunks"},
		{"rawSize less than 2 × records", func(m *manifest.Manifest) { m.Chunks[1].RawSize = 15 }, "rawSize 15 is impossible"},
		{"rawSize more than records × 64 MiB", func(m *manifest.Manifest) { m.Chunks[1].RawSize = 8*maxRecordBytes + 1 }, "is impossible for 8 records"},
		{"records do not add up to count", func(m *manifest.Manifest) { m.Snapshots.Count++; m.Snapshots.Types[0].Count++ }, "but the chunks hold 3 records"},
		{"type counts do not add up to count", func(m *manifest.Manifest) { m.Events.Types[0].Count++ }, "type counts add up to 38"},
		{"count + filtered + gaps differ from the range", func(m *manifest.Manifest) {
			m.Events.Filtered = 1
			m.Filter = &manifest.Filter{ExcludeTypes: []string{"x"}}
		}, "do not make the 40 tokens"},
		{"filtered without a filter", func(m *manifest.Manifest) { m.Events.Filtered = 3; m.Gaps = []manifest.Gap{} }, "has no filter"},
		{"gaps not sorted", func(m *manifest.Manifest) {
			m.Gaps = []manifest.Gap{{From: 17, To: 18, Cause: "x"}, {From: 16, To: 16, Cause: "x"}}
		}, "overlaps or precedes"},
		{"gaps not disjoint", func(m *manifest.Manifest) {
			m.Gaps = []manifest.Gap{{From: 16, To: 17, Cause: "x"}, {From: 17, To: 18, Cause: "x"}}
		}, "overlaps or precedes"},
		{"gap outside the range", func(m *manifest.Manifest) { m.Gaps = append(m.Gaps, manifest.Gap{From: 40, To: 40, Cause: "x"}) }, "outside the range 0-39"},
		{"fingerprint not SHA-256(E ‖ S)", func(m *manifest.Manifest) { m.Fingerprint = m.Events.SHA256 }, "is not the SHA-256 of the events and snapshots digests"},
		{"previous does not end right before the range", func(m *manifest.Manifest) {
			m.Previous = &manifest.Link{Fingerprint: m.Fingerprint, LastToken: 5}
		}, "does not follow the previous archive's lastToken 5"},
		{"snapshots with mode none", func(m *manifest.Manifest) { m.Snapshots.Mode = manifest.SnapshotsNone }, "but mode is \"none\""},
	}
	base := filepath.Join(t.TempDir(), "golden")
	goldenArchive(t, base)
	_, err := Open(base)
	require.NoError(t, err)
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, base, dir)
			reseal(t, dir, tc.edit)
			_, err := Open(dir)
			require.ErrorIs(t, err, ErrManifest)
			assert.Contains(t, err.Error(), tc.want)
			var ae *Error
			if assert.ErrorAs(t, err, &ae) {
				assert.Equal(t, manifestPath, ae.Path)
			}
		})
	}
}
