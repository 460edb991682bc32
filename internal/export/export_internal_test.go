package export

// SetPermitWindow makes live exports grant n permits at a time until the returned function restores the
// default, so that a test sees many top-ups without a large store. Not safe while an export runs.
func SetPermitWindow(n int64) (restore func()) {
	old := permitWindow
	permitWindow = n
	return func() { permitWindow = old }
}
