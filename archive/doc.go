// Package archive reads and writes the axarchive format: an Axon Server event store as a BagIt bag of
// zstd JSON Lines chunks and a manifest, checkable with sha256sum, zstd and jq. SPEC.md specifies it,
// including how archives are written, resumed, verified and kept compatible.
//
// Create (or Resume, after an interruption) returns a Writer that takes records in order and commits
// the archive on Close. Open returns an Archive whose Iterators check every chunk they read and whose
// Verify checks everything; OpenChain reads incremental archives as one. CreateIn, ResumeIn and OpenIn
// take a Storage other than a directory. The manifest's data model is package archive/manifest.
// The package knows no gRPC or protobuf; ARCHITECTURE.md shows how axarchive's jobs use it.
package archive
