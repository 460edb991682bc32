// Package faulttest proves, with the real axarchive binary, that axarchive keeps its promises when things go
// wrong: processes killed with SIGKILL or interrupted with SIGINT at random and at deliberate points, a
// server that drops streams, answers UNAVAILABLE, stalls, slows down or restarts, a full or read-only disk,
// and hostile archives and segment files.
//
// The package holds tests only. They build cmd/axarchive once into a temporary directory (a second time
// with -tags faultinject for the deliberate crash points, see internal/crashpoint), start the axontest
// double in the test process on 127.0.0.1:0, and run the binary as a subprocess with deadlines.
//
//	go test ./internal/faulttest                        # the quick set (CI)
//	go test ./internal/faulttest -run Long -v           # the full set; or AXARCHIVE_LONG=1 go test ./internal/faulttest
//	AXARCHIVE_SEED=42 go test ./internal/faulttest      # reproduce the random kill points of a run
//
// Every test that draws random points logs its seed.
package faulttest
