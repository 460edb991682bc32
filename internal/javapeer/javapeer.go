// Package javapeer builds and runs small programs on AxonIQ's own Java connector
// (io.axoniq:axonserver-connector-java from Maven Central, the client Axon applications use): the peer
// that users would pick instead of axarchive, and the proof that a Java client can use the test double.
// The sources are in java/ (a Maven project):
//
//   - Copier moves an event store the way AxonIQ suggests doing it programmatically: `read SRC` (stream
//     and discard), `copy SRC DST BATCH` (stream and append, BATCH events per transaction), `append SRC
//     DST BATCH` (append events read beforehand); it times itself and prints "ok: MODE events=N seconds=S
//     events_per_s=E …".
//   - Append appends edge-case events (every metadata type, timestamps 0 and -1, an empty message id, a
//     1 MiB payload) and snapshots.
//   - Probe streams every event and prints their count and a SHA-256 over them as the connector decoded
//     them.
//
// Build runs Maven (`mvn compile dependency:build-classpath`) into a cache directory keyed by the
// sources' digest, so that target/ never lands in the repository and a second build of the same sources
// costs nothing; Maven keeps the connector's jars in ~/.m2, so only the first build on a machine downloads
// them.
package javapeer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/internal/testenv"
)

// Peer is a built copy of the Java programs.
type Peer struct {
	// Dir is the build directory: classes/ and cp.txt (the connector's class path).
	Dir       string
	classPath string
}

// Available reports why the Java programs cannot be built and run here, or nil.
func Available() error {
	for _, tool := range []struct{ bin, pkg string }{{"java", "openjdk-17-jre-headless"}, {"mvn", "maven"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			return fmt.Errorf("no %s on PATH (apt-get install %s)", tool.bin, tool.pkg)
		}
	}
	return nil
}

// Require skips the test (fails it in CI) when java or mvn is missing.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		testenv.Missing(tb, "the Java connector's tools", err.Error())
	}
}

// Sources returns the directory of the Maven project: java/ beside this file, found from the working
// directory (a package directory under go test, the repository or below it under go run).
func Sources() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "internal", "javapeer", "java"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("javapeer: no go.mod above the working directory")
		}
		dir = parent
	}
}

// DefaultCache is where Build keeps its builds unless told otherwise: the user's cache directory.
func DefaultCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "axarchive", "javapeer")
	}
	return filepath.Join(os.TempDir(), "axarchive-javapeer")
}

// Build compiles the programs into cache/<digest of the sources>, or reuses that build if it is complete.
// log receives Maven's output.
func Build(cache string, log func(string)) (*Peer, error) {
	src, err := Sources()
	if err != nil {
		return nil, err
	}
	sum, err := digest(src)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, sum[:16])
	cpFile := filepath.Join(dir, "cp.txt")
	if cp, err := os.ReadFile(cpFile); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "classes", "peer", "Copier.class")); err == nil {
			return &Peer{Dir: dir, classPath: filepath.Join(dir, "classes") + string(os.PathListSeparator) + strings.TrimSpace(string(cp))}, nil
		}
	}
	if err := Available(); err != nil {
		return nil, err
	}
	// A half-done build (interrupted, failed) is redone from scratch; cp.txt is written last, so its
	// presence above means the classes are complete.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	tmpCP := filepath.Join(dir, "cp.txt.tmp")
	cmd := exec.Command("mvn", "-q", "-B", "-Djc.build="+dir, "compile", "dependency:build-classpath", "-Dmdep.outputFile="+tmpCP)
	cmd.Dir = src
	out, err := cmd.CombinedOutput()
	// Maven's -q still prints colour resets; anything else it says is worth showing.
	if text := strings.TrimSpace(strings.ReplaceAll(string(out), "\x1b[0m", "")); log != nil && text != "" {
		log(text)
	}
	if err != nil {
		return nil, fmt.Errorf("mvn in %s: %w\n%s", src, err, out)
	}
	if err := os.Rename(tmpCP, cpFile); err != nil {
		return nil, err
	}
	return Build(cache, log)
}

// digest is a SHA-256 over the paths and contents of the Maven project's files.
func digest(src string) (string, error) {
	var files []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "target" {
			return filepath.SkipDir // a stray build by hand
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(src, f)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Command returns the command that runs one of the programs (Copier, Append, Probe) with args.
func (p *Peer) Command(program string, args ...string) *exec.Cmd {
	return exec.Command("java", append([]string{"-cp", p.classPath, "peer." + program}, args...)...)
}

// Run runs a program and returns its standard output, failing unless it exits 0 and its last line starts
// with "ok:". The connector's log (standard error) goes into the error.
func (p *Peer) Run(program string, args ...string) (string, error) {
	cmd := p.Command(program, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	text := string(out)
	if err == nil && !strings.HasPrefix(LastLine(text), "ok:") {
		err = errors.New("no ok line")
	}
	if err != nil {
		return text, fmt.Errorf("java peer.%s %s: %w\n%s%s", program, strings.Join(args, " "), err, text, stderr.String())
	}
	return text, nil
}

// LastLine is the last non-empty line of a program's output, where each reports its result.
func LastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
