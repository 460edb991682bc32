package archive

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive/internal/bagit"
)

// The BagIt side of Verify: the tag files, the file list, and the payload manifest against the files as
// read.

// tags holds the tag files as read.
type tags struct {
	data map[string][]byte
}

func (v *verifier) readTags() *tags {
	t := &tags{data: map[string][]byte{}}
	for _, rel := range []string{bagitPath, bagInfoPath, bagManifestPath, tagManifestPath} {
		limit := int64(maxTagFileBytes)
		if rel == bagManifestPath {
			limit = maxPayloadListBytes
		}
		b, err := readSmallFile(v.a.st, rel, limit)
		if err != nil {
			var ae *Error
			if errors.As(err, &ae) {
				ae.Err = fmt.Errorf("%w: %v", ErrBag, ae.Err)
				v.problem(ae)
			} else if errors.Is(err, os.ErrNotExist) {
				v.problem(errorf(rel, 0, -1, ErrBag, "missing"))
			} else {
				v.problem(errorf(rel, 0, -1, ErrBag, "%v", unwrapPath(err)))
			}
			continue
		}
		t.data[rel] = b
	}
	return t
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// tree is a storage's listing as directories: an object store's directories are implied by the names
// below them, a local directory lists its own (and its links and other files as they are).
type tree struct {
	entries  map[string]StorageEntry
	children map[string][]string // by directory ("" for the root), sorted
}

func newTree(entries []StorageEntry) *tree {
	t := &tree{entries: map[string]StorageEntry{}, children: map[string][]string{}}
	add := func(e StorageEntry) bool {
		if _, ok := t.entries[e.Name]; ok {
			return false
		}
		t.entries[e.Name] = e
		parent := path.Dir(e.Name)
		if parent == "." {
			parent = ""
		}
		t.children[parent] = append(t.children[parent], e.Name)
		return true
	}
	for _, e := range entries {
		add(e)
		for p := path.Dir(e.Name); p != "." && add(StorageEntry{Name: p, Mode: fs.ModeDir}); p = path.Dir(p) {
		}
	}
	for _, c := range t.children {
		slices.Sort(c)
	}
	return t
}

// walk lists what is in the archive and reports what does not belong there.
func (v *verifier) walk() {
	listed := map[string]bool{}
	for _, c := range v.a.m.Chunks {
		listed[archivePath(c.Path)] = true
	}
	entries, err := v.a.st.List("")
	if err != nil {
		v.problem(errorf(".", 0, -1, ErrCorrupt, "%v", unwrapPath(err)))
		return
	}
	t := newTree(entries)
	for _, name := range t.children[""] {
		e := t.entries[name]
		switch {
		case name == dataDir && e.Mode.IsDir():
		case (name == bagitPath || name == bagInfoPath || name == bagManifestPath || name == tagManifestPath || name == signaturePath) && e.Mode.IsRegular():
		case e.Mode&fs.ModeSymlink != 0:
			v.problem(errorf(name, 0, -1, ErrCorrupt, "symbolic link"))
		default:
			v.problem(errorf(name, 0, -1, ErrCorrupt, "unexpected file (not part of the archive)"))
		}
	}
	v.walkData(t, dataDir, listed)
}

func (v *verifier) walkData(t *tree, rel string, listed map[string]bool) {
	e, ok := t.entries[rel]
	if !ok {
		_, err := v.a.st.Stat(rel)
		if err == nil {
			err = fs.ErrNotExist
		}
		v.problem(errorf(rel, 0, -1, ErrCorrupt, "%v", unwrapPath(err)))
		return
	}
	if e.Mode&fs.ModeSymlink != 0 || !e.Mode.IsDir() {
		v.problem(errorf(rel, 0, -1, ErrCorrupt, "not a directory"))
		return
	}
	for _, p := range t.children[rel] {
		e := t.entries[p]
		base := path.Base(p)
		switch {
		case e.Mode&fs.ModeSymlink != 0:
			if !listed[p] { // a listed chunk's own check reports it
				v.problem(errorf(p, 0, -1, ErrCorrupt, "symbolic link"))
			}
		case e.Mode.IsDir() && rel == dataDir && (base == manifest.StreamEvents || base == manifest.StreamSnapshots ||
			(base == manifest.StreamTransactions && v.a.m.Transactions != nil)):
			v.walkData(t, p, listed)
		case e.Mode.IsDir():
			v.problem(errorf(p, 0, -1, ErrCorrupt, "unexpected directory (not listed in %s)", manifestPath))
		case !e.Mode.IsRegular():
			v.problem(errorf(p, 0, -1, ErrCorrupt, "not a regular file"))
		case p == manifestPath || listed[p]:
			v.found[p] = e.Size
		default:
			v.found[p] = e.Size
			v.problem(errorf(p, 0, -1, ErrCorrupt, "file not listed in %s", manifestPath))
		}
	}
}

// checkBag checks bagit.txt, bag-info.txt and tagmanifest-sha256.txt.
func (v *verifier) checkBag(t *tags) {
	if b, ok := t.data[bagitPath]; ok {
		if !bagit.ValidDeclaration(b) {
			v.problem(errorf(bagitPath, 0, -1, ErrBag, "want exactly %q", bagit.Content))
		}
	}
	if b, ok := t.data[bagInfoPath]; ok {
		fields, problems := bagit.ParseInfo(b)
		for _, p := range bagProblems(bagInfoPath, problems) {
			v.problem(p)
		}
		get := func(label string) (bagit.Field, bool) {
			for _, f := range fields {
				if strings.EqualFold(f.Label, label) {
					return f, true
				}
			}
			v.problem(errorf(bagInfoPath, 0, -1, ErrBag, "no %s", label))
			return bagit.Field{}, false
		}
		m := v.a.m
		if f, ok := get(bagFormat); ok && f.Value != bagFormatValue(m.Version) {
			v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s is %q, the manifest has %q", bagFormat, f.Value, bagFormatValue(m.Version)))
		}
		if f, ok := get(bagFingerprint); ok && f.Value != m.Fingerprint {
			v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s is %s, the manifest has %s", bagFingerprint, f.Value, m.Fingerprint))
		}
		if f, ok := get(bagit.Date); ok && !bagit.ValidDate(f.Value) {
			v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s %q is not YYYY-MM-DD", bagit.Date, f.Value))
		}
		if f, ok := get(bagit.Oxum); ok {
			var n int64
			for _, size := range v.found {
				n += size
			}
			if want := fmt.Sprintf("%d.%d", n, len(v.found)); f.Value != want {
				v.problem(errorf(bagInfoPath, f.Line, -1, ErrBag, "%s is %s, the payload has %s (octets.files)", bagit.Oxum, f.Value, want))
			}
		}
	}
	b, ok := t.data[tagManifestPath]
	if !ok {
		return
	}
	entries, problems := bagit.ParseManifest(b)
	for _, p := range bagProblems(tagManifestPath, problems) {
		v.problem(p)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.Path != bagitPath && e.Path != bagInfoPath && e.Path != bagManifestPath:
			v.problem(errorf(tagManifestPath, e.Line, -1, ErrBag, "lists %q, which is not a tag file of the archive", e.Path))
			continue
		case seen[e.Path]:
			v.problem(errorf(tagManifestPath, e.Line, -1, ErrBag, "lists %s twice", e.Path))
			continue
		}
		seen[e.Path] = true
		if data, ok := t.data[e.Path]; ok {
			if sum := fmt.Sprintf("%x", sha256.Sum256(data)); sum != e.Sum {
				v.problem(errorf(e.Path, 0, -1, ErrBag, "sha256 is %s, %s says %s", sum, tagManifestPath, e.Sum))
			}
		}
	}
	for _, p := range []string{bagitPath, bagInfoPath, bagManifestPath} {
		if !seen[p] {
			v.problem(errorf(tagManifestPath, 0, -1, ErrBag, "does not list %s", p))
		}
	}
}

// checkPayloadManifest checks manifest-sha256.txt against the manifest and the files as read.
func (v *verifier) checkPayloadManifest(t *tags) {
	b, ok := t.data[bagManifestPath]
	if !ok {
		return
	}
	entries, problems := bagit.ParseManifest(b)
	for _, p := range bagProblems(bagManifestPath, problems) {
		v.problem(p)
	}
	want := map[string]string{manifestPath: v.a.manifestSum}
	for _, c := range v.a.m.Chunks {
		want[archivePath(c.Path)] = c.SHA256
	}
	seen := map[string]bool{}
	for _, e := range entries {
		expected, known := want[e.Path]
		switch {
		case !known:
			v.problem(errorf(bagManifestPath, e.Line, -1, ErrBag, "lists %q, which is not a payload file of the archive", e.Path))
			continue
		case seen[e.Path]:
			v.problem(errorf(bagManifestPath, e.Line, -1, ErrBag, "lists %s twice", e.Path))
			continue
		}
		seen[e.Path] = true
		if e.Sum != expected {
			v.problem(errorf(bagManifestPath, e.Line, -1, ErrBag, "sha256 of %s is %s, %s says %s", e.Path, e.Sum, manifestPath, expected))
		} else if actual, ok := v.sums[e.Path]; ok && actual != e.Sum {
			v.problem(errorf(e.Path, 0, -1, ErrBag, "sha256 is %s, %s says %s", actual, bagManifestPath, e.Sum))
		}
	}
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if !seen[p] {
			v.problem(errorf(bagManifestPath, 0, -1, ErrBag, "does not list %s", p))
		}
	}
}
