// Package clitest builds the axarchive binary and runs it as a user would, for the tests that drive the
// real program (internal/faulttest, internal/e2etest): in the background or to its end, with a deadline,
// killed or signalled at will, its exit status, signal and output kept.
package clitest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SourceDateEpoch makes every archive's manifest reproducible, so that an interrupted and resumed export
// can be compared with an uninterrupted one byte for byte.
const SourceDateEpoch = "1714564800"

// ProcessDeadline bounds every run of the binary: a hang is a failure, never a stuck test.
const ProcessDeadline = 90 * time.Second

var (
	binMu  sync.Mutex
	binDir string
	builds sync.Map // build tags -> *build
)

type build struct {
	once sync.Once
	path string
	err  error
}

// Cleanup removes the binaries built so far; call it at the end of TestMain.
func Cleanup() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
		binDir = ""
	}
}

// Build returns cmd/axarchive built with the given build tags ("" for the plain program), building it on
// first use.
func Build(t testing.TB, tags string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(tags, new(build))
	b := v.(*build)
	b.once.Do(func() {
		b.path, b.err = goBuild(tags)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func goBuild(tags string) (string, error) {
	binMu.Lock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "axarchive-clitest-")
		if err != nil {
			binMu.Unlock()
			return "", err
		}
		binDir = dir
	}
	dir := binDir
	binMu.Unlock()
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	name := "axarchive"
	if tags != "" {
		name += "-" + tags
	}
	path := filepath.Join(dir, name)
	args := []string{"build", "-o", path}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./cmd/axarchive")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path, nil
}

// moduleRoot walks up from the working directory (a package directory under go test) to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Plain is the program as shipped.
func Plain(t testing.TB) string { return Build(t, "") }

// Proc is one run of the binary.
type Proc struct {
	t      testing.TB
	args   []string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	start  time.Time
	res    *Result
}

// Result is how a run of the binary ended.
type Result struct {
	Code    int            // exit status; -1 when a signal ended it
	Signal  syscall.Signal // the signal that ended it, or 0
	Stdout  string
	Stderr  string
	Elapsed time.Duration
	Args    []string
}

func (r *Result) String() string {
	how := fmt.Sprintf("exit %d", r.Code)
	if r.Signal != 0 {
		how = "killed by " + r.Signal.String()
	}
	return fmt.Sprintf("axarchive %s: %s after %s\n--- stdout:\n%s--- stderr:\n%s", strings.Join(r.Args, " "), how,
		r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Environ is the environment of the binary: the test's, without what would change its behaviour, plus a
// fixed SOURCE_DATE_EPOCH and extra.
func Environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AXARCHIVE_CRASH_AT", "SOURCE_DATE_EPOCH", "AXONIQ_ACCESS_TOKEN":
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "SOURCE_DATE_EPOCH="+SourceDateEpoch), extra...)
}

// Start runs bin in the background; the test ends it (SIGKILL) if it is still running at cleanup.
func Start(t testing.TB, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, args: args, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = Environ(env)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.start = time.Now()
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("signal %s: %v", sig, err)
	}
}

// Wait waits for the process to end, at most d; a process still running then is killed and the test fails.
func (p *Proc) Wait(d time.Duration) *Result {
	p.t.Helper()
	if p.res != nil {
		return p.res
	}
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("axarchive %s: still running after %s (killed)\n--- stderr:\n%s", strings.Join(p.args, " "), d, p.stderr.String())
	}
	r := &Result{Code: -1, Stdout: p.stdout.String(), Stderr: p.stderr.String(), Elapsed: time.Since(p.start), Args: p.args}
	st := p.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = ws.Signal()
	} else {
		r.Code = st.ExitCode()
	}
	p.res = r
	return r
}

// WaitUntil polls cond until it holds (true) or the process ends (false).
func (p *Proc) WaitUntil(cond func() bool) bool {
	p.t.Helper()
	deadline := time.Now().Add(ProcessDeadline)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		if p.Exited() {
			return cond()
		}
		time.Sleep(time.Millisecond)
	}
	p.t.Fatalf("axarchive %s: condition not reached in %s", strings.Join(p.args, " "), ProcessDeadline)
	return false
}

// Run runs bin to its end.
func Run(t testing.TB, bin string, env []string, args ...string) *Result {
	t.Helper()
	return Start(t, bin, env, args...).Wait(ProcessDeadline)
}

// RequireCode fails the test unless r ended with exit status code.
func RequireCode(t testing.TB, r *Result, code int) {
	t.Helper()
	if r.Signal != 0 || r.Code != code {
		t.Fatalf("want exit %d, got:\n%s", code, r)
	}
}
