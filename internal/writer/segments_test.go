package writer_test

import (
	"encoding/json"
	"fmt"
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

// TestSegmentStoreDigest: what a store wrote (entries, blocks, the digest of their checksums) is the same
// for a run interrupted and resumed as for an uninterrupted one, since the journal keeps it with what is
// durable; a journal without it (an older axarchive's) resumes with it unknown.
func TestSegmentStoreDigest(t *testing.T) {
	event := func(i int) []byte { return append([]byte("\x0a\x08"), fmt.Sprintf("msg-%04d", i)...) }
	opts := writer.SegmentStoreOptions{Source: "s", SegmentSize: 4096, NoSync: true}
	write := func(s *writer.SegmentStore, from, to int64) {
		for i := from; i < to; i++ {
			require.NoError(t, s.WriteEvent(event(int(i)), i%3 == 2))
		}
	}
	interrupted := func() (string, *writer.SegmentStore) {
		dir := filepath.Join(t.TempDir(), "default")
		s, err := writer.CreateSegmentStore(dir, opts)
		require.NoError(t, err)
		write(s, 0, 700)
		s.Suspend() // what was written after the last file closed is lost, as in a crash
		return dir, s
	}

	whole, err := writer.CreateSegmentStore(filepath.Join(t.TempDir(), "whole"), opts)
	require.NoError(t, err)
	write(whole, 0, 1000)
	require.NoError(t, whole.Close())
	want, _ := whole.Written()
	assert.Equal(t, int64(1000), want.Entries)
	assert.Equal(t, int64(334), want.Blocks)
	require.True(t, want.Known)

	dir, _ := interrupted()
	s, err := writer.ResumeSegmentStore(dir, opts)
	require.NoError(t, err)
	require.Less(t, s.NextToken(), int64(700), "resumed from the last checkpoint")
	write(s, s.NextToken(), 1000)
	require.NoError(t, s.Close())
	got, _ := s.Written()
	assert.Equal(t, want, got)

	// A journal without blocks and digest: they are unknown, the count still known.
	dir, _ = interrupted()
	path := filepath.Join(dir, writer.SegmentJournal)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var j map[string]any
	require.NoError(t, json.Unmarshal(b, &j))
	for _, kind := range []string{"events", "snapshots"} {
		delete(j[kind].(map[string]any), "blocks")
		delete(j[kind].(map[string]any), "digest")
	}
	b, err = json.Marshal(j)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	s, err = writer.ResumeSegmentStore(dir, opts)
	require.NoError(t, err)
	legacy, _ := s.Written()
	assert.False(t, legacy.Known)
	assert.Equal(t, s.NextToken(), legacy.Entries)
}
