// Package manifest holds the data model of an axarchive manifest, data/manifest.json (SPEC.md,
// "Manifest"): plain data types whose JSON encoding is the file's, and the names of their values.
// Package archive reads, checks and writes them; a Manifest from archive.Archive.Manifest has been
// checked (SPEC.md's consistency rules), one built by hand has not.
package manifest

import "time"

// The record streams of an archive. StreamTransactions (format version 2) holds the grouping of the
// events into the source's transactions, when the source showed it (SPEC.md, "Transactions").
const (
	StreamEvents       = "events"
	StreamSnapshots    = "snapshots"
	StreamTransactions = "transactions"
)

// Snapshot modes recorded in the manifest: which snapshots the export selected.
const (
	SnapshotsAll    = "all"
	SnapshotsLatest = "latest"
	SnapshotsNone   = "none"
)

// Source kinds.
const (
	SourceServer   = "server"
	SourceSegments = "segments"
)

// Manifest is the content of data/manifest.json: what a complete archive holds and how to check it
// (SPEC.md, "Manifest"). The JSON member order is the field order; archive.Open fills it from the file
// after checking it, so every path in Chunks is a valid chunk name under data/.
type Manifest struct {
	Format  string    `json:"format"`  // "axarchive"
	Version int       `json:"version"` // archive.Version, or a later version that the archive needs
	Tool    string    `json:"tool"`    // the program that wrote the archive, e.g. "axarchive v0.1.0"
	Created time.Time `json:"created"` // UTC, whole seconds (SOURCE_DATE_EPOCH when set)
	Source  Source    `json:"source"`

	// Fingerprint is the lower-case hex SHA-256 of the events digest followed by the snapshots digest
	// (32 raw bytes each): one value that identifies the archive's content (see archive.Fingerprint).
	Fingerprint string         `json:"fingerprint"`
	Events      EventStream    `json:"events"`
	Snapshots   SnapshotStream `json:"snapshots"`
	// Transactions, present from format version 2 on, says that the archive records how the source
	// grouped its events into transactions (SPEC.md, "Transactions"); nil when it does not.
	Transactions *TransactionStream `json:"transactions,omitempty"`
	// Encryption, from format version 2 on, is "age" when every chunk file is encrypted with
	// age (SPEC.md, "Encrypted chunks"), empty when none is.
	Encryption string   `json:"encryption,omitempty"`
	Filter     *Filter  `json:"filter,omitempty"`
	Previous   *Link    `json:"previous,omitempty"`
	Chunking   Chunking `json:"chunking"`
	Gaps       []Gap    `json:"gaps"`
	Notes      []Note   `json:"notes"`
	// Chunks lists the events chunks in token order, then the snapshots chunks in position order.
	Chunks []ChunkInfo `json:"chunks"`
}

// Source says where the records came from.
type Source struct {
	Kind    string `json:"kind"`              // SourceServer or SourceSegments
	Address string `json:"address,omitempty"` // server address (host:port), for SourceServer
	Path    string `json:"path,omitempty"`    // directory of the segment files, for SourceSegments
	Context string `json:"context"`           // Axon Server context
}

// Filter is the selection an export applied to events; nil means none. Events whose payload type is
// not in IncludeTypes (when not empty), is in ExcludeTypes, or whose aggregate type is not in
// AggregateTypes (when not empty) were left out.
type Filter struct {
	IncludeTypes   []string `json:"includeTypes,omitempty"`
	ExcludeTypes   []string `json:"excludeTypes,omitempty"`
	AggregateTypes []string `json:"aggregateTypes,omitempty"`
}

// Link points from an incremental archive to the archive it continues.
type Link struct {
	Fingerprint string `json:"fingerprint"` // the previous archive's fingerprint
	LastToken   int64  `json:"lastToken"`   // the previous archive's events.lastToken
}

// Range is an inclusive token range; Last = First-1 when it is empty.
type Range struct {
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

// Note records something a reader of the archive must know, such as a tail cut off an offline export
// (kind "tail-cut") or snapshots that could not be reached (kind "snapshots-unreachable"). Token is the
// token the note is about, or -1.
type Note struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	Token  int64  `json:"token"`
}

// Gap is an inclusive token range inside the archive's range that holds no events, with its cause.
// Tokens left out by a Filter are not listed as gaps: they are counted in EventStream.Filtered.
type Gap struct {
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Cause string `json:"cause"`
}

// EventStream summarises the events stream.
type EventStream struct {
	FirstToken int64 `json:"firstToken"` // the token range the archive covers
	LastToken  int64 `json:"lastToken"`
	// Range is FirstToken..LastToken again, for convenience; archive.Open and archive.Writer fill it.
	// It is not part of the JSON.
	Range      Range       `json:"-"`
	Count      int64       `json:"count"`    // events in the archive
	Filtered   int64       `json:"filtered"` // tokens in the range left out by the filter
	SHA256     string      `json:"sha256"`   // digest of the stream (see archive.Fingerprint)
	Types      []TypeCount `json:"types"`
	OtherTypes int64       `json:"otherTypes"` // records whose type is beyond MaxTypes distinct types
}

// SnapshotStream summarises the snapshots stream.
type SnapshotStream struct {
	Mode       string      `json:"mode"` // SnapshotsAll, SnapshotsLatest or SnapshotsNone
	Count      int64       `json:"count"`
	SHA256     string      `json:"sha256"`
	Types      []TypeCount `json:"types"`
	OtherTypes int64       `json:"otherTypes"`
}

// TransactionStream summarises the transactions stream: Count transactions described by Runs lines
// (records), whose digest is SHA256. It is not part of the fingerprint, which covers the records alone.
type TransactionStream struct {
	Count  int64  `json:"count"`
	Runs   int64  `json:"runs"`
	SHA256 string `json:"sha256"`
}

// TypeCount is the number of records of one payload type. Records without a payload count under "".
type TypeCount struct {
	Type  string `json:"type"`
	Count int64  `json:"count"`
}

// MaxTypes bounds the per-type counts of a stream in the manifest: the first MaxTypes distinct payload
// types in record order are counted by type, the records of any further type in OtherTypes.
const MaxTypes = 10000

// Chunking records the rotation limits the writer used.
type Chunking struct {
	MaxBytes   int64 `json:"maxBytes"`
	MaxRecords int64 `json:"maxRecords"`
}

// ChunkInfo describes one chunk file.
type ChunkInfo struct {
	Path      string `json:"path"`   // relative to data/, e.g. "events/00000000000000000000.jsonl.zst"
	Stream    string `json:"stream"` // StreamEvents, StreamSnapshots or StreamTransactions
	Records   int64  `json:"records"`
	First     int64  `json:"first"` // token (events) or position (snapshots) of the first record
	Last      int64  `json:"last"`
	Size      int64  `json:"size"`      // bytes of the file
	SHA256    string `json:"sha256"`    // of the file
	RawSize   int64  `json:"rawSize"`   // bytes of the decompressed JSON Lines
	RawSHA256 string `json:"rawSha256"` // of the decompressed JSON Lines
}
