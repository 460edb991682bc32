// Package reader holds the sources of records that are not a live server: Axon Server's segment files
// (*.events, *.snapshots), read directly, read-only, with every block's CRC-32 checked before any of its
// events is handed out. CheckSegments answers whether a copy of those files is a usable backup.
package reader
