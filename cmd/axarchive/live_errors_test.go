package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/axontest"
	"github.com/axarchive/axarchive/internal/eventgen"
)

// runCLI runs axarchive in-process and returns its exit status, stdout and stderr as main prints them.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := newApp(&stdout, &stderr).RunContext(ctx, append([]string{"axarchive"}, args...))
	if err != nil {
		printError(&stderr, err)
	}
	return exitCode(err), stdout.String(), stderr.String()
}

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "axontest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}

// Connection failures of export and import: each a clear message, the right hint, exit status 1, and
// nothing that looks like a finished archive (issue 5 and 6, "bad input and failures").
func TestLiveConnectionFailures(t *testing.T) {
	cert, caFile := selfSigned(t)
	tlsSrv := axontest.NewServer(t, axontest.WithTLS(cert))
	require.NoError(t, tlsSrv.Load("default", eventgen.New(1, eventgen.Options{}).Generate(50)))
	plain := axontest.NewServer(t, axontest.WithContexts("default"))
	require.NoError(t, plain.Load("default", eventgen.New(1, eventgen.Options{}).Generate(50)))
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	src := out("src")
	code, _, stderr := runCLI(t, "export", "--server", plain.Addr(), "-o", src)
	require.Equal(t, exitOK, code, stderr)

	cases := []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"export: TLS server, plaintext client",
			[]string{"export", "--server", tlsSrv.Addr(), "-o", out("a")},
			[]string{"does it require TLS? check --tls", "hint: check --server"}},
		{"export: TLS server, unknown authority",
			[]string{"export", "--server", tlsSrv.Addr(), "--tls", "-o", out("b")},
			[]string{"TLS handshake with " + tlsSrv.Addr() + " failed", "certificate signed by unknown authority", "hint: check --tls, --ca-cert"}},
		{"export: plaintext server, TLS client",
			[]string{"export", "--server", plain.Addr(), "--ca-cert", caFile, "-o", out("c")},
			[]string{"TLS handshake with " + plain.Addr() + " failed", "hint: check --tls, --ca-cert"}},
		{"export: unknown context",
			[]string{"export", "--server", plain.Addr(), "--context", "nope", "-o", out("d")},
			[]string{`context "nope" not found (AXONIQ-1302)`, "hint: check --context"}},
		{"import: unknown context",
			[]string{"import", "--server", plain.Addr(), "--context", "nope", src},
			[]string{`context "nope" not found (AXONIQ-1302)`, "hint: check --context"}},
		{"import: TLS server, plaintext client",
			[]string{"import", "--server", tlsSrv.Addr(), src},
			[]string{"does it require TLS?"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			assert.Equal(t, exitError, code, stderr)
			for _, want := range tc.wantStderr {
				assert.Contains(t, stderr, want)
			}
			assert.True(t, strings.HasPrefix(stderr, "axarchive: error: "), stderr)
		})
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		assert.NoFileExists(t, filepath.Join(out(name), "data", "manifest.json"))
	}

	var stdout string
	// The right CA works; skipping verification works too, with a loud warning.
	code, stdout, stderr = runCLI(t, "export", "--server", tlsSrv.Addr(), "--ca-cert", caFile, "-o", out("e"))
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "exported 50 events")
	assert.NotContains(t, stderr, "warning")
	code, _, stderr = runCLI(t, "export", "--server", tlsSrv.Addr(), "--tls-skip-verify", "-o", out("f"))
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stderr, "axarchive: warning: --tls-skip-verify: the server's certificate is NOT checked")
}

// Progress: without a terminal, nothing on stderr and one summary line on stdout; --quiet prints nothing;
// --progress=json writes JSON objects with rate, percent and ETA to stderr, for export and import.
func TestProgressOutput(t *testing.T) {
	srv := axontest.NewServer(t)
	require.NoError(t, srv.Load("default", eventgen.New(1, eventgen.Options{}).Generate(500)))
	dir := t.TempDir()

	code, stdout, stderr := runCLI(t, "export", "--server", srv.Addr(), "-o", filepath.Join(dir, "a"))
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)
	assert.Regexp(t, `^exported 500 events \(tokens 0-499\) and 0 snapshots to \S+ in \S+ \([0-9]+ events/s\)\nfingerprint [0-9a-f]{64}\n$`, stdout)

	code, stdout, stderr = runCLI(t, "export", "--quiet", "--server", srv.Addr(), "-o", filepath.Join(dir, "b"))
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stdout)
	assert.Empty(t, stderr)

	code, stdout, stderr = runCLI(t, "import", "--quiet", "--server", srv.Addr(), "--context", "quiet", filepath.Join(dir, "a"))
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stdout)
	assert.Empty(t, stderr)
	assert.Equal(t, 500, srv.EventCount("quiet"))

	for _, args := range [][]string{
		{"export", "--progress", "json", "--server", srv.Addr(), "-o", filepath.Join(dir, "c")},
		{"import", "--progress", "json", "--server", srv.Addr(), "--context", "json", filepath.Join(dir, "a")},
	} {
		code, _, stderr = runCLI(t, args...)
		require.Equal(t, exitOK, code, stderr)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		require.NotEmpty(t, lines)
		var last map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last), stderr)
		for _, key := range []string{"phase", "records", "bytes", "token", "percent", "recordsPerSecond", "megabytesPerSecond", "etaSeconds", "elapsedSeconds"} {
			assert.Contains(t, last, key, args[0])
		}
		assert.Equal(t, float64(500), last["records"], args[0])
	}
}

// The live line on a terminal shows records, rate, MB/s, percent and ETA, and a warning does not garble
// it.
func TestProgressLiveLine(t *testing.T) {
	var buf bytes.Buffer
	p := &progressReporter{w: &buf, mode: progressAuto, live: true, start: time.Now().Add(-10 * time.Second)}
	p.print(p.fill(progressSample{Phase: "events", Records: 1000, Bytes: 5e6, Token: 999, Percent: 25}))
	line := buf.String()
	assert.True(t, strings.HasPrefix(line, "\r\033[K"), "the line redraws itself")
	assert.Regexp(t, `events: 1000 records, 100/s, 0\.5 MB/s, 25\.0%, ETA 30s$`, line)
	buf.Reset()
	p.warn("event stream lost")
	assert.Equal(t, "\r\033[Kaxarchive: warning: event stream lost\n", buf.String())
}

// Axon Server SE serves "default" whatever context a call names: export, import and diff refuse another
// context there, before reading or writing anything, with a hint (issue 14). The double in SE mode plays
// it; internal/e2etest checks the same against the real server.
func TestSingleContextServer(t *testing.T) {
	se := axontest.NewServer(t, axontest.WithSingleContext())
	require.NoError(t, se.Load("default", eventgen.New(1, eventgen.Options{}).Generate(20)))
	dir := filepath.Join(t.TempDir(), "a")
	code, _, stderr := runCLI(t, "export", "--server", se.Addr(), "-o", dir)
	require.Equal(t, 0, code, stderr)

	refused := filepath.Join(t.TempDir(), "b")
	want := `axarchive: error: check the context: context "orders": the server at ` + se.Addr() +
		` has one context, "default", and serves it whatever context a call names (Axon Server SE)` + "\n" +
		"axarchive: hint: leave out --context (or give --context default): Axon Server SE has the one context default\n"
	for _, args := range [][]string{
		{"export", "--server", se.Addr(), "--context", "orders", "-o", refused},
		{"import", "--server", se.Addr(), "--context", "orders", dir},
		{"diff", "--server", se.Addr(), "--context", "orders", dir},
	} {
		t.Run(args[0], func(t *testing.T) {
			calls := se.Calls(axontest.MethodAppendEvent) + se.Calls(axontest.MethodListEvents)
			code, _, stderr := runCLI(t, args...)
			assert.Equal(t, 1, code)
			assert.Equal(t, want, stderr)
			assert.Equal(t, calls, se.Calls(axontest.MethodAppendEvent)+se.Calls(axontest.MethodListEvents), "nothing read or written")
		})
	}
	assert.NoDirExists(t, refused)
}
