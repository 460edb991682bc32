package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// Profiles for performance work (go run ./internal/bench -profile DIR sets them): AXARCHIVE_CPUPROFILE
// and AXARCHIVE_MEMPROFILE name files that receive a CPU profile of the whole run and a heap profile
// at its end; AXARCHIVE_TRACE an execution trace (go tool trace), which shows where a pipeline waits.
// Not a user feature, so not a flag.
func startProfiles() (stop func()) {
	cpu, mem := os.Getenv("AXARCHIVE_CPUPROFILE"), os.Getenv("AXARCHIVE_MEMPROFILE")
	var f, tf *os.File
	if name := os.Getenv("AXARCHIVE_TRACE"); name != "" {
		var err error
		if tf, err = os.Create(name); err == nil {
			err = trace.Start(tf)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "axarchive: warning: trace: %v\n", err)
			tf = nil
		}
	}
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "axarchive: warning: cpu profile: %v\n", err)
			f = nil
		}
	}
	return func() {
		if tf != nil {
			trace.Stop()
			tf.Close()
		}
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			runtime.GC()
			m, err := os.Create(mem)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(m, 0)
				m.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "axarchive: warning: memory profile: %v\n", err)
			}
		}
	}
}
