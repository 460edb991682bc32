// Package reader holds every source of records: the things an export (or an import) reads from. Each
// implements Source (source.go): it says what it is and which tokens it holds, emits its events in token
// order, then its snapshots, and knows nothing of the job that reads it.
//
//   - server.go: a running Axon Server, over gRPC (ServerSource).
//   - segmentsource.go: a copy of Axon Server's segment files (SegmentSource), read by the segment parser
//     of segments*.go: *.events and *.snapshots, read directly, read-only, with every block's CRC-32
//     checked before any of its events is handed out. CheckSegments answers whether a copy of those files
//     is a usable backup.
//
// A new source goes here, as a type that implements Source.
package reader
