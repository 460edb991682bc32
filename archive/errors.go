package archive

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error locates a problem in an archive: the file (relative to the archive root), the line within the
// decompressed chunk (1-based, 0 when not about a line) and the token or position of the record, when
// known (-1 otherwise).
type Error struct {
	Path  string
	Line  int64
	Token int64
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.FormatInt(e.Line, 10))
	}
	if e.Token >= 0 {
		b.WriteString(" (token ")
		b.WriteString(strconv.FormatInt(e.Token, 10))
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinel errors. They are for branching with errors.Is; the error returned usually wraps one of them
// in an *Error (which says where) or with more detail. Their text has no package prefix: the command
// line adds the program name.
var (
	// ErrIncomplete is returned by Open (and so by every command) for a directory that holds an
	// interrupted export: a journal and no finished manifest. Resume continues it.
	ErrIncomplete = errors.New("incomplete archive")

	// ErrNotArchive is returned by Open and Resume for a directory that holds neither a manifest nor a
	// journal, or whose manifest does not name the axarchive format.
	ErrNotArchive = errors.New("not an axarchive archive")

	// ErrVersion is returned by Open for a manifest (and by Resume for a journal) whose format version is
	// outside MinVersion..MaxVersion.
	ErrVersion = errors.New("unsupported archive format version")

	// ErrManifest is returned by Open, wrapped in an *Error for data/manifest.json, for a manifest that is
	// not valid JSON, not valid against schema/manifest.v1.json, or inconsistent in itself (paths, counts,
	// ranges, digests). Open reports every such problem, joined.
	ErrManifest = errors.New("invalid manifest")

	// ErrCorrupt is returned by readers and reported by Verify, wrapped in an *Error, when the files do
	// not match the manifest: missing, extra or unsafe files, sizes, SHA-256 digests, zstd frames, record
	// counts, first and last tokens.
	ErrCorrupt = errors.New("archive data does not match its manifest")

	// ErrBag is reported by Verify, wrapped in an *Error, for BagIt tag files that are missing or wrong.
	ErrBag = errors.New("invalid BagIt bag")

	// ErrRecord is returned, wrapped in an *Error that says where, for a JSON line that is not a valid
	// canonical record.
	ErrRecord = errors.New("invalid record")

	// ErrSequence is returned by readers and reported by Verify, wrapped in an *Error, for records out of
	// order, duplicated, outside the archive's range, or missing where no gap is declared.
	ErrSequence = errors.New("records out of sequence")

	// ErrTooLarge is returned when a record line exceeds the 64 MiB the format allows (SPEC.md, "Chunks"), by the writer and the readers.
	ErrTooLarge = errors.New("record exceeds the maximum record size")

	// ErrVerify is returned by Archive.Verify when it found problems; the problems themselves went to
	// VerifyOptions.Problem and are in the VerifyReport.
	ErrVerify = errors.New("verification failed")

	// ErrChain is returned by OpenChain and Chain.Check for archives that do not form an incremental chain.
	ErrChain = errors.New("archives do not form a chain")

	// ErrNotEmpty is returned by Create for a directory that exists and is not empty.
	ErrNotEmpty = errors.New("directory is not empty")

	// ErrNotStarted is returned by Resume for a directory that an export left before it recorded anything:
	// the empty layout that Create makes, and at most a temporary first journal. Nothing in it is worth
	// keeping, so the caller creates the archive afresh (Create accepts such a directory as empty).
	ErrNotStarted = errors.New("the interrupted export had not started writing")

	// ErrComplete is returned by Resume for a directory that holds a finished archive.
	ErrComplete = errors.New("archive is already complete")

	// ErrMismatch is returned by Resume when the options differ from those of the interrupted export in
	// a way that would make a different archive; the message names the field.
	ErrMismatch = errors.New("options differ from the interrupted export")

	// ErrEncrypted is returned for reading the content of an encrypted archive without an identity: its
	// manifest, counts, fingerprint and file checksums are readable, its records are not.
	ErrEncrypted = errors.New("the archive is encrypted and no identity was given to decrypt it")

	// ErrIdentity is returned when none of the given identities can decrypt a chunk.
	ErrIdentity = errors.New("none of the identities given can decrypt it")

	// ErrUnsigned is returned by Archive.Signature for an archive without a signature file.
	ErrUnsigned = errors.New("archive is not signed")

	// errGap is returned by Writer.WriteEvent, WriteEventLine and FinishEvents for tokens missing from the
	// range when the export has no filter and no gap was declared with addGap.
	errGap = errors.New("tokens missing from the range")

	// errOrder is returned by the Writer for a token or position that is not greater than the previous
	// one, or outside the archive's range.
	errOrder = errors.New("record out of order")

	// errState is returned by the Writer for a call that its state does not allow, such as a snapshot
	// before FinishEvents or with snapshot mode "none".
	errState = errors.New("not allowed in the writer's state")

	// errClosed is returned by the Writer after Close, Suspend or Abort.
	errClosed = errors.New("writer is closed")
)

// errorf returns an *Error at path (line and token as given) wrapping a sentinel with detail.
func errorf(path string, line, token int64, sentinel error, format string, args ...any) *Error {
	return &Error{Path: path, Line: line, Token: token, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}
