package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/internal/javapeer"
	"github.com/axarchive/axarchive/internal/realserver"
)

// TestMain lets the test binary serve as the harness's subprocesses (launcher and baselines).
func TestMain(m *testing.M) {
	if runRole() {
		return
	}
	os.Exit(realserver.Main(m))
}

// TestRun runs the whole harness on a tiny store, so that it keeps working. It checks what was measured,
// never how fast.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds axarchive and runs every stage")
	}
	rep, err := run(config{events: 3000, seed: 1, stages: "live,verify,import,offline", repeat: 1, work: t.TempDir(), segmentSize: 1 << 20, perBlock: 1}, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.rows) != 10 {
		t.Fatalf("%d rows, want 10", len(rep.rows))
	}
	for _, r := range rep.rows {
		if r.m.records <= 0 || r.m.elapsed <= 0 || r.m.maxRSS <= 0 {
			t.Errorf("%s: %+v", r.m.name, r.m)
		}
	}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{"axarchive export --segments", "axarchive import --segments", "plain ListEvents", "archive vs segment files", "bytes/event"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunReal runs the real-server target's export stage on a tiny store (one real server, the Java
// connector's stream against axarchive export), so that the target keeps working; the import and copy
// stages each need fresh servers, which take too long to start for every test run.
func TestRunReal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Axon Server and runs the Java connector")
	}
	realserver.Require(t)
	javapeer.Require(t)
	rep, err := run(config{target: "real", events: 2000, seed: 1, stages: "export", repeat: 1, work: t.TempDir()}, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rep.rows))
	}
	for _, r := range rep.rows {
		if r.m.records != 2000 || r.m.elapsed <= 0 || r.m.maxRSS <= 0 || r.m.serverCPU <= 0 {
			t.Errorf("%s: %+v", r.m.name, r.m)
		}
	}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{"-target real", "Copier read", "axarchive export", "× connector", "server "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
