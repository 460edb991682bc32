// Package s3test gives tests a real S3 server: versitygw (Apache-2.0) serving a temporary directory on
// a free loopback port, with versioning and so Object Lock, started per test and stopped at its end.
//
// The binary is $VERSITYGW, versitygw on PATH, or $(go env GOPATH)/bin/versitygw; .ci/run installs it
// with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`. Without it a test skips with one
// line, and fails when CI=true (testenv.Missing).
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/axarchive/axarchive/internal/testenv"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

const installHint = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Region is the region the server signs for.
const Region = "us-east-1"

// Server is one running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Root      string // the buckets' directories
	Versions  string // the versioning directory

	bin  string
	addr string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives the running server's exit
}

// Binary returns the path of versitygw, or skips (fails in CI) naming how to install it.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(tb, "versitygw ($VERSITYGW="+p+")", installHint)
		}
		return p
	}
	if p := LookBinary(); p != "" {
		return p
	}
	testenv.Missing(tb, "versitygw", installHint)
	return ""
}

// LookBinary returns the path of versitygw ($VERSITYGW, on PATH, or in $(go env GOPATH)/bin), "" if
// there is none: for programs (the benchmark) that start one outside a test.
func LookBinary() string {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			p := filepath.Join(dir, "bin", "versitygw")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}

// Start starts a versitygw on a free loopback port over empty directories of tb's, with random root
// credentials, and stops it when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := Launch(Binary(tb), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Launch starts the versitygw bin on a free loopback port over empty directories in dir, with random
// root credentials. The caller stops it.
func Launch(bin, dir string) (*Server, error) {
	s := &Server{
		AccessKey: "axtest" + randomHex(4),
		SecretKey: randomHex(20),
		Root:      filepath.Join(dir, "root"),
		Versions:  filepath.Join(dir, "versions"),
		bin:       bin,
		log:       filepath.Join(dir, "versitygw.log"),
	}
	for _, d := range []string{s.Root, s.Versions} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// A port taken between the probe and the server's bind fails the start: one more try covers it.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.addr, err = freeAddr(); err != nil {
			return nil, err
		}
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("start versitygw: %v\n%s", err, s.logTail())
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs the server on s.addr and waits until it answers.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// The credentials go in the environment, not on the command line where ps would show them.
	// --keep-alive: versitygw closes every connection after one request unless told otherwise.
	cmd := exec.Command(s.bin, "--port", s.addr, "--quiet", "--keep-alive",
		"posix", "--versioning-dir", s.Versions, s.Root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		if resp, err := http.Get(s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return errors.New("versitygw did not answer within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Stop kills the server (the data stays for Restart). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
	// Wait until the port is free again, so that a Restart can bind it.
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", s.addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same port over the same data.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may linger for a moment
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart versitygw: %v\n%s", err, s.logTail())
}

// Credentials returns the root user's static credentials.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
}

// Client returns an S3 client of the root user, for the tests' own looks at the bucket.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  s.Credentials(),
	})
}

// CreateBucket creates a bucket, with Object Lock (and so versioning) enabled when objectLock is true.
func (s *Server) CreateBucket(tb testing.TB, name string, objectLock bool) {
	tb.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if objectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, in); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
}

// PID returns the process id of the running server, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
