package reader

import (
	"errors"
	"fmt"
)

// Sentinel errors of the segment reader, for branching with errors.Is. Data problems come wrapped in a
// *SegmentError that says where they are; ErrGap also comes as a *GapError that holds the missing range.
var (
	// ErrCorrupt marks structurally invalid segment data: an impossible block size, event count or event
	// length, a block size that disagrees with its entries, or an unknown end marker.
	ErrCorrupt = errors.New("corrupt segment data")

	// ErrChecksum marks a block whose CRC-32 does not match its entries.
	ErrChecksum = errors.New("block checksum mismatch")

	// ErrTruncated marks a file that ends inside its header or inside a block.
	ErrTruncated = errors.New("segment file truncated")

	// ErrGap marks tokens (or snapshot store positions) missing between two segment files, usually a
	// missing file.
	ErrGap = errors.New("missing segment data")

	// ErrOverlap marks two segment files that claim the same tokens: a file renamed to the wrong number,
	// or two names for one segment.
	ErrOverlap = errors.New("overlapping segment files")

	// ErrUnsupported marks a file this reader cannot interpret: an unknown file version, or a version-2
	// header with flags set.
	ErrUnsupported = errors.New("unsupported segment format")

	// ErrTooLarge marks a block larger than SegmentsOptions.MaxBlockSize.
	ErrTooLarge = errors.New("block over size limit")

	// ErrNotSegment marks a directory entry with a segment file's suffix that is not a segment file
	// axarchive can read: another name, a number out of range, not a regular file (a FIFO, a device, a
	// directory), or a symbolic link out of the directory or to no regular file.
	ErrNotSegment = errors.New("not a usable segment file")

	// ErrNoSegments is returned by OpenSegments and CheckSegments when a directory holds no segment files.
	ErrNoSegments = errors.New("no segment files")
)

// SegmentError locates a problem in a segment file. Err wraps one of the sentinel errors above.
type SegmentError struct {
	// File is the path of the segment file, as opened.
	File string
	// Offset is the byte offset in File where the problem was found: the start of the damaged block
	// (its size field), the length prefix of a damaged event, or 0 for whole-file problems.
	Offset int64
	// Token is the token of the first event concerned (for snapshot files, the snapshot store position):
	// the first event of a damaged block, the damaged event itself, or the first missing token of a gap.
	Token int64
	// Kind says whether File holds events or snapshots.
	Kind SegmentKind
	// Err is the cause.
	Err error
}

func (e *SegmentError) Error() string {
	if e.Token < 0 { // about the file, not its data
		return fmt.Sprintf("segment %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("read segment %s at offset %d (%s %d): %v", e.File, e.Offset, e.Kind.unit(), e.Token, e.Err)
}

// Unwrap returns the cause, so that errors.Is finds the sentinel.
func (e *SegmentError) Unwrap() error { return e.Err }

// GapError is the cause of a token discontinuity between two consecutive segment files: tokens (or store
// positions) From through To, inclusive, are in no file. It matches ErrGap with errors.Is.
type GapError struct {
	Kind     SegmentKind
	From, To int64
	// Before and After name the files on either side of the gap.
	Before, After string
}

func (e *GapError) Error() string {
	return fmt.Sprintf("%s %d to %d missing between %s and %s (a segment file is missing or misnamed)",
		e.Kind.unit()+"s", e.From, e.To, e.Before, e.After)
}

// Unwrap returns ErrGap.
func (e *GapError) Unwrap() error { return ErrGap }

// TailCut describes where reading stopped early at the end of the newest segment file: the final block was
// cut short or failed its checksum with nothing valid after it, or the file ends where an end marker was
// due. This is what a copy of the active segment taken while Axon Server was writing looks like, so it is
// not an error, but the events from Token on are unknown: callers should warn loudly and record it.
type TailCut struct {
	// Kind says whether File holds events or snapshots.
	Kind SegmentKind `json:"kind"`
	// File is the path of the newest segment file.
	File string `json:"file"`
	// Offset is where the unusable data starts: the size field of the cut block.
	Offset int64 `json:"offset"`
	// Token is the first token (snapshot store position) not delivered.
	Token int64 `json:"token"`
	// Reason says why in words, for messages and manifests.
	Reason string `json:"reason"`
	// Err is ErrTruncated or ErrChecksum, for branching.
	Err error `json:"-"`
}

func (c *TailCut) String() string {
	return fmt.Sprintf("tail of %s cut at offset %d, from %s %d on: %s", c.File, c.Offset, c.Kind.unit(), c.Token, c.Reason)
}
