// Package writer holds the sinks records go into that are not an archive (an archive is written by
// archive.Writer): the segment-file store (SegmentStore, segments.go), which writes Axon Server's
// *.events and *.snapshots files the way the server does, resumably.
//
// A new sink goes here.
package writer
