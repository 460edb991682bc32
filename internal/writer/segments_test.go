package writer_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/writer"
)

// TestSegmentJournalUntrusted: a journal is read from disk, so its names never leave the directory.
func TestSegmentJournalUntrusted(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(filepath.Dir(dir), "evil.events")
	require.NoError(t, os.WriteFile(filepath.Join(dir, writer.SegmentJournal), []byte(`{"format":"axarchive-segments-journal","version":1,"source":"s","segmentSize":65536,
		"events":{"closed":[],"current":-1},"snapshots":{"closed":[],"current":-1},"eventsDone":true,"final":["../evil.events"]}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(dir), "evil.events.part"), []byte("x"), 0o644))
	_, err := writer.ResumeSegmentStore(dir, writer.SegmentStoreOptions{Source: "s", SegmentSize: 65536})
	require.ErrorIs(t, err, writer.ErrSegmentDir)
	assert.Contains(t, err.Error(), "not a segment file name")
	assert.NoFileExists(t, outside)
}
