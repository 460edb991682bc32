//go:build faultinject && unix

// Package crashpoint marks the places in the commit protocols of export and import where the
// fault-injection tests of internal/faulttest kill the process.
package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Built with -tags faultinject, Hit kills the process with SIGKILL at the Nth time the point named in
// AXARCHIVE_CRASH_AT=name:N is reached (N defaults to 1), as a power cut or kill -9 would: no deferred
// call runs and nothing buffered is flushed. Only internal/faulttest builds it this way.
var crashAt = parse(os.Getenv("AXARCHIVE_CRASH_AT"))

var hits atomic.Int64

type spec struct {
	name string
	n    int64
}

func parse(s string) spec {
	name, count, found := strings.Cut(s, ":")
	n := int64(1)
	if found {
		if v, err := strconv.ParseInt(count, 10, 64); err == nil && v > 0 {
			n = v
		}
	}
	return spec{name: name, n: n}
}

// Hit kills the process if this is the chosen point and the chosen count.
func Hit(name string) {
	if crashAt.name == "" || name != crashAt.name {
		return
	}
	if hits.Add(1) == crashAt.n {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		for {
			time.Sleep(time.Second) // never run past the point while the signal is delivered
		}
	}
}
