package archive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestManifestShape: the manifest, the journal and record lines are all refused with the place named.
func TestManifestShape(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join(vectorsDir, "golden", "data", "manifest.json"))
	require.NoError(t, err)
	for _, c := range []struct{ name, old, new, want string }{
		{"version-twice", `"version": 1,`, `"version": 1, "version": 2,`, `data/manifest.json:3: invalid manifest: duplicate member name "version" at byte`},
		{"count-twice", `"count": 37,`, `"count": 37, "count": 38,`, `invalid manifest: duplicate member name "count"`},
		{"chunk-path-twice", `"path": "events/`, `"path": "events/x", "path": "events/`, `invalid manifest: duplicate member name "path"`},
		{"deep-notes", `"notes": [`, `"notes": [` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + ",", `invalid manifest: nested more than 32 deep`},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, string(golden), c.old)
			_, err := parseManifest([]byte(strings.Replace(string(golden), c.old, c.new, 1)))
			require.ErrorIs(t, err, ErrManifest)
			require.Regexp(t, c.want, err.Error())
		})
	}
	t.Run("record", func(t *testing.T) {
		var r Record
		err := ParseEventJSON([]byte(`{"token":1,"messageId":"a","timestamp":0,"token":2}`), &r)
		require.ErrorIs(t, err, ErrRecord)
		require.Contains(t, err.Error(), `duplicate member name "token" at byte 41`)
		err = ParseSnapshotJSON([]byte(`{"position":1,"x":`+strings.Repeat("[", 50)+`}`), &r)
		require.Contains(t, err.Error(), `nested more than 32 deep`)
	})
	t.Run("journal", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, journalPath), []byte(`{"format":"axarchive-journal","version":1,"version":1}`), 0o644))
		_, err := readJournal(Dir(dir))
		require.ErrorIs(t, err, ErrCorrupt)
		require.Contains(t, err.Error(), `journal.json:1: archive data does not match its manifest: duplicate member name "version"`)
	})
}
