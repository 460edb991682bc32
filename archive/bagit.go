package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

// A complete archive is a BagIt 1.0 bag (RFC 8493): these tag files sit in the archive root, the
// payload (everything of axarchive's) under data/.

const bagitContent = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

// Labels of bag-info.txt that axarchive writes and checks. Bag-Software-Agent, Bagging-Date and
// Payload-Oxum are reserved by RFC 8493; the Axarchive-* labels are axarchive's own.
const (
	bagAgent       = "Bag-Software-Agent"
	bagDate        = "Bagging-Date"
	bagOxum        = "Payload-Oxum"
	bagFormat      = "Axarchive-Format"
	bagFingerprint = "Axarchive-Fingerprint"
	bagSource      = "Axarchive-Source"
	bagEvents      = "Axarchive-Events"
	bagSnapshots   = "Axarchive-Snapshots"
)

// bagFormatValue is the value of Axarchive-Format: format name and version.
func bagFormatValue(version int) string { return formatName + "/" + strconv.Itoa(version) }

// tagFile is one BagIt tag file, with its content.
type tagFile struct {
	path string
	data []byte
}

// bagFiles returns the tag files of a complete archive, in the order they are written (the tag
// manifest last, as it covers the others).
func bagFiles(m *Manifest, manifestJSON []byte) []tagFile {
	type entry struct{ sum, path string }
	sum := sha256.Sum256(manifestJSON)
	entries := []entry{{hex.EncodeToString(sum[:]), manifestPath}}
	oxumBytes, oxumFiles := int64(len(manifestJSON)), 1
	for _, c := range m.Chunks {
		entries = append(entries, entry{c.SHA256, c.archivePath()})
		oxumBytes += c.Size
		oxumFiles++
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	var payload bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&payload, "%s  %s\n", e.sum, e.path)
	}

	var info bytes.Buffer
	field := func(label, value string) { fmt.Fprintf(&info, "%s: %s\n", label, bagValue(value)) }
	field(bagAgent, m.Tool)
	field(bagDate, m.Created.UTC().Format("2006-01-02"))
	field(bagOxum, fmt.Sprintf("%d.%d", oxumBytes, oxumFiles))
	field(bagFormat, bagFormatValue(m.Version))
	field(bagFingerprint, m.Fingerprint)
	field(bagSource, describeSource(m.Source))
	field(bagEvents, fmt.Sprintf("%d events, tokens %d to %d", m.Events.Count, m.Events.FirstToken, m.Events.LastToken))
	field(bagSnapshots, fmt.Sprintf("%d snapshots (%s)", m.Snapshots.Count, m.Snapshots.Mode))

	files := []tagFile{
		{bagitPath, []byte(bagitContent)},
		{bagInfoPath, info.Bytes()},
		{bagManifestPath, payload.Bytes()},
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b tagFile) int { return strings.Compare(a.path, b.path) })
	var tags bytes.Buffer
	for _, f := range sorted {
		s := sha256.Sum256(f.data)
		fmt.Fprintf(&tags, "%x  %s\n", s, f.path)
	}
	return append(files, tagFile{tagManifestPath, tags.Bytes()})
}

// describeSource is the one-line form of a source used by bag-info.txt and the command line.
func describeSource(s Source) string {
	where := s.Address
	if s.Kind == SourceSegments {
		where = s.Path
	}
	return fmt.Sprintf("%s %s context %s", s.Kind, where, s.Context)
}

// bagValue makes a value fit on one bag-info.txt line.
func bagValue(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// bagLine is one entry of a BagIt manifest.
type bagLine struct {
	line int64
	sum  string // lower-case hex
	path string
}

// parseBagManifest parses manifest-sha256.txt or tagmanifest-sha256.txt: lines of a SHA-256 in hex,
// white space and a path (sha256sum's "hash  path" and "hash *path" included; CRLF tolerated). Lines
// it cannot parse are returned as problems.
func parseBagManifest(rel string, b []byte) ([]bagLine, []*Error) {
	var out []bagLine
	var problems []*Error
	for i, raw := range strings.Split(string(b), "\n") {
		n := int64(i + 1)
		line := strings.TrimSuffix(raw, "\r")
		if line == "" {
			if i != len(strings.Split(string(b), "\n"))-1 {
				problems = append(problems, errorf(rel, n, -1, ErrBag, "empty line"))
			}
			continue
		}
		sum, path, ok := strings.Cut(line, " ")
		if !ok {
			sum, path, ok = strings.Cut(line, "\t")
		}
		path = strings.TrimLeft(path, " \t")
		path = strings.TrimPrefix(path, "*")
		if !ok || len(sum) != 64 || !isHex(sum) || path == "" {
			problems = append(problems, errorf(rel, n, -1, ErrBag, "not a %q line: %q", "sha256  path", jsonline.Excerpt([]byte(line))))
			continue
		}
		out = append(out, bagLine{line: n, sum: strings.ToLower(sum), path: path})
	}
	return out, problems
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// bagInfoField is one label of bag-info.txt with its value (continuation lines joined) and line.
type bagInfoField struct {
	label, value string
	line         int64
}

func parseBagInfo(b []byte) ([]bagInfoField, []*Error) {
	var out []bagInfoField
	var problems []*Error
	lines := strings.Split(string(b), "\n")
	for i, raw := range lines {
		n := int64(i + 1)
		line := strings.TrimSuffix(raw, "\r")
		if line == "" {
			if i != len(lines)-1 {
				problems = append(problems, errorf(bagInfoPath, n, -1, ErrBag, "empty line"))
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) == 0 {
				problems = append(problems, errorf(bagInfoPath, n, -1, ErrBag, "continuation line without a label"))
				continue
			}
			out[len(out)-1].value += " " + strings.TrimSpace(line)
			continue
		}
		label, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(label) == "" {
			problems = append(problems, errorf(bagInfoPath, n, -1, ErrBag, "not a %q line", "Label: value"))
			continue
		}
		out = append(out, bagInfoField{label: strings.TrimSpace(label), value: strings.TrimSpace(value), line: n})
	}
	return out, problems
}
