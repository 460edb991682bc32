package archive

import (
	"bytes"
	"context"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

func TestWriterChunkRotation(t *testing.T) {
	evs := plainEvents(0, 100)
	line0 := AppendEventJSON(nil, &evs[0])
	tests := []struct {
		name         string
		chunkBytes   int64
		chunkRecords int64
		wantChunks   int
	}{
		{"records", 0, 10, 10},
		{"records not dividing", 0, 30, 4},
		{"bytes", int64(len(line0)) * 5, 0, 0}, // about 20; checked below by size
		{"one record per chunk by bytes", 1, 0, 100},
		{"defaults", 0, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			opts := testOptions(0, 99)
			opts.ChunkBytes, opts.ChunkRecords = tc.chunkBytes, tc.chunkRecords
			writeArchive(t, dir, opts, evs, nil)
			a, err := Open(dir)
			require.NoError(t, err)
			m := a.Manifest()
			if tc.wantChunks > 0 {
				assert.Len(t, m.Chunks, tc.wantChunks)
			}
			next := int64(0)
			for _, c := range m.Chunks {
				assert.Equal(t, next, c.First, c.Path)
				assert.Equal(t, chunkName(manifest.StreamEvents, c.First, false), c.Path)
				if tc.chunkRecords > 0 {
					assert.LessOrEqual(t, c.Records, tc.chunkRecords)
				}
				if tc.chunkBytes > 0 && c.Records > 1 {
					assert.LessOrEqual(t, c.RawSize, tc.chunkBytes)
				}
				next = c.Last + 1
			}
			assert.Equal(t, int64(100), next)
			assert.Equal(t, 100, len(readAll(t, a, manifest.StreamEvents)))
		})
	}
}

// TestDeterminism writes the same records twice (once with WriteEvent, once with WriteEventLine) and
// compares every file byte for byte, the manifest included.
func TestDeterminism(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1714564800")
	evs := append(edgeEvents(0), plainEvents(16, 200)...)
	base := t.TempDir()
	write := func(name string, lines bool) string {
		dir := filepath.Join(base, name)
		opts := testOptions(0, int64(len(evs)-1))
		opts.Created = time.Time{}
		opts.ChunkRecords = 50
		w, err := Create(dir, opts)
		require.NoError(t, err)
		for i := range evs {
			if lines {
				require.NoError(t, w.WriteEventLine(evs[i].Token, AppendEventJSON(nil, &evs[i])))
			} else {
				require.NoError(t, w.WriteEvent(&evs[i]))
			}
		}
		require.NoError(t, w.FinishEvents())
		for _, s := range edgeSnapshots() {
			require.NoError(t, w.WriteSnapshot(&s))
		}
		require.NoError(t, w.Close())
		return dir
	}
	a, b := write("a", false), write("b", true)
	filesA, filesB := treeFiles(t, a), treeFiles(t, b)
	require.Equal(t, len(filesA), len(filesB))
	for name, data := range filesA {
		assert.True(t, bytes.Equal(data, filesB[name]), "%s differs", name)
	}
	m := mustOpen(t, a).Manifest()
	assert.Equal(t, "2024-05-01T12:00:00Z", m.Created.Format(time.RFC3339))
}

func mustOpen(t testing.TB, dir string) *Archive {
	t.Helper()
	a, err := Open(dir)
	require.NoError(t, err)
	return a
}

// treeFiles returns every regular file under dir with its content.
func treeFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return err
	}))
	return files
}

func TestWriterErrors(t *testing.T) {
	evs := plainEvents(0, 10)
	tests := []struct {
		name    string
		opts    func(*Options)
		run     func(*Writer) error
		wantErr error
	}{
		{"token before the range", nil, func(w *Writer) error { e := evs[0]; e.Token = -1; return w.WriteEvent(&e) }, errOrder},
		{"duplicate token", nil, func(w *Writer) error {
			w.WriteEvent(&evs[0])
			return w.WriteEvent(&evs[0])
		}, errOrder},
		{"token after the range", nil, func(w *Writer) error {
			for i := range evs {
				w.WriteEvent(&evs[i])
			}
			e := evs[0]
			e.Token = 10
			return w.WriteEvent(&e)
		}, errOrder},
		{"gap without filter", nil, func(w *Writer) error { return w.WriteEvent(&evs[3]) }, errGap},
		{"gap at the end without filter", nil, func(w *Writer) error { w.WriteEvent(&evs[0]); return w.FinishEvents() }, errGap},
		{"gap not at the next token", nil, func(w *Writer) error { return w.addGap(manifest.Gap{From: 1, To: 2, Cause: "x"}) }, errOrder},
		{"gap beyond the range", nil, func(w *Writer) error { return w.addGap(manifest.Gap{From: 0, To: 10, Cause: "x"}) }, errOrder},
		{"snapshot before FinishEvents", nil, func(w *Writer) error { s := edgeSnapshots()[0]; return w.WriteSnapshot(&s) }, errState},
		{"snapshot with mode none", func(o *Options) { o.Snapshots = manifest.SnapshotsNone }, func(w *Writer) error {
			for i := range evs {
				w.WriteEvent(&evs[i])
			}
			w.FinishEvents()
			s := edgeSnapshots()[0]
			return w.WriteSnapshot(&s)
		}, errState},
		{"event after FinishEvents", func(o *Options) { o.Range.Last = -1 }, func(w *Writer) error {
			w.FinishEvents()
			return w.WriteEvent(&evs[0])
		}, errState},
		{"snapshot positions not increasing", func(o *Options) { o.Range.Last = -1 }, func(w *Writer) error {
			w.FinishEvents()
			s := edgeSnapshots()
			w.WriteSnapshot(&s[1])
			return w.WriteSnapshot(&s[0])
		}, errOrder},
		{"server snapshot positions not ordinals", func(o *Options) {
			o.Range.Last = -1
			o.Source = manifest.Source{Kind: manifest.SourceServer, Address: "x:1", Context: "c"}
		}, func(w *Writer) error {
			w.FinishEvents()
			s := edgeSnapshots()
			w.WriteSnapshot(&s[0])
			return w.WriteSnapshot(&s[1]) // position 2 after 0
		}, errOrder},
		{"line of another token", nil, func(w *Writer) error { return w.WriteEventLine(0, AppendEventJSON(nil, &evs[1])) }, ErrRecord},
		{"line without LF", nil, func(w *Writer) error {
			l := AppendEventJSON(nil, &evs[0])
			return w.WriteEventLine(0, l[:len(l)-1])
		}, ErrRecord},
		{"two lines as one", nil, func(w *Writer) error {
			l := AppendEventJSON(nil, &evs[0])
			return w.WriteEventLine(0, append(l, l...))
		}, ErrRecord},
		{"invalid UTF-8 in a string", nil, func(w *Writer) error { e := evs[0]; e.MessageID = "\xff"; return w.WriteEvent(&e) }, ErrRecord},
		{"record too large", nil, func(w *Writer) error {
			e := evs[0]
			e.Payload = &Object{Type: "big", Data: bytes.Repeat([]byte("x"), maxRecordBytes)}
			return w.WriteEvent(&e)
		}, ErrTooLarge},
		{"write after Close", nil, func(w *Writer) error {
			for i := range evs {
				w.WriteEvent(&evs[i])
			}
			if err := w.Close(); err != nil {
				return err
			}
			return w.WriteEvent(&evs[0])
		}, errClosed},
		{"Close after Suspend", nil, func(w *Writer) error { w.Suspend(); return w.Close() }, errClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(0, 9)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			w, err := Create(filepath.Join(t.TempDir(), "a"), opts)
			require.NoError(t, err)
			err = tc.run(w)
			require.ErrorIs(t, err, tc.wantErr)
			// Errors are sticky.
			if !errorsIsAny(err, errClosed) {
				require.ErrorIs(t, w.WriteEvent(&evs[9]), tc.wantErr)
				require.ErrorIs(t, w.Close(), tc.wantErr)
			}
			w.Suspend()
		})
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if err != nil && strings.Contains(err.Error(), t.Error()) {
			return true
		}
	}
	return false
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o644))
	_, err := Create(dir, testOptions(0, -1))
	require.ErrorIs(t, err, ErrNotEmpty)

	for _, tc := range []struct {
		name string
		opts func(*Options)
	}{
		{"bad range", func(o *Options) { o.Range = manifest.Range{First: 5, Last: 3} }},
		{"negative first", func(o *Options) { o.Range = manifest.Range{First: -1, Last: 3} }},
		{"bad source kind", func(o *Options) { o.Source.Kind = "tape" }},
		{"bad snapshot mode", func(o *Options) { o.Snapshots = "some" }},
		{"previous not adjacent", func(o *Options) { o.Previous = &manifest.Link{Fingerprint: strings.Repeat("a", 64), LastToken: 7} }},
		{"previous fingerprint", func(o *Options) { o.Previous = &manifest.Link{Fingerprint: "xyz", LastToken: -1} }},
		{"level", func(o *Options) { o.Level = 23 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(0, 9)
			tc.opts(&opts)
			_, err := Create(filepath.Join(t.TempDir(), "a"), opts)
			require.Error(t, err)
		})
	}

	t.Run("bad SOURCE_DATE_EPOCH", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
		opts := testOptions(0, 9)
		opts.Created = time.Time{}
		_, err := Create(filepath.Join(t.TempDir(), "a"), opts)
		require.ErrorContains(t, err, "SOURCE_DATE_EPOCH")
	})
}

func TestEmptyArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	writeArchive(t, dir, testOptions(100, 99), nil, nil)
	a := mustOpen(t, dir)
	m := a.Manifest()
	assert.Equal(t, int64(0), m.Events.Count)
	assert.Empty(t, m.Chunks)
	assert.NotEmpty(t, m.Fingerprint)
	_, err := a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
}

func TestFilterAndGaps(t *testing.T) {
	evs := plainEvents(0, 40)
	dir := filepath.Join(t.TempDir(), "a")
	opts := testOptions(0, 49)
	opts.Filter = &manifest.Filter{IncludeTypes: []string{"com.example.OrderPlaced"}}
	w, err := Create(dir, opts)
	require.NoError(t, err)
	require.NoError(t, w.addGap(manifest.Gap{From: 0, To: 2, Cause: "unavailable"}))
	kept := 0
	for i := 3; i < len(evs); i++ {
		if evs[i].Payload.Type == "com.example.OrderPlaced" {
			require.NoError(t, w.WriteEvent(&evs[i]))
			kept++
		}
	}
	require.NoError(t, w.AddNote(manifest.Note{Kind: "tail-cut", Detail: "tokens after 39 unreadable", Token: 40}))
	require.NoError(t, w.AddNote(manifest.Note{Kind: "tail-cut", Detail: "tokens after 39 unreadable", Token: 40})) // deduplicated
	require.NoError(t, w.Close())
	a := mustOpen(t, dir)
	m := a.Manifest()
	assert.Equal(t, int64(kept), m.Events.Count)
	assert.Equal(t, []manifest.Gap{{From: 0, To: 2, Cause: "unavailable"}}, m.Gaps)
	assert.Equal(t, int64(50-3-kept), m.Events.Filtered)
	assert.Len(t, m.Notes, 1)
	rep, err := a.Verify(context.Background(), VerifyOptions{Problem: func(e *Error) { t.Error(e) }})
	require.NoError(t, err)
	assert.Equal(t, int64(kept), rep.Events)
}

func TestTypeCountsOverflow(t *testing.T) {
	n := manifest.MaxTypes + 5
	evs := make([]Record, n)
	for i := range evs {
		evs[i] = Record{Token: int64(i), MessageID: "m", Timestamp: 1, Payload: &Object{Type: "T" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + itoa(i)}}
	}
	dir := filepath.Join(t.TempDir(), "a")
	writeArchive(t, dir, testOptions(0, int64(n-1)), evs, nil)
	m := mustOpen(t, dir).Manifest()
	assert.Len(t, m.Events.Types, manifest.MaxTypes)
	assert.Equal(t, int64(5), m.Events.OtherTypes)
}

func itoa(i int) string { return string(appendInt(nil, int64(i))) }

func appendInt(b []byte, i int64) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

func TestPayloadTypeOf(t *testing.T) {
	for _, typ := range []string{"", "a", `we"ird\type`, "ünï", "tab\there"} {
		r := Record{Token: 1, MessageID: `,"payload":{"type":"fake"`, Payload: &Object{Type: typ},
			Metadata: []Meta{{Key: "k", Kind: MetaBytes, Bytes: Object{Type: "other"}}}}
		assert.Equal(t, typ, string(jsonline.PayloadType(AppendEventJSON(nil, &r))), typ)
	}
	r := Record{Token: 1, MessageID: `,"payload":{"type":"fake"`, Metadata: []Meta{{Key: "k", Kind: MetaBytes, Bytes: Object{Type: "other"}}}}
	assert.Nil(t, jsonline.PayloadType(AppendEventJSON(nil, &r)))
}

func TestLeadingInt(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
		ok   bool
	}{
		{`{"token":0,`, 0, true},
		{`{"token":12,`, 12, true},
		{`{"token":9223372036854775807,`, math.MaxInt64, true},
		{`{"token":-5,`, -5, true},
		{`{"token":012,`, 0, false},
		{`{"token":+1,`, 0, false},
		{`{"token":-0,`, 0, false},
		{`{"token":1.0,`, 0, false},
		{`{"token":9223372036854775808,`, 0, false},
		{`{"token":1}`, 0, false},
		{`{"position":1,`, 0, false},
	} {
		got, ok := jsonline.LeadingInt([]byte(tc.line), jsonline.EventPrefix)
		assert.Equal(t, tc.ok, ok, tc.line)
		assert.Equal(t, tc.want, got, tc.line)
	}
}
