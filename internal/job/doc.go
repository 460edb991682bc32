// Package job moves records from a source (internal/reader) into a sink (internal/writer):
//
//   - export: a live Axon Server or a copy of its segment files into an archive, resumably (export.go,
//     with the selection in select.go);
//   - import: archives into Axon Server (import*.go, renumber.go for token maps), then the proof that the
//     target equals the archives (proof.go, also what `axarchive diff` runs); or archives into segment
//     files (import_segments.go).
//
// Events flow through one pipeline (pipeline.go) that uses every core: the source fills batches, workers
// convert them (raw protobuf to canonical JSON lines, applying the selection, or lines to protobuf)
// concurrently, and the sink takes them in token order. Nothing in the pipeline depends on the size of
// the store; memory is a few batches plus the set of aggregate ids the snapshot phase of a live source
// needs, which the job collects and passes to the source as data. ARCHITECTURE.md has the picture.
package job
