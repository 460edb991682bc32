// Package writer holds every sink records go into, each behind Sink (sink.go):
//
//   - ArchiveSink (sink.go): an archive directory, through archive.Writer;
//   - ServerSink (server.go): a context of a running Axon Server, appended to one transaction at a time;
//   - SegmentSink (sink.go) over SegmentStore (segments.go): Axon Server's *.events and *.snapshots files,
//     written the way the server does, resumably.
//
// A new sink goes here, as a type that implements Sink.
package writer
