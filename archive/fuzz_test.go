package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	sjson "github.com/segmentio/encoding/json"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/archive/internal/zstdframe"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ (written by TestGolden -update from the golden
// archive); f.Add adds a few more here.

// FuzzManifest feeds arbitrary bytes to the manifest parser: it must never panic, and a manifest it
// accepts must survive a marshal and parse round trip unchanged.
func FuzzManifest(f *testing.F) {
	b, err := os.ReadFile(filepath.Join(vectorsDir, "golden", "data", "manifest.json"))
	if err == nil {
		f.Add(b)
		// Hostile: members twice, nesting, a huge gap table (checked against every chunk in one walk).
		f.Add(bytes.Replace(b, []byte(`"version": 1,`), []byte(`"version": 2, "version": 1,`), 1))
		f.Add(bytes.Replace(b, []byte(`"count": 37,`), []byte(`"count": 37, "count": 38,`), 1))
		f.Add(bytes.Replace(b, []byte(`"notes": [`), []byte(`"notes": [`+strings.Repeat("[", 64)+strings.Repeat("]", 64)+`,`), 1))
		var gaps strings.Builder
		for i := range 2000 {
			fmt.Fprintf(&gaps, `{"from":%d,"to":%d,"cause":"x"},`, 2*i, 2*i)
		}
		f.Add(bytes.Replace(b, []byte(`"gaps": [`), []byte(`"gaps": [`+gaps.String()), 1))
	}
	f.Add([]byte(`{"format":"axarchive","version":1}`))
	f.Add([]byte(`{"format":"axarchive","version":1,"\u0076ersion":2}`))
	f.Add([]byte(`{"format":"axarchive","version":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		out, err := marshalManifest(m)
		if err != nil {
			t.Fatalf("marshal an accepted manifest: %v", err)
		}
		m2, err := parseManifest(out)
		if err != nil {
			t.Fatalf("re-parse an accepted manifest: %v\n%s", err, out)
		}
		out2, _ := marshalManifest(m2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("manifest round trip differs:\n%s\n%s", out, out2)
		}
		for _, c := range m.Chunks {
			if _, _, ok := parseChunkName(c.Path); !ok {
				t.Fatalf("accepted chunk path %q", c.Path)
			}
		}
	})
}

// FuzzChunk feeds an arbitrary chunk file (described by a manifest entry that believes its size and
// digest, and claims rawSize) to the chunk reader: it must never panic, never read more than rawSize,
// and only end cleanly on content that matches the entry.
func FuzzChunk(f *testing.F) {
	raw := lines(0, 1, 2)
	f.Add(zstdCompress(raw), uint32(len(raw)), uint8(3))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00, 0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51}, uint32(0), uint8(0))
	f.Add([]byte("not zstd"), uint32(10), uint8(1))
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data", "events"), 0o755); err != nil {
		f.Fatal(err)
	}
	dec, err := zstdframe.NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dec.Close)
	f.Fuzz(func(t *testing.T, zb []byte, rawSize uint32, records uint8) {
		rawSize %= 1 << 20 // a claimed size is a bound on work; keep the fuzzer's small
		info := manifest.ChunkInfo{Path: chunkName(manifest.StreamEvents, 0, false), Stream: manifest.StreamEvents, Records: int64(records), Last: 1 << 40,
			Size: int64(len(zb)), SHA256: sha256hex(zb), RawSize: int64(rawSize)}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(archivePath(info.Path))), zb, 0o644); err != nil {
			t.Fatal(err)
		}
		var cr chunkReader
		if err := cr.open(Dir(dir), &info, dec, nil, false); err != nil {
			return
		}
		defer cr.close()
		var content []byte
		for {
			line, err := cr.readLine()
			if err != nil {
				break
			}
			content = append(content, line...)
		}
		if int64(len(content)) > int64(rawSize) {
			t.Fatalf("read %d bytes, more than rawSize %d", len(content), rawSize)
		}
		info.RawSHA256 = sha256hex(content)
		if err := cr.finish(); err == nil {
			if int64(len(content)) != int64(rawSize) || int64(bytes.Count(content, []byte("\n"))) != int64(records) {
				t.Fatalf("clean end on content that does not match the entry")
			}
		}
	})
}

// FuzzEventJSON checks the record codec and the schema validation on arbitrary lines: a line that
// ParseEventJSON (or ParseSnapshotJSON) accepts is reproduced byte for byte by AppendEventJSON, is valid
// against the schema, and its projection computed from the record equals the projection of the decoded
// line. Nothing panics.
func FuzzEventJSON(f *testing.F) {
	for _, r := range edgeEvents(0) {
		f.Add(AppendEventJSON(nil, &r))
	}
	for _, r := range edgeSnapshots() {
		f.Add(AppendSnapshotJSON(nil, &r))
	}
	f.Add([]byte(`{"token":1,"messageId":"","timestamp":0}`))
	evSchema, snSchema := newRecordSchema(manifest.StreamEvents), newRecordSchema(manifest.StreamSnapshots)
	var parser recordParser
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, snapshot := range []bool{false, true} {
			var r Record
			parse, appendJSON, rs := ParseEventJSON, AppendEventJSON, evSchema
			if snapshot {
				parse, appendJSON, rs = ParseSnapshotJSON, AppendSnapshotJSON, snSchema
			}
			err := parse(line, &r)
			// The fast parser accepts exactly what the reference accepts, giving the same record.
			var fast Record
			if ok := parser.fast(line, &fast, snapshot); ok != (err == nil) {
				t.Fatalf("fast parser accepts=%v, ParseEventJSON error %v, for %q", ok, err, line)
			} else if ok && (!bytes.Equal(appendJSON(nil, &fast), appendJSON(nil, &r)) || (fast.Payload == nil) != (r.Payload == nil)) {
				t.Fatalf("fast parser gives %+v, ParseEventJSON %+v, for %q", fast, r, line)
			}
			if err != nil {
				// Still never panics.
				_ = rs.v.ValidateLine(line)
				continue
			}
			want := line
			if len(want) == 0 || want[len(want)-1] != '\n' {
				want = append(append([]byte(nil), line...), '\n')
			}
			if got := appendJSON(nil, &r); !bytes.Equal(got, want) {
				t.Fatalf("accepted %q but re-encodes as %q", want, got)
			}
			if err := rs.v.ValidateLine(line); err != nil {
				t.Fatalf("accepted %q but the schema rejects it: %v", line, err)
			}
			if err := projectionsAgree(rs, line, &r); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// projectionsAgree compares the projection computed from a record with the one computed from its
// decoded line, as JSON values.
func projectionsAgree(rs *recordSchema, line []byte, r *Record) error {
	var doc any
	if _, err := sjson.Parse(bytes.TrimSuffix(line, []byte("\n")), &doc, sjson.UseNumber); err != nil {
		return err
	}
	fromDoc := normalizeJSON(rs.v.Project(doc))
	var fromRec any
	p := rs.appendProjection(nil, r)
	if _, err := sjson.Parse(p, &fromRec, sjson.UseNumber); err != nil {
		return fmt.Errorf("projection %s is not JSON: %v", p, err)
	}
	a, _ := sjson.Marshal(fromDoc)
	b, _ := sjson.Marshal(normalizeJSON(fromRec))
	if !bytes.Equal(a, b) {
		return fmt.Errorf("projections differ for %s:\nfrom the line:   %s\nfrom the record: %s", line, a, b)
	}
	return nil
}

// normalizeJSON sorts the metadata array of a projection by its members' JSON, so that two projections
// of the same set compare equal.
func normalizeJSON(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if list, ok := m["metadata"].([]any); ok {
		keyed := make([]string, len(list))
		for i, e := range list {
			b, _ := sjson.Marshal(e)
			keyed[i] = string(b)
		}
		sortTogether(keyed, list)
	}
	return m
}

func sortTogether(keys []string, vals []any) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
			vals[j], vals[j-1] = vals[j-1], vals[j]
		}
	}
}

// TestProjectionFromRecord runs the projection property on every record the tests know, and on
// records with values outside the schema's patterns.
func TestProjectionFromRecord(t *testing.T) {
	rs := newRecordSchema(manifest.StreamEvents)
	recs := append(edgeEvents(0), plainEvents(100, 50)...)
	recs = append(recs, Record{Token: -5, MessageID: "neg"})
	for i := range recs {
		line := AppendEventJSON(nil, &recs[i])
		if err := projectionsAgree(rs, line, &recs[i]); err != nil {
			t.Error(err)
		}
	}
	// A negative token is canonical but not schema-valid: both paths must say so.
	bad := Record{Token: -5, MessageID: "neg"}
	if _, err := rs.check(AppendEventJSON(nil, &bad), &bad, true, nil); err == nil {
		t.Error("negative token accepted by the schema")
	}
}

// writeFuzzSeeds writes the committed seed corpora from the golden archive (called by TestGolden
// -update).
func writeFuzzSeeds(t *testing.T) {
	golden := filepath.Join(vectorsDir, "golden")
	write := func(fuzz, name string, args ...any) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint32:
				fmt.Fprintf(&b, "uint32(%d)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%q)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := os.ReadFile(filepath.Join(golden, "data", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	write("FuzzManifest", "golden", m)
	write("FuzzManifest", "truncated", m[:len(m)/2])
	write("FuzzManifest", "version3", bytes.Replace(m, []byte(`"version": 1`), []byte(`"version": 3`), 1))
	a := mustOpen(t, golden)
	for i, c := range a.Manifest().Chunks[:2] {
		zb, err := os.ReadFile(filepath.Join(golden, filepath.FromSlash(archivePath(c.Path))))
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzChunk", fmt.Sprintf("golden-%d", i), zb, uint32(c.RawSize), uint8(c.Records))
		write("FuzzChunk", fmt.Sprintf("golden-%d-truncated", i), zb[:len(zb)*2/3], uint32(c.RawSize), uint8(c.Records))
	}
	for i, line := range readAll(t, a, manifest.StreamEvents)[:16] {
		write("FuzzEventJSON", fmt.Sprintf("golden-%02d", i), []byte(line))
	}
	for i, line := range readAll(t, a, manifest.StreamSnapshots) {
		write("FuzzEventJSON", fmt.Sprintf("golden-snapshot-%d", i), []byte(line))
	}
}

// TestFastParser checks the fast parser against ParseEventJSON on every test record and on lines that
// are almost canonical.
func TestFastParser(t *testing.T) {
	var p recordParser
	check := func(line []byte, snapshot bool) {
		t.Helper()
		var ref, fast Record
		parse, appendJSON := ParseEventJSON, AppendEventJSON
		if snapshot {
			parse, appendJSON = ParseSnapshotJSON, AppendSnapshotJSON
		}
		err := parse(line, &ref)
		ok := p.fast(line, &fast, snapshot)
		if ok != (err == nil) {
			t.Fatalf("fast accepts=%v, reference error %v, for %q", ok, err, line)
		}
		if ok && !bytes.Equal(appendJSON(nil, &fast), appendJSON(nil, &ref)) {
			t.Fatalf("records differ for %q", line)
		}
	}
	var lines [][]byte
	for _, r := range append(edgeEvents(0), plainEvents(100, 20)...) {
		line := AppendEventJSON(nil, &r)
		check(line, false)
		check(line[:len(line)-1], false) // without LF
		lines = append(lines, line)
	}
	for _, r := range edgeSnapshots() {
		check(AppendSnapshotJSON(nil, &r), true)
	}
	for _, tc := range []struct{ old, new string }{
		{`"messageId":"m2"`, `"messageId":"m\/2"`},
		{`"messageId":"m2"`, `"messageId":"m\u0032"`},
		{`\u0000`, `\u0000`},
		{`\u0000`, `\u000A`},
		{`\t`, `\u0009`},
		{`"number":"0"`, `"number":"-0"`},
		{`"number":"0"`, `"number":"00"`},
		{`"timestamp":0`, `"timestamp":-0`},
		{`"token":1,`, `"token":01,`},
		{`"double":"NaN"`, `"double":"NaN(0x7ff8000000000000)"`},
		{`"double":"-0"`, `"double":"-0.0"`},
		{`"boolean":true`, `"boolean":1`},
		{`"none":true`, `"none":false`},
		{`"encoding":"base64","data":"AP/+gGHD"`, `"encoding":"base64","data":"AP/+gGHE"`},
		{`"encoding":"text","data":"plain"`, `"encoding":"base64","data":"cGxhaW4="`},
		{`,"snapshot":true`, `,"snapshot":false`},
		{`"extra":"eAGCAQJoaQ=="`, `"extra":""`},
		{`}`, `} `},
		{`{"token":0`, `{"token":0,"token":0`},
		{`\b`, `\u0008`},
		{`\f`, `\u000c`},
		{`\u0000`, `\u001F`},
		{`,"time":"`, `,"time":"0`},
		{`T00:00:00.000Z"`, `T00:00:00.001Z"`},
		{`.000Z"`, `.000+00:00"`},
	} {
		for _, line := range lines {
			if bytes.Contains(line, []byte(tc.old)) {
				check(bytes.Replace(line, []byte(tc.old), []byte(tc.new), 1), false)
			}
		}
	}
	// Lines written by hand: each piece the parser checks on its own, canonical and not.
	for _, tail := range []string{
		`"payload":{"type":"t","revision":"","encoding":"base64","data":"/w=="}}`,                     // canonical
		`"payload":{"type":"t","revision":"","encoding":"base64","data":"/x=="}}`,                     // padding bits set
		`"payload":{"type":"t","revision":"","encoding":"base64","data":"/w"}}`,                       // padding missing
		`"payload":{"type":"t","revision":"","encoding":"base64","data":"/w=\r="}}`,                   // escaped CR
		"\"payload\":{\"type\":\"t\",\"revision\":\"\",\"encoding\":\"base64\",\"data\":\"/w=\r=\"}}", // raw CR
		`"payload":{"type":"t","revision":"","encoding":"base64","data":""}}`,                         // empty is text
		`"payload":{"type":"t","revision":"","encoding":"text","data":""}}`,                           // canonical
		`"payload":{"type":"t","revision":"","encoding":"base64","data":"YQ=="}}`,                     // "a" is text
		`"payload":{"type":"t\u007f","revision":"","encoding":"text","data":""}}`,                     // DEL needs no escape
		`"payload":{"type":"t\u001f","revision":"","encoding":"text","data":""}}`,                     // canonical
		`"metadata":[{"key":"k","double":"1"}]}`,
		`"metadata":[{"key":"k","double":"1.0"}]}`,
		`"metadata":[{"key":"k","double":"1e0"}]}`,
		`"metadata":[{"key":"k","double":"1e+21"}]}`,
		`"metadata":[{"key":"k","double":"1e21"}]}`,
		`"metadata":[{"key":"k","double":"+1"}]}`,
		`"metadata":[{"key":"k","double":"5e-324"}]}`,
		`"metadata":[{"key":"k","double":"4.9e-324"}]}`,
		`"metadata":[]}`,
		`"extra":"/w=="}`,
		`"extra":"/x=="}`,
		`"extra":"YQ=="}`,
	} {
		for _, head := range []string{
			`{"token":1,"messageId":"m","timestamp":0,"time":"1970-01-01T00:00:00.000Z",`,
			`{"token":1,"messageId":"m","aggregateId":"","aggregateType":"","sequence":0,"timestamp":0,"time":"1970-01-01T00:00:00.000Z",`,
			`{"token":1,"messageId":"m","aggregateId":"","aggregateType":"","sequence":1,"timestamp":0,"time":"1970-01-01T00:00:00.000Z",`,
			`{"token":1,"messageId":"m","timestamp":0,`,
			`{"token":1,"messageId":"m","timestamp":-62135596800001,`,
			`{"token":1,"messageId":"m","timestamp":-62135596800001,"time":"0000-12-31T23:59:59.999Z",`,
			`{"token":1,"messageId":"m","timestamp":253402300799999,"time":"9999-12-31T23:59:59.999Z",`,
		} {
			check([]byte(head+tail+"\n"), false)
			check([]byte(strings.Replace(head, `"token"`, `"position"`, 1)+tail+"\n"), true)
		}
	}
}

// FuzzJournal resumes an interrupted export from an arbitrary journal.json beside the committed chunk of
// the incomplete vector, and completes it: nothing panics, and an archive that verifies after that holds
// exactly the records an honest resume writes. A journal can make a resume fail, never make a wrong
// archive look right.
func FuzzJournal(f *testing.F) {
	src := filepath.Join(vectorsDir, "incomplete")
	seed, err := os.ReadFile(filepath.Join(src, journalPath))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(bytes.Replace(seed, []byte(`"nextToken":8`), []byte(`"nextToken":12`), 1))
	f.Add(bytes.Replace(seed, []byte(`"gaps":[]`), []byte(`"gaps":[{"from":8,"to":9,"cause":"x"}]`), 1))
	f.Add(bytes.Replace(seed, []byte(`"version":1`), []byte(`"version":2,"transactions":{"count":0,"lines":0,"hash":"","run":{"token":0,"events":0,"repeat":0},"open":-1}`), 1))
	f.Add([]byte(`{"format":"axarchive-journal","version":1}`))

	opts := testOptions(0, 39)
	resume := func(t testing.TB, journal []byte) (string, error) {
		dir := filepath.Join(t.TempDir(), "a")
		copyDir(t, src, dir)
		if err := os.WriteFile(filepath.Join(dir, journalPath), journal, 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := Resume(dir, opts)
		if err != nil {
			return dir, err
		}
		return dir, completeGolden(w)
	}
	records := func(t testing.TB, dir string) (events, snapshots []string) {
		a := mustOpen(t, dir)
		return readAll(t, a, manifest.StreamEvents), readAll(t, a, manifest.StreamSnapshots)
	}
	dir, err := resume(f, seed)
	if err != nil {
		f.Fatalf("resume the incomplete vector: %v", err)
	}
	wantEvents, wantSnapshots := records(f, dir)

	f.Fuzz(func(t *testing.T, journal []byte) {
		dir, err := resume(t, journal)
		if err != nil {
			return
		}
		a, err := Open(dir)
		if err != nil {
			return
		}
		if rep, err := a.Verify(context.Background(), VerifyOptions{}); err != nil || !rep.OK() {
			return
		}
		events, snapshots := records(t, dir)
		require.Equal(t, wantEvents, events, "a verified archive from journal %q", journal)
		require.Equal(t, wantSnapshots, snapshots, "a verified archive from journal %q", journal)
	})
}

// completeGolden writes what a resumed w lacks of the golden vector's records (its gap included) and
// closes it; on an error it suspends w.
func completeGolden(w *Writer) (err error) {
	defer func() {
		if err != nil {
			_ = w.Suspend()
		}
	}()
	if !w.EventsDone() {
		evs := append(edgeEvents(0), plainEvents(19, 21)...)
		for i := range evs {
			next := w.events.next // NextToken is the journal's: the next token not committed
			if evs[i].Token < next {
				continue
			}
			if evs[i].Token > next {
				if err := w.addGap(manifest.Gap{From: next, To: evs[i].Token - 1, Cause: "unavailable"}); err != nil {
					return err
				}
			}
			if err := w.WriteEvent(&evs[i]); err != nil {
				return err
			}
		}
		if err := w.FinishEvents(); err != nil {
			return err
		}
	}
	snaps := edgeSnapshots()
	if n := w.SnapshotsCommitted(); n >= 0 && n <= int64(len(snaps)) {
		snaps = snaps[n:]
	}
	for i := range snaps {
		if err := w.WriteSnapshot(&snaps[i]); err != nil {
			return err
		}
	}
	return w.Close()
}
