//go:build !faultinject || !unix

// Package crashpoint marks the places in the commit protocols of export and import where the
// fault-injection tests of internal/faulttest kill the process. Hit does nothing unless the program is
// built with -tags faultinject (see crashpoint_faultinject.go), so release builds carry no such code.
package crashpoint

// Hit marks the point called name.
func Hit(string) {}
