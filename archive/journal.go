package archive

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/axarchive/axarchive/archive/manifest"

	"github.com/axarchive/axarchive/archive/internal/jsonline"
)

// journalFormat identifies journal.json, the file that makes a directory an incomplete archive. It
// holds the options of the export and everything committed so far; it is rewritten (temporary file,
// fsync, rename) after every chunk and removed once the archive is complete.
const journalFormat = "axarchive-journal"

type journal struct {
	Format  string `json:"format"`
	Version int    `json:"version"`

	// Options, fixed by the first run.
	Tool         string            `json:"tool"`
	Created      time.Time         `json:"created"`
	Source       manifest.Source   `json:"source"`
	Range        manifest.Range    `json:"range"`
	Filter       *manifest.Filter  `json:"filter,omitempty"`
	SnapshotMode string            `json:"snapshotMode"`
	Previous     *manifest.Link    `json:"previous,omitempty"`
	Chunking     manifest.Chunking `json:"chunking"`
	Level        int               `json:"level"`
	Signed       bool              `json:"signed,omitempty"`    // Close signs the tag manifest
	Encrypted    bool              `json:"encrypted,omitempty"` // every chunk is age-encrypted

	// Committed state.
	Chunks       []manifest.ChunkInfo `json:"chunks"`
	NextToken    int64                `json:"nextToken"` // every token below is in a chunk, a gap or filtered
	EventsDone   bool                 `json:"eventsDone"`
	LastPosition int64                `json:"lastPosition"` // of the last committed snapshot, -1 if none
	Events       journalState         `json:"events"`
	Snapshots    journalState         `json:"snapshots"`
	Gaps         []manifest.Gap       `json:"gaps"`
	Notes        []manifest.Note      `json:"notes"`
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
	Count      int64                `json:"count"`
	Hash       []byte               `json:"hash"` // the running SHA-256 of the stream, marshalled
	Types      []manifest.TypeCount `json:"types"`
	OtherTypes int64                `json:"otherTypes"`
}

func (j *journal) write(st Storage) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return writeFile(st, journalPath, append(b, '\n'))
}

// readJournal reads journal.json, refusing anything that is not a journal this version writes.
func readJournal(st Storage) (*journal, error) {
	b, err := readSmallFile(st, journalPath, maxJournalBytes)
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

// readSmallFile reads rel (a regular file, no symbolic links on the way) of at most max bytes.
func readSmallFile(st Storage, rel string, max int64) ([]byte, error) {
	f, size, err := openSized(st, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > max {
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
