// Package realserver starts the real Axon Server SE (the jar in ../shared/axonserver, or $AXONSERVER_JAR) on
// loopback for tests, the judge of what the test double (internal/axontest) claims.
//
// A start takes 10–30 s, so tests never start one each: Fresh hands out a server with an empty event store
// from a small pool and, when the test is done with it, wipes and restarts it in the background for the next
// test; Shared hands out one long-lived server per property set for tests that only need some server. The
// SE build has no REST purge of the event store (its development-mode controller is not in this jar), so an
// empty store means a fresh data directory.
//
// Without the jar or java, tests skip with one line; with CI=true they fail instead (see internal/testenv).
// Servers are stopped by PID when the test binary ends (Main), and die with it in any case (Pdeathsig).
package realserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/axarchive/axarchive/internal/testenv"
)

// JarName is the file name of the Axon Server build the tests run against.
const JarName = "axonserver-se-2023.2.1.jar"

// StartTimeout bounds one start-up; the server usually answers within 15–60 s on two cores, minutes when they are busy.
const StartTimeout = 240 * time.Second

// Jar returns the path of the Axon Server jar: $AXONSERVER_JAR, or ../shared/axonserver/JarName beside the
// repository root.
func Jar() (string, error) {
	if p := os.Getenv("AXONSERVER_JAR"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AXONSERVER_JAR: %w", err)
		}
		return filepath.Abs(p)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(root), "shared", "axonserver", JarName)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s beside the repository (set AXONSERVER_JAR): %w", JarName, err)
	}
	return p, nil
}

// repoRoot walks up from the working directory (a package directory under go test) to go.mod.
func repoRoot() (string, error) {
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

// Server is one real Axon Server process on loopback.
type Server struct {
	// Dir holds axonserver.properties, the logs and the data directory.
	Dir      string
	GRPCPort int
	HTTPPort int

	jar   string
	props []string
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
}

// Addr is the gRPC address clients dial.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.GRPCPort) }

// HTTPURL is the base URL of the REST API.
func (s *Server) HTTPURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.HTTPPort) }

// ContextDir is where the server keeps a context's segment files (SE: only "default").
func (s *Server) ContextDir(context string) string { return filepath.Join(s.Dir, "data", context) }

// PID of the running server, 0 when stopped.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Properties are the extra axonserver.properties lines the server was started with.
func (s *Server) Properties() []string { return slices.Clone(s.props) }

// Available reports why no real server can be started here, or nil.
func Available() error {
	if _, err := Jar(); err != nil {
		return err
	}
	if _, err := exec.LookPath("java"); err != nil {
		return errors.New("no java on PATH (apt-get install openjdk-17-jre-headless)")
	}
	return nil
}

// Require skips the test (fails it in CI) when no real server can be started.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		testenv.Missing(tb, "the real Axon Server", err.Error())
	}
}

// StartIn starts a server whose files live in dir (created if absent), with extra property lines such as
// "axoniq.axonserver.accesscontrol.enabled=true", and waits until it answers.
func StartIn(dir string, props ...string) (*Server, error) {
	jar, err := Jar()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, HTTPPort: ports[0], GRPCPort: ports[1], jar: jar, props: slices.Clone(props)}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start (re)starts the server on its directory and ports, as run.sh in ../shared/axonserver does.
func (s *Server) Start() error {
	if s.PID() != 0 {
		return fmt.Errorf("axon server %s already running (pid %d)", s.Addr(), s.PID())
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	var p bytes.Buffer
	fmt.Fprintf(&p, "server.address=127.0.0.1\nserver.port=%d\naxoniq.axonserver.port=%d\n", s.HTTPPort, s.GRPCPort)
	fmt.Fprintf(&p, "axoniq.axonserver.hostname=localhost\naxoniq.axonserver.internal-hostname=localhost\n")
	fmt.Fprintf(&p, "axoniq.axonserver.name=realserver-%d\naxoniq.axonserver.standalone=true\n", s.GRPCPort)
	for _, key := range []string{"event.storage", "snapshot.storage", "controldb-path", "pid-file-location"} {
		fmt.Fprintf(&p, "axoniq.axonserver.%s=%s\n", key, filepath.Join(s.Dir, "data"))
	}
	fmt.Fprintf(&p, "axoniq.axonserver.replication.log-storage-folder=%s\n", filepath.Join(s.Dir, "log"))
	fmt.Fprintf(&p, "logging.file.name=%s\n", filepath.Join(s.Dir, "axonserver.log"))
	for _, kv := range s.props {
		fmt.Fprintln(&p, kv)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "axonserver.properties"), p.Bytes(), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(s.Dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	javaOpts := strings.Fields(os.Getenv("JAVA_OPTS"))
	if len(javaOpts) == 0 {
		javaOpts = []string{"-Xmx512m"}
	}
	cmd := exec.Command("java", append(javaOpts, "-jar", s.jar)...)
	cmd.Dir = s.Dir // the server reads ./axonserver.properties
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server must not outlive the test binary, however that ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting java: %w", err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	// done, not s.done: a later Start replaces s.done before this process is reaped.
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	track(s)
	if err := s.waitReady(logPath); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitReady waits until the gRPC port accepts connections and the REST API (started last) answers.
func (s *Server) waitReady(logPath string) error {
	deadline := time.Now().Add(StartTimeout)
	client := http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("axon server exited during start-up:\n%s", tail(logPath, 20))
		case <-time.After(250 * time.Millisecond):
		}
		if failed := grepLog(logPath, "APPLICATION FAILED TO START", "Exception encountered during context initialization"); failed != "" {
			return fmt.Errorf("axon server failed to start: %s\n%s", failed, tail(logPath, 20))
		}
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			continue
		}
		conn.Close()
		resp, err := client.Get(s.HTTPURL() + "/v1/public/me")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode < 500 {
			return nil
		}
	}
	return fmt.Errorf("axon server on %s did not answer within %s:\n%s", s.Addr(), StartTimeout, tail(logPath, 20))
}

// Stop ends the server gracefully (SIGTERM, as `kill PID`), killing it after 30 s.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM, 30*time.Second) }

// Kill ends the server at once (kill -9), as a crash or power cut would.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL, 0) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) error {
	if s.PID() == 0 {
		return nil
	}
	defer untrack(s)
	cmd, done := s.cmd, s.done
	s.cmd = nil
	_ = syscall.Kill(-cmd.Process.Pid, sig) // the process group: the JVM and anything it started
	if grace > 0 {
		select {
		case <-done:
			return nil
		case <-time.After(grace):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("axon server pid %d did not exit", cmd.Process.Pid)
	}
}

// Restart stops the server gracefully and starts it again on the same files and ports.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Log returns the last lines of the server's output, for failure messages.
func (s *Server) Log(lines int) string { return tail(filepath.Join(s.Dir, "server.log"), lines) }

// wipe removes the server's data (events, snapshots, control DB) so that the next Start has an empty store.
func (s *Server) wipe() error {
	for _, sub := range []string{"data", "log"} {
		if err := os.RemoveAll(filepath.Join(s.Dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func grepLog(path string, needles ...string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		for _, n := range needles {
			if strings.Contains(sc.Text(), n) {
				return sc.Text()
			}
		}
	}
	return ""
}

// running keeps every started server so that Main can stop them by PID.
var running = struct {
	sync.Mutex
	servers map[*Server]bool
}{servers: map[*Server]bool{}}

func track(s *Server) {
	running.Lock()
	running.servers[s] = true
	running.Unlock()
}

func untrack(s *Server) {
	running.Lock()
	delete(running.servers, s)
	running.Unlock()
}

// StopAll stops every server this process started.
func StopAll() {
	running.Lock()
	servers := make([]*Server, 0, len(running.servers))
	for s := range running.servers {
		servers = append(servers, s)
	}
	running.Unlock()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Stop() }()
	}
	wg.Wait()
}

// Main runs a test binary's tests and then stops every server they started: call it from TestMain,
// os.Exit(realserver.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	StopAll()
	pool.close()
	return code
}
