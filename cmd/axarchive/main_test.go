package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/stretchr/testify/assert"

	"github.com/axarchive/axarchive/internal/pgtest"
	"github.com/axarchive/axarchive/internal/realserver"
)

type realserverMain struct{ m *testing.M }

func (r realserverMain) Run() int { return realserver.Main(r.m) }

var update = flag.Bool("update", false, "update the expected output in the testscript files")

func TestMain(m *testing.M) {
	// After the tests: stop the PostgreSQL (pgtest) and the Axon Servers (realserver) the tokens tests
	// started.
	testscript.Main(pgtest.Wrap(realserverMain{m}), map[string]func(){"axarchive": main})
}

// TestScript runs the CLI scripts in testdata/script: each runs the real program in a subprocess.
//
// Environment of the scripts: $ARCHIVES is testdata/archives/v1 (read-only: copy an archive with
// cpdir before damaging it), $FIXTURES is testdata/segments.
//
// Commands added to testscript's:
//
//	cpdir SRC DST                copy a directory tree
//	flipbit FILE OFFSET          flip the lowest bit of the byte at OFFSET (negative: from the end)
//	truncate FILE SIZE           cut FILE to SIZE bytes
//	exitcode N PROGRAM ARGS...   run PROGRAM and require exit status N (testscript's ! cannot say which);
//	                             its stdout and stderr are checked like exec's
func TestScript(t *testing.T) {
	p := scriptParams(t, "../../testdata/script", setupServer)
	p.Cmds["axon"] = cmdAxon
	p.Cmds["sleep"] = cmdSleep
	testscript.Run(t, p)
}

// scriptParams are what every CLI script runner shares: $ARCHIVES, $FIXTURES, SOURCE_DATE_EPOCH and the
// commands listed at TestScript; setup, if not nil, adds to the environment.
func scriptParams(t *testing.T, dir string, setup func(*testscript.Env) error) testscript.Params {
	t.Helper()
	archives, err := filepath.Abs("../../testdata/archives/v1")
	if err != nil {
		t.Fatal(err)
	}
	fixtures, err := filepath.Abs("../../testdata/segments")
	if err != nil {
		t.Fatal(err)
	}
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("ARCHIVES", archives)
			env.Setenv("FIXTURES", fixtures)
			env.Setenv("SOURCE_DATE_EPOCH", "1714564800")
			if setup != nil {
				return setup(env)
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"cpdir":    cmdCpdir,
			"flipbit":  cmdFlipbit,
			"truncate": cmdTruncate,
			"exitcode": cmdExitcode,
		},
	}
}

func cmdCpdir(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cpdir SRC DST")
	}
	src, dst := ts.MkAbs(args[0]), ts.MkAbs(args[1])
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	ts.Check(err)
}

func cmdFlipbit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbit FILE OFFSET")
	}
	path := ts.MkAbs(args[0])
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	b, err := os.ReadFile(path)
	ts.Check(err)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 1
	ts.Check(os.WriteFile(path, b, 0o644))
}

func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), size))
}

func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	prog, err := lookPath(ts.Getenv("PATH"), args[1])
	ts.Check(err)
	cmd := exec.Command(prog, args[2:]...)
	cmd.Dir = ts.Getenv("WORK")
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "WORK", "ARCHIVES", "FIXTURES", "SOURCE_DATE_EPOCH", "AXON_ADDR", "AXON_TOKEN", tokenEnv} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else {
		ts.Check(err)
	}
	io.Copy(ts.Stdout(), &stdout)
	io.Copy(ts.Stderr(), &stderr)
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d\nstderr:\n%s", args[1], got, want, stderr.String())
	}
}

func lookPath(path, name string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH", name)
}

// TestHelpMentionsExitStatus keeps the exit statuses documented where users look.
func TestHelpMentionsExitStatus(t *testing.T) {
	for _, cmd := range newApp(io.Discard, io.Discard).Commands {
		if !strings.Contains(cmd.Description, "Exit status") {
			t.Errorf("%s: the description does not document the exit status", cmd.Name)
		}
	}
}

// The heap's soft limit and GOGC are ours unless GOMEMLIMIT and GOGC name others (which the runtime has
// applied already).
func TestTuneMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	limit, percent := tuneMemory("", "")
	assert.Equal(t, int64(defaultMemoryLimit), limit)
	assert.Equal(t, defaultGCPercent, percent)
	debug.SetMemoryLimit(1 << 30) // as GOMEMLIMIT=1GiB would have set it
	debug.SetGCPercent(50)        // as GOGC=50 would have
	limit, percent = tuneMemory("1GiB", "50")
	assert.Equal(t, int64(1<<30), limit)
	assert.Equal(t, 50, percent)
}
