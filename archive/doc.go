// Package archive reads and writes the axarchive format (SPEC.md): an Axon Server event store as a
// BagIt bag of zstd JSON Lines chunks and a manifest, checkable with sha256sum, zstd and jq.
//
// Create (or Resume, after an interruption) returns a Writer that takes records in order and commits
// the archive on Close. Open returns an Archive whose Iterators check every chunk they read and whose
// Verify checks everything; OpenChain reads incremental archives as one. CreateIn, ResumeIn and OpenIn
// take a Storage other than a directory. The manifest's data model is package archive/manifest.
//
// SPEC.md specifies the format, including how archives are written, resumed, verified and kept
// compatible; ARCHITECTURE.md places this package among axarchive's jobs. It knows no gRPC, protobuf
// or command line: converting Axon Server events to Records is its callers' job.
package archive
