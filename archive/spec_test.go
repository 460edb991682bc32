package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/schema"
)

// The tests in this file hold SPEC.md to the code: its examples, its shell recipes and its BagIt claims
// are checked against what the writer produces, independently of the package's own reader and verifier.

const specPath = "../SPEC.md"

// specSection returns the text of the SPEC.md section whose heading starts with heading (e.g. "### 5.3"),
// up to the next heading of the same or a higher level.
func specSection(t testing.TB, heading string) string {
	t.Helper()
	b, err := os.ReadFile(specPath)
	require.NoError(t, err)
	level := strings.Count(strings.Fields(heading)[0], "#")
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			l := len(line) - len(strings.TrimLeft(line, "#"))
			if in && l <= level {
				break
			}
			if strings.HasPrefix(line, heading) {
				in = true
				continue
			}
		}
		if in {
			out = append(out, line)
		}
	}
	require.True(t, in, "SPEC.md has no section %q", heading)
	return strings.Join(out, "\n")
}

// codeBlocks returns the fenced code blocks of a section whose info string is lang ("" for none).
func codeBlocks(section, lang string) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case !in && line == "```"+lang:
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestSpecRecordExample: the example line of SPEC.md 5.3 is a canonical, schema-valid event record.
func TestSpecRecordExample(t *testing.T) {
	blocks := codeBlocks(specSection(t, "### 5.3"), "")
	require.Len(t, blocks, 1)
	line := []byte(blocks[0])
	var r Record
	require.NoError(t, ParseEventJSON(line, &r))
	assert.Equal(t, string(line), string(AppendEventJSON(nil, &r)), "the example is canonical")
	require.NoError(t, schema.Validate(schema.Event(), line))
	assert.Equal(t, int64(7), r.Token)
	assert.True(t, math.Signbit(r.Metadata[1].Double), "-0 keeps its sign")
	assert.Equal(t, []byte{0xff, 0x00}, r.Payload.Data)
}

// TestSpecDoubleExamples: every example of SPEC.md 5.2's double encoding, both ways.
func TestSpecDoubleExamples(t *testing.T) {
	for _, tc := range []struct {
		text string
		bits uint64
	}{
		{"1e+06", math.Float64bits(1e6)},
		{"1.5e-07", math.Float64bits(1.5e-7)},
		{"5e-324", 1},
		{"1.7976931348623157e+308", math.Float64bits(math.MaxFloat64)},
		{"0", 0},
		{"100000", math.Float64bits(100000)},
		{"123456.7", math.Float64bits(123456.7)},
		{"0.0001", math.Float64bits(0.0001)},
		{"-0", 1 << 63},
		{"Infinity", math.Float64bits(math.Inf(1))},
		{"-Infinity", math.Float64bits(math.Inf(-1))},
		{"NaN", 0x7ff8000000000000},
		{"NaN(0x7ff0000000000001)", 0x7ff0000000000001},
		{"NaN(0xfff8000000000000)", 0xfff8000000000000},
	} {
		t.Run(tc.text, func(t *testing.T) {
			spec := specSection(t, "### 5.2")
			if !strings.HasPrefix(tc.text, "NaN(0x7ff0") && !strings.HasPrefix(tc.text, "NaN(0xfff8") {
				assert.Contains(t, spec, "`"+tc.text+"`", "SPEC.md 5.2 names the example")
			}
			assert.Equal(t, tc.text, string(appendDouble(nil, math.Float64frombits(tc.bits))))
			f, err := parseDouble(tc.text)
			require.NoError(t, err)
			assert.Equal(t, tc.bits, math.Float64bits(f))
		})
	}
}

// TestSpecManifestExample: the manifest shown in SPEC.md 4.4 is the golden vector's, member for member
// (the example leaves out all chunks but the first).
func TestSpecManifestExample(t *testing.T) {
	blocks := codeBlocks(specSection(t, "### 4.4"), "json")
	require.Len(t, blocks, 1)
	example := regexp.MustCompile(`,\s*\n\s*…[^\n]*\n`).ReplaceAllString(blocks[0], "\n")
	var got, want map[string]any
	require.NoError(t, json.Unmarshal([]byte(example), &got), example)
	b, err := os.ReadFile(filepath.Join(vectorsDir, "golden", "data", "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &want))
	wantChunks := want["chunks"].([]any)
	require.NotEmpty(t, wantChunks)
	want["chunks"] = wantChunks[:1]
	assert.Equal(t, want, got)
	require.NoError(t, schema.Validate(schema.Manifest(), b))
}

// TestSpecVectorTable: SPEC.md section 11 lists exactly the vectors of vectors.txt, with the same
// fingerprints, and every vector directory is listed.
func TestSpecVectorTable(t *testing.T) {
	sec := specSection(t, "## 11")
	rows := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\| (.*) \\|$").FindAllStringSubmatch(sec, -1)
	var names []string
	fps := map[string]string{}
	for _, r := range rows {
		names = append(names, r[1])
		if m := regexp.MustCompile("fingerprint `([0-9a-f]{64})`").FindStringSubmatch(r[2]); m != nil {
			fps[r[1]] = m[1]
		}
	}
	var listed []string
	for _, dir := range []string{vectorsDir, vectorsDirV2} {
		var here []string
		for _, v := range listVectors(t, dir) {
			here = append(here, v.name)
			assert.Equal(t, v.fingerprint, fps[v.name], "fingerprint of %s in SPEC.md and vectors.txt", v.name)
		}
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			if e.IsDir() {
				assert.Contains(t, here, e.Name(), "vector directory not in vectors.txt")
			}
		}
		listed = append(listed, here...)
	}
	assert.ElementsMatch(t, listed, names)
}

// TestSpecShellRecipes runs SPEC.md's coreutils recipes (section 2: sha256sum -c of both BagIt manifests;
// section 7.3: the fingerprint from zstd, sha256sum and basenc) in archives of every shape: the golden
// vector, a fresh archive with every record edge, an archive with no records, one with events only.
func TestSpecShellRecipes(t *testing.T) {
	for _, tool := range []string{"bash", "zstd", "sha256sum", "basenc", "tr", "cut"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	overview := codeBlocks(specSection(t, "## 2."), "sh")
	require.Len(t, overview, 1)
	check := strings.SplitN(overview[0], "\n", 2)[0] // cd ARCHIVE && sha256sum -c … && sha256sum -c …
	require.Contains(t, check, "sha256sum -c manifest-sha256.txt")
	check = strings.TrimPrefix(check, "cd ARCHIVE && ")
	recipe := codeBlocks(specSection(t, "### 7.3"), "sh")
	require.Len(t, recipe, 1)

	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	goldenArchive(t, fresh)
	empty := filepath.Join(base, "empty")
	writeArchive(t, empty, testOptions(0, -1), nil, nil)
	eventsOnly := filepath.Join(base, "events-only")
	opts := testOptions(0, 99)
	opts.Snapshots = manifest.SnapshotsNone
	opts.ChunkRecords = 7
	writeArchive(t, eventsOnly, opts, plainEvents(0, 100), nil)
	for _, dir := range []string{filepath.Join(vectorsDir, "golden"), filepath.Join(vectorsDir, "golden-incremental"), fresh, empty, eventsOnly} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", check+"\n"+recipe[0])
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			a := mustOpen(t, dir)
			assert.Contains(t, string(out), a.Manifest().Fingerprint+"  -\n", "the recipe's fingerprint")
			assert.NotContains(t, string(out), "FAILED")
		})
	}
}

// TestBagItRFC8493 checks archives against the rules of RFC 8493 as written, with a validator of its own
// (no code shared with verify.go), and with the Library of Congress's bagit.py when it is installed.
func TestBagItRFC8493(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1714600000") // 2024-05-01T21:46:40Z
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	goldenArchive(t, fresh)
	empty := filepath.Join(base, "empty")
	writeArchive(t, empty, testOptions(0, -1), nil, nil)
	dated := filepath.Join(base, "dated")
	opts := testOptions(0, 9)
	opts.Created = time.Time{} // from SOURCE_DATE_EPOCH
	writeArchive(t, dated, opts, plainEvents(0, 10), nil)

	for _, dir := range []string{filepath.Join(vectorsDir, "golden"), filepath.Join(vectorsDir, "golden-incremental"), fresh, empty, dated} {
		t.Run("valid/"+filepath.Base(dir), func(t *testing.T) {
			assert.Empty(t, rfc8493Problems(t, dir))
			info := bagInfoLabels(t, dir)
			m := mustOpen(t, dir).Manifest()
			assert.Equal(t, []string{m.Created.UTC().Format("2006-01-02")}, info["Bagging-Date"])
			assert.Equal(t, []string{m.Tool}, info["Bag-Software-Agent"])
			assert.Equal(t, []string{m.Fingerprint}, info["Axarchive-Fingerprint"])
			assert.Equal(t, []string{"axarchive/1"}, info["Axarchive-Format"])
			if filepath.Base(dir) == "dated" {
				assert.Equal(t, []string{"2024-05-01"}, info["Bagging-Date"], "SOURCE_DATE_EPOCH gives the date")
			}
			if py, err := exec.LookPath("bagit.py"); err == nil {
				out, err := exec.Command(py, "--validate", dir).CombinedOutput()
				assert.NoError(t, err, "bagit.py: %s", out)
			}
		})
	}

	// The validator itself finds what RFC 8493 forbids.
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"flipped bit in a payload file", func(dir string) { flipBit(t, filepath.Join(dir, chunk0), 20) }, "payload checksum"},
		{"payload file not listed", func(dir string) { write(t, filepath.Join(dir, "data", "x"), "x") }, "not in manifest-sha256.txt"},
		{"wrong Payload-Oxum", func(dir string) {
			replaceIn(t, filepath.Join(dir, bagInfoPath), "Payload-Oxum: ", "Payload-Oxum: 9")
		}, "Payload-Oxum"},
		{"other bagit.txt", func(dir string) { write(t, filepath.Join(dir, bagitPath), "BagIt-Version: 0.97\n") }, "bagit.txt"},
	} {
		t.Run("invalid/"+tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, fresh, dir)
			tc.damage(dir)
			assert.Contains(t, strings.Join(rfc8493Problems(t, dir), "\n"), tc.want)
		})
	}
}

// bagInfoLabels reads bag-info.txt as RFC 8493 2.2.2 defines it.
func bagInfoLabels(t testing.TB, dir string) map[string][]string {
	b, err := os.ReadFile(filepath.Join(dir, "bag-info.txt"))
	require.NoError(t, err)
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		label, value, ok := strings.Cut(line, ":")
		require.True(t, ok, line)
		out[label] = append(out[label], strings.TrimLeft(value, " \t"))
	}
	return out
}

// rfc8493Problems validates the bag in dir by RFC 8493, sections 2 and 3 ("complete" and "valid"), for a
// bag with SHA-256 manifests and no fetch.txt.
func rfc8493Problems(t testing.TB, dir string) []string {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			bad("%s: %v", name, err)
		}
		return b
	}

	// 2.1.1: the bag declaration. axarchive writes version 1.0 and UTF-8, in this order, LF-terminated.
	if b := read("bagit.txt"); string(b) != "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n" {
		bad("bagit.txt is %q", b)
	}
	// 2.1.2: the payload directory.
	if fi, err := os.Lstat(filepath.Join(dir, "data")); err != nil || !fi.IsDir() {
		bad("no payload directory data/")
	}
	// The payload files: every regular file under data/.
	payload := map[string]int64{}
	var octets int64
	require.NoError(t, filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			bad("%s is not a regular file", p)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		payload[filepath.ToSlash(rel)] = fi.Size()
		octets += fi.Size()
		return nil
	}))

	// 2.1.3 and 2.2.1: "checksum<whitespace>filepath" lines, UTF-8, paths relative to the bag with
	// CR, LF and % percent-encoded.
	parse := func(name string) map[string]string {
		b := read(name)
		if !utf8Valid(b) {
			bad("%s is not UTF-8", name)
		}
		out := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			m := regexp.MustCompile(`^([0-9a-fA-F]{64})[ \t]+(\S.*)$`).FindStringSubmatch(sc.Text())
			if m == nil {
				bad("%s: not a manifest line: %q", name, sc.Text())
				continue
			}
			path, err := percentDecode(m[2])
			if err != nil || strings.HasPrefix(path, "/") || slices.Contains(strings.Split(path, "/"), "..") {
				bad("%s: path %q", name, m[2])
				continue
			}
			if _, dup := out[path]; dup {
				bad("%s: %s listed twice", name, path)
			}
			out[path] = strings.ToLower(m[1])
		}
		return out
	}
	sum := func(path string) string {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
		if err != nil {
			return "unreadable: " + err.Error()
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}

	manifest := parse("manifest-sha256.txt")
	for path, digest := range manifest {
		if !strings.HasPrefix(path, "data/") {
			bad("manifest-sha256.txt lists %s, outside the payload directory", path)
		} else if _, ok := payload[path]; !ok {
			bad("manifest-sha256.txt lists %s, which is not there", path)
		} else if s := sum(path); s != digest {
			bad("payload checksum of %s is %s, manifest-sha256.txt says %s", path, s, digest)
		}
	}
	for path := range payload {
		if _, ok := manifest[path]; !ok {
			bad("payload file %s is not in manifest-sha256.txt", path)
		}
	}

	tags := parse("tagmanifest-sha256.txt")
	for path, digest := range tags {
		switch {
		case strings.HasPrefix(path, "data/"):
			bad("tagmanifest-sha256.txt lists payload file %s", path)
		case strings.HasPrefix(path, "tagmanifest-"):
			bad("tagmanifest-sha256.txt lists a tag manifest")
		case sum(path) != digest:
			bad("tag checksum of %s is %s, tagmanifest-sha256.txt says %s", path, sum(path), digest)
		}
	}
	for _, f := range []string{"bagit.txt", "bag-info.txt", "manifest-sha256.txt"} {
		if _, ok := tags[f]; !ok {
			bad("tagmanifest-sha256.txt does not list %s", f)
		}
	}

	// 2.2.2: bag-info.txt, "Label: value" lines (continuations indented); the reserved labels used.
	info := read("bag-info.txt")
	if !utf8Valid(info) {
		bad("bag-info.txt is not UTF-8")
	}
	labels := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(info), "\n"), "\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		m := regexp.MustCompile(`^([^:\s][^:]*):[ \t](.*)$`).FindStringSubmatch(line)
		if m == nil {
			bad("bag-info.txt: not a metadata line: %q", line)
			continue
		}
		labels[m[1]] = append(labels[m[1]], m[2])
	}
	for _, l := range []string{"Payload-Oxum", "Bagging-Date", "Bag-Software-Agent"} {
		if len(labels[l]) > 1 {
			bad("bag-info.txt repeats %s", l)
		}
	}
	if oxum := labels["Payload-Oxum"]; len(oxum) != 1 || oxum[0] != fmt.Sprintf("%d.%d", octets, len(payload)) {
		bad("Payload-Oxum is %q, the payload has %d octets in %d files", oxum, octets, len(payload))
	}
	if d := labels["Bagging-Date"]; len(d) == 1 {
		if _, err := time.Parse("2006-01-02", d[0]); err != nil {
			bad("Bagging-Date %q is not YYYY-MM-DD", d[0])
		}
	}

	// Only the tag files RFC 8493 and axarchive define sit next to data/.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		switch e.Name() {
		case "data", "bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt":
		default:
			if _, ok := tags[e.Name()]; !ok {
				bad("tag file %s is not in tagmanifest-sha256.txt", e.Name())
			}
		}
	}
	return problems
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\ufffd") == string(b) }

// percentDecode undoes the percent-encoding RFC 8493 2.1.3 requires for CR, LF and %.
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad percent-encoding in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// TestSpecManifestMembers: SPEC.md 4 says which members are always present: every member but
// source.address, source.path, filter and previous, with the arrays present even when empty.
func TestSpecManifestMembers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty")
	writeArchive(t, dir, testOptions(0, -1), nil, nil)
	b, err := os.ReadFile(filepath.Join(dir, "data", "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, schema.Validate(schema.Manifest(), b))
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"format", "version", "tool", "created", "source", "fingerprint", "events", "snapshots", "chunking", "gaps", "notes", "chunks"} {
		assert.Contains(t, m, k)
	}
	assert.NotContains(t, m, "filter")
	assert.NotContains(t, m, "previous")
	for _, k := range []string{"gaps", "notes", "chunks"} {
		assert.Equal(t, []any{}, m[k], k)
	}
	assert.Equal(t, []any{}, m["events"].(map[string]any)["types"])
	assert.Equal(t, []any{}, m["snapshots"].(map[string]any)["types"])
	assert.True(t, bytes.HasSuffix(b, []byte("}\n")), "followed by LF")
	assert.Equal(t, "  ", string(b[2:4]), "indented with two spaces")
}
