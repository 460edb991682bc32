package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive/internal/bagit"
)

// A complete archive is a BagIt 1.0 bag (RFC 8493): these tag files sit in the archive root, the
// payload (everything of axarchive's) under data/. internal/bagit knows their syntax; this file, what
// an archive's say.

// Labels of bag-info.txt that are axarchive's own (the reserved ones are bagit's).
const (
	bagFormat      = "Axarchive-Format"
	bagFingerprint = "Axarchive-Fingerprint"
	bagSource      = "Axarchive-Source"
	bagEvents      = "Axarchive-Events"
	bagSnapshots   = "Axarchive-Snapshots"
)

// bagFormatValue is the value of Axarchive-Format: format name and version.
func bagFormatValue(version int) string { return formatName + "/" + strconv.Itoa(version) }

// bagFiles returns the tag files of a complete archive, in the order they are written (the tag
// manifest last, as it covers the others).
func bagFiles(m *manifest.Manifest, manifestJSON []byte) []bagit.File {
	sum := sha256.Sum256(manifestJSON)
	entries := []bagit.Entry{{Sum: hex.EncodeToString(sum[:]), Path: manifestPath}}
	oxumBytes, oxumFiles := int64(len(manifestJSON)), 1
	for _, c := range m.Chunks {
		entries = append(entries, bagit.Entry{Sum: c.SHA256, Path: archivePath(c.Path)})
		oxumBytes += c.Size
		oxumFiles++
	}
	info := bagit.Info([]bagit.Field{
		{Label: bagit.Agent, Value: m.Tool},
		{Label: bagit.Date, Value: m.Created.UTC().Format("2006-01-02")},
		{Label: bagit.Oxum, Value: fmt.Sprintf("%d.%d", oxumBytes, oxumFiles)},
		{Label: bagFormat, Value: bagFormatValue(m.Version)},
		{Label: bagFingerprint, Value: m.Fingerprint},
		{Label: bagSource, Value: describeSource(m.Source)},
		{Label: bagEvents, Value: fmt.Sprintf("%d events, tokens %d to %d", m.Events.Count, m.Events.FirstToken, m.Events.LastToken)},
		{Label: bagSnapshots, Value: fmt.Sprintf("%d snapshots (%s)", m.Snapshots.Count, m.Snapshots.Mode)},
	})
	files := []bagit.File{
		{Path: bagitPath, Data: []byte(bagit.Content)},
		{Path: bagInfoPath, Data: info},
		{Path: bagManifestPath, Data: bagit.Manifest(entries)},
	}
	return append(files, bagit.File{Path: tagManifestPath, Data: bagit.TagManifest(files)})
}

// describeSource is the one-line form of a source used by bag-info.txt and the command line.
func describeSource(s manifest.Source) string {
	where := s.Address
	if s.Kind == manifest.SourceSegments {
		where = s.Path
	}
	return fmt.Sprintf("%s %s context %s", s.Kind, where, s.Context)
}

// bagProblems turns what bagit could not parse in the tag file rel into problems of the archive.
func bagProblems(rel string, problems []bagit.Problem) []*Error {
	out := make([]*Error, len(problems))
	for i, p := range problems {
		out[i] = errorf(rel, p.Line, -1, ErrBag, "%s", p.Msg)
	}
	return out
}
