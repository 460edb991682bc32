package job

// SetSnapshotWindow bounds the window of snapshots a fresh import sends beside its events, until the
// returned function restores the bounds.
func SetSnapshotWindow(snapshots int, bytes int64) (restore func()) {
	n, b := overlapSnapshots, overlapSnapshotBytes
	overlapSnapshots, overlapSnapshotBytes = snapshots, bytes
	return func() { overlapSnapshots, overlapSnapshotBytes = n, b }
}
