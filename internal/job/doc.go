// Package job moves records from a source (internal/reader) into a sink (internal/writer, or an archive):
//
//   - export: a live Axon Server or a copy of its segment files into an archive, resumably (export.go);
//   - import: archives into Axon Server, one transaction at a time, then the proof that the target
//     equals the archive (import*.go, proof.go, renumber.go); or into segment files (import_segments.go).
//
// Events flow through a pipeline that uses every core: the source fills batches, workers convert them
// (raw protobuf to canonical JSON lines, applying the selection, or lines to protobuf) concurrently, and
// the sink takes them in token order. Nothing in the pipeline depends on the size of the store; memory
// is a few batches plus the set of aggregate ids the snapshot phase of a live source needs, which the job
// collects and passes to the source as data.
package job
