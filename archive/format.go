package archive

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/axarchive/axarchive/archive/manifest"
)

// Format identification. A manifest carries the format name "axarchive" and a version; Open accepts the versions from
// MinVersion to MaxVersion and rejects the others with ErrVersion. Writers write the lowest version that
// describes the archive: Version, or VersionTransactions for an archive that records its source's
// transactions, so that archives without them stay readable by readers of version 1.
const (
	formatName          = "axarchive"
	Version             = 1
	VersionTransactions = 2
	versionEncryption   = 2
	MinVersion          = 1
	MaxVersion          = 2
)

// Limits of format version 1 (SPEC.md, "Chunks"). Writers never exceed them and readers reject data
// that does.
const (
	// maxRecordBytes bounds one JSON line, its final LF included.
	maxRecordBytes = 64 << 20
)

// Defaults of Options.
const (
	defaultChunkBytes   = 64 << 20
	defaultChunkRecords = 1_000_000
)

// Paths inside an archive, slash-separated, relative to its root.
const (
	dataDir          = "data"
	manifestPath     = "data/manifest.json"
	journalPath      = "journal.json"
	bagitPath        = "bagit.txt"
	bagInfoPath      = "bag-info.txt"
	bagManifestPath  = "manifest-sha256.txt"
	tagManifestPath  = "tagmanifest-sha256.txt"
	signaturePath    = tagManifestPath + ".sig"
	maxSignatureSize = 64 << 10 // an SSHSIG signature with the largest RSA key is a few KiB
	tmpSuffix        = ".tmp"
	chunkSuffix      = ".jsonl.zst"
	encryptedSuffix  = ".age" // after chunkSuffix: the chunk file is the age encryption of the zstd frame
	chunkNameDigits  = 20
	// A manifest is O(chunks + payload types): 16 MiB hold some 40,000 chunks (2.5 TiB of JSON Lines
	// in chunks of the default 64 MiB) beside 2 × manifest.MaxTypes type counts. Anything larger is refused
	// before it is parsed: parsing and checking a manifest takes several times its size in memory.
	maxManifestBytes = 16 << 20
	maxJournalBytes  = maxManifestBytes
	// bagit.txt, bag-info.txt and tagmanifest-sha256.txt are a few hundred bytes as an archive writes
	// them. manifest-sha256.txt has a line (about 115 bytes) for each chunk, where manifest.json has an
	// entry of about 300 bytes, so it stays within the manifest's limit. Larger ones are refused before
	// they are read, and so parsing a hostile one costs bounded memory.
	maxTagFileBytes     = 1 << 20
	maxPayloadListBytes = maxManifestBytes
)

// chunkName returns the path, relative to data/, of the chunk of stream starting at first.
func chunkName(stream string, first int64, encrypted bool) string {
	if encrypted {
		return fmt.Sprintf("%s/%020d%s%s", stream, first, chunkSuffix, encryptedSuffix)
	}
	return fmt.Sprintf("%s/%020d%s", stream, first, chunkSuffix)
}

// chunkEncrypted reports whether a chunk name (from parseChunkName) is that of an encrypted chunk.
func chunkEncrypted(rel string) bool { return strings.HasSuffix(rel, encryptedSuffix) }

// parseChunkName checks that rel (relative to data/) is exactly a chunk name that a writer can produce
// and returns its stream and number. Anything else (other directories, "..", absolute paths, other
// digits, other suffixes) is refused, so a path taken from a manifest can never leave data/.
func parseChunkName(rel string) (stream string, first int64, ok bool) {
	dir, name := path.Split(rel)
	switch dir {
	case manifest.StreamEvents + "/":
		stream = manifest.StreamEvents
	case manifest.StreamSnapshots + "/":
		stream = manifest.StreamSnapshots
	case manifest.StreamTransactions + "/":
		stream = manifest.StreamTransactions
	default:
		return "", 0, false
	}
	name = strings.TrimSuffix(name, encryptedSuffix)
	if len(name) != chunkNameDigits+len(chunkSuffix) || name[chunkNameDigits:] != chunkSuffix {
		return "", 0, false
	}
	digits := name[:chunkNameDigits]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return stream, n, true
}

// lstatRegular checks that root/rel and every directory on the way (below root) exist and are not
// symbolic links, and that rel is a regular file. It returns the file's info.
func lstatRegular(root, rel string) (os.FileInfo, error) {
	dir := path.Dir(rel)
	if dir != "." {
		acc := ""
		for _, part := range splitPath(dir) {
			acc = path.Join(acc, part)
			fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(acc)))
			if err != nil {
				return nil, err
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				return nil, fmt.Errorf("%s is a symbolic link", acc)
			}
			if !fi.IsDir() {
				return nil, fmt.Errorf("%s is not a directory", acc)
			}
		}
	}
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("is a symbolic link")
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("is not a regular file")
	}
	return fi, nil
}

func splitPath(p string) []string {
	var parts []string
	for p != "" && p != "." {
		d, f := path.Split(p)
		parts = append([]string{f}, parts...)
		p = path.Clean(d)
		if p == "/" {
			break
		}
	}
	return parts
}

// openRegular opens root/rel for reading after lstatRegular, and makes sure that the file opened is the
// one checked (no symbolic link swapped in between).
func openRegular(root, rel string) (*os.File, os.FileInfo, error) {
	fi, err := lstatRegular(root, rel)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, nil, err
	}
	fi2, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !os.SameFile(fi, fi2) {
		f.Close()
		return nil, nil, fmt.Errorf("changed while being opened")
	}
	return f, fi2, nil
}
