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

// TestSegmentJournalBeyondFile: a file shorter than the journal says is durable (changed or cut since the
// interrupted run) is refused, not lengthened with zeros that Axon Server would read as the end of its data.
func TestSegmentJournalBeyondFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "default")
	opts := writer.SegmentStoreOptions{Source: "s", SegmentSize: 65536, NoSync: true}
	s, err := writer.CreateSegmentStore(dir, opts)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, s.WriteEvent([]byte("\x0a\x01m"), true))
	}
	require.NoError(t, s.FinishEvents())
	s.Suspend()
	part := filepath.Join(dir, "00000000000000000000.events.part")
	fi, err := os.Stat(part)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(part, 10))

	_, err = writer.ResumeSegmentStore(dir, opts)
	require.ErrorIs(t, err, writer.ErrSegmentDir)
	assert.Contains(t, err.Error(), "00000000000000000000.events.part holds 10 bytes, the journal says")
	fi2, err := os.Stat(part)
	require.NoError(t, err)
	assert.Equal(t, int64(10), fi2.Size(), "left as it was (it was %d bytes)", fi.Size())
}

// TestSegmentJournalTooLarge: the journal is read up to a bound, never whole whatever its size.
func TestSegmentJournalTooLarge(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, writer.SegmentJournal))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<40)) // sparse: a terabyte that takes no disk
	require.NoError(t, f.Close())
	_, err = writer.ResumeSegmentStore(dir, writer.SegmentStoreOptions{Source: "s", SegmentSize: 65536})
	require.ErrorIs(t, err, writer.ErrSegmentDir)
	assert.Contains(t, err.Error(), "is larger than 16777216 bytes")
}
