// Package job moves records from a source (internal/reader) into a sink: the export job takes a live
// Axon Server or a copy of its segment files into an archive, resumably.
//
// Events flow through a pipeline that uses every core: the source fills batches of raw protobuf events,
// workers convert them to canonical JSON lines concurrently, applying the selection, and the archive
// writer (which compresses and hashes) takes them in token order. Nothing in the pipeline depends on the
// size of the store; memory is a few batches plus the set of aggregate ids the snapshot phase of a live
// source needs, which the job collects and passes to the source as data.
package job
