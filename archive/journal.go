package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
	"github.com/axarchive/axarchive/internal/crashpoint"
)

// journalFormat identifies journal.json, the file that makes a directory an incomplete archive. It
// holds the options of the export and everything committed so far; it is rewritten (temporary file,
// fsync, rename) after every chunk and removed once the archive is complete.
const journalFormat = "axarchive-journal"

type journal struct {
	Format  string `json:"format"`
	Version int    `json:"version"`

	// Options, fixed by the first run.
	Tool         string    `json:"tool"`
	Created      time.Time `json:"created"`
	Source       Source    `json:"source"`
	Range        Range     `json:"range"`
	Filter       *Filter   `json:"filter,omitempty"`
	SnapshotMode string    `json:"snapshotMode"`
	Previous     *Link     `json:"previous,omitempty"`
	Chunking     Chunking  `json:"chunking"`
	Level        int       `json:"level"`
	Signed       bool      `json:"signed,omitempty"`    // Close signs the tag manifest
	Encrypted    bool      `json:"encrypted,omitempty"` // every chunk is age-encrypted

	// Committed state.
	Chunks       []ChunkInfo  `json:"chunks"`
	NextToken    int64        `json:"nextToken"` // every token below is in a chunk, a gap or filtered
	EventsDone   bool         `json:"eventsDone"`
	LastPosition int64        `json:"lastPosition"` // of the last committed snapshot, -1 if none
	Events       journalState `json:"events"`
	Snapshots    journalState `json:"snapshots"`
	Gaps         []Gap        `json:"gaps"`
	Notes        []Note       `json:"notes"`
	// Transactions is the state of the transactions stream, nil unless the export records it.
	Transactions *journalTx `json:"transactions,omitempty"`
}

// journalTx is the committed state of the transactions stream: the lines in committed chunks, and what
// is not a line yet (the run being counted and the transaction not yet ended), which a resumed export
// continues.
type journalTx struct {
	Count int64  `json:"count"` // transactions in committed lines and in Run
	Lines int64  `json:"lines"`
	Hash  []byte `json:"hash"`
	Run   txRun  `json:"run"`  // Repeat 0: none
	Open  int64  `json:"open"` // first token of the transaction not yet ended, -1 if none
}

type journalState struct {
	Count      int64       `json:"count"`
	Hash       []byte      `json:"hash"` // the running SHA-256 of the stream, marshalled
	Types      []TypeCount `json:"types"`
	OtherTypes int64       `json:"otherTypes"`
}

// writeFileAtomic writes data to root/rel through a temporary file: write, fsync, rename, fsync the
// directory. A reader sees the old content or the new, never a mix.
func writeFileAtomic(root, rel string, data []byte, sync bool) error {
	final := filepath.Join(root, filepath.FromSlash(rel))
	tmp := final + tmpSuffix
	// A leftover temporary file (or a link planted in its place) is removed, never written through.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	crashpoint.Hit(rel) // faulttest: the temporary file is written, not yet renamed
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync %s: %w", rel, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if sync {
		return syncDir(filepath.Dir(final))
	}
	return nil
}

func (j *journal) write(root string, sync bool) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return writeFileAtomic(root, journalPath, append(b, '\n'), sync)
}

// readJournal reads root/journal.json, refusing anything that is not a journal this version writes.
func readJournal(root string) (*journal, error) {
	b, err := readSmallFile(root, journalPath, maxJournalBytes)
	if err != nil {
		return nil, err
	}
	if se := jsonline.CheckShape(b); se != nil {
		return nil, &Error{Path: journalPath, Line: se.Line, Token: -1, Err: fmt.Errorf("%w: %w", ErrCorrupt, se)}
	}
	j := new(journal)
	if err := json.Unmarshal(b, j); err != nil {
		return nil, errorf(journalPath, 0, -1, ErrCorrupt, "%v", err)
	}
	if j.Format != journalFormat {
		return nil, errorf(journalPath, 0, -1, ErrNotArchive, "format is %q, not %q", j.Format, journalFormat)
	}
	if j.Version < MinVersion || j.Version > MaxVersion {
		return nil, errorf(journalPath, 0, -1, ErrVersion, "version %d (this axarchive resumes versions %d to %d)", j.Version, MinVersion, MaxVersion)
	}
	return j, nil
}

// readSmallFile reads root/rel (a regular file, no symbolic links on the way) of at most max bytes.
func readSmallFile(root, rel string, max int64) ([]byte, error) {
	f, fi, err := openRegular(root, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > max {
		return nil, errorf(rel, 0, -1, ErrCorrupt, "larger than %d bytes", max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errorf(rel, 0, -1, ErrCorrupt, "larger than %d bytes", max)
	}
	return b, nil
}
