package archive

import (
	"io"
	"io/fs"
)

// Storage is where the files of one archive live: a local directory, or a prefix of an object store
// bucket (internal/s3store). Names are the bag's relative paths with forward slashes ("bagit.txt",
// "data/events/00000000000000000000.jsonl.zst"), never absolute, never with "." or ".." elements.
//
// The archive writes every file whole and never appends to a committed one: Create returns a file that
// appears under its name only when Commit returns nil, and is durable by then, so a reader (or a resumed
// writer after a crash) sees a file complete or not at all. The journal is the one name written more
// than once; a Create of a committed name replaces it whole on Commit.
type Storage interface {
	// Open opens a committed file for reading from its start. A missing file is an error for which
	// errors.Is(err, fs.ErrNotExist) holds.
	Open(name string) (io.ReadCloser, error)
	// Stat describes one file; a missing file is an fs.ErrNotExist error.
	Stat(name string) (StorageEntry, error)
	// List returns every entry whose name starts with prefix ("" for all), sorted by name, without
	// following links. An object store lists only objects; a directory lists its subdirectories and
	// anything that is not a regular file too, so that a check can refuse them.
	List(prefix string) ([]StorageEntry, error)
	// Create starts writing the file name. Nothing is visible under that name until Commit; Abort (or a
	// crash) leaves the storage as it was, apart from leftovers List may show and Remove takes away.
	Create(name string) (NewFile, error)
	// Remove deletes a file; removing a missing one is not an error.
	Remove(name string) error
	// String names the storage for messages: a directory's path, or s3://bucket/prefix. Never a secret.
	String() string
}

// StorageEntry is what a Storage knows of one of its files.
type StorageEntry struct {
	Name string      // relative, forward slashes
	Size int64       // bytes; 0 for directories
	Mode fs.FileMode // type bits: 0 for a regular file (every object), fs.ModeDir, fs.ModeSymlink, …
}

// NewFile is a file being written to a Storage.
type NewFile interface {
	io.Writer
	// Commit makes the file visible under its name, complete and durable. After Commit, only Abort may
	// be called, and does nothing.
	Commit() error
	// Abort discards what was written (an unfinished multipart upload is aborted, a temporary file
	// removed). It may be called after a failed Write or Commit, and more than once.
	Abort() error
}
