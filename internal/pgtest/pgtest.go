// Package pgtest gives tests a real, throwaway PostgreSQL: one server per test binary, started on first
// use from Debian's binaries (/usr/lib/postgresql/<version>/bin) in a temporary directory on a free
// loopback port, and a fresh database per test. A package that uses it needs
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// so that the server is stopped (by its PID) when the tests are done. Without the binaries a test skips
// with one line, and fails when CI=true (testenv.Missing).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/axarchive/axarchive/internal/testenv"
)

const installHint = "apt-get install postgresql"

// Server is one running PostgreSQL cluster.
type Server struct {
	Dir  string // data directory's parent; also holds the socket and the log
	Port int
	bin  string
	pid  int
}

var (
	startOnce sync.Once
	shared    *Server
	startErr  error
	dbSeq     atomic.Int64
)

// BinDir returns the directory of the newest installed PostgreSQL's programs.
func BinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("no /usr/lib/postgresql/*/bin/initdb")
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// asServerUser runs a PostgreSQL program as the postgres user when we are root (initdb and the server
// refuse to run as root), as ourselves otherwise.
func asServerUser(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// start initialises a cluster and starts it.
func start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	parent := "" // $TMPDIR
	if os.Geteuid() == 0 {
		parent = "/tmp" // the postgres user must be able to reach the directory; root's $TMPDIR may not let it
	}
	dir, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asServerUser(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A port taken between this probe and the server's bind makes the start fail; one more try covers it.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.Port = port
		opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir)
		out, err := asServerUser(filepath.Join(bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "server.log"),
			"-o", opts, "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 1 {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
	pidFile, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	if s.pid, err = strconv.Atoi(strings.TrimSpace(first)); err != nil {
		return nil, fmt.Errorf("postmaster.pid: %q", first)
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop ends the server with a fast shutdown (SIGINT to the postmaster: sessions are disconnected) and
// removes its directory.
func (s *Server) stop() {
	if p, err := os.FindProcess(s.pid); err == nil && p.Signal(syscall.SIGINT) == nil {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && p.Signal(syscall.Signal(0)) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		if p.Signal(syscall.Signal(0)) == nil {
			p.Signal(syscall.SIGKILL)
		}
	}
	os.RemoveAll(s.Dir)
}

// Main runs a test binary's tests and then stops the server, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	return code
}

// Wrap makes m's Run stop the server after the tests, for TestMain functions that hand m to another
// runner (testscript.Main).
func Wrap(m interface{ Run() int }) interface{ Run() int } { return wrapped{m} }

type wrapped struct{ m interface{ Run() int } }

func (w wrapped) Run() int {
	code := w.m.Run()
	if shared != nil {
		shared.stop()
	}
	return code
}

// Get returns the test binary's server, starting it on first use; without PostgreSQL the test skips
// (fails in CI).
func Get(tb testing.TB) *Server {
	tb.Helper()
	if _, err := BinDir(); err != nil {
		testenv.Missing(tb, "PostgreSQL", installHint)
	}
	s, err := Start()
	if err != nil {
		tb.Fatalf("start PostgreSQL: %v", err)
	}
	return s
}

// Start returns the test binary's server, starting it on first use.
func Start() (*Server, error) {
	startOnce.Do(func() { shared, startErr = start() })
	return shared, startErr
}

// CreateDB creates a fresh database and returns its name.
func (s *Server) CreateDB() (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	return name, s.exec("postgres", "CREATE DATABASE "+name)
}

func (s *Server) exec(db, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", db, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// LoadFile runs a SQL script (a pg_dump file) in database db with psql, stopping at the first error.
func (s *Server) LoadFile(db, path string) error {
	cmd := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", db, "-f", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("psql -f %s: %v\n%s", path, err, out.String())
	}
	return nil
}

// URL returns a connection URL for database db as the superuser postgres (trust authentication).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// DB is one test's database.
type DB struct {
	Server *Server
	Name   string
}

// NewDB creates a fresh, empty database for the test (dropped when the test ends).
func NewDB(tb testing.TB) *DB {
	tb.Helper()
	s := Get(tb)
	name, err := s.CreateDB()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, s.URL("postgres")); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	return &DB{Server: s, Name: name}
}

// URL returns the database's connection URL.
func (d *DB) URL() string { return d.Server.URL(d.Name) }

// Exec runs SQL statements in database db, failing the test on error.
//
// (Server.Exec with the server's own database "postgres" runs cluster-wide statements.)
func (s *Server) Exec(tb testing.TB, db, sql string) {
	tb.Helper()
	if err := s.exec(db, sql); err != nil {
		tb.Fatal(err)
	}
}

// Exec runs SQL statements in the test's database.
func (d *DB) Exec(tb testing.TB, sql string) {
	tb.Helper()
	d.Server.Exec(tb, d.Name, sql)
}

// Load runs a SQL script (a pg_dump file) with psql, stopping at the first error.
func (d *DB) Load(tb testing.TB, path string) {
	tb.Helper()
	if err := d.Server.LoadFile(d.Name, path); err != nil {
		tb.Fatal(err)
	}
}

// Fixture returns the path of a file in the repository's testdata/tokenstore (the token-store dumps).
func Fixture(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "tokenstore", name)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
