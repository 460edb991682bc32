package sshsig_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/axarchive/axarchive/internal/sshsig"
	"github.com/axarchive/axarchive/internal/testenv"
)

func TestSignFileAndVerifyFile(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen", "apt-get install openssh-client")
	keyPath, signer := keygen(t, sshKeygen, "ed25519")
	allowed := allowedSigners(t, "auditor@example.com", "", signer.PublicKey())
	dir := t.TempDir()
	path := filepath.Join(dir, "tagmanifest-sha256.txt")
	require.NoError(t, os.WriteFile(path, []byte("abc  bagit.txt\n"), 0o644))

	loaded, err := sshsig.LoadSigner(keyPath)
	require.NoError(t, err)
	require.NoError(t, sshsig.SignFile(loaded, namespace, path))
	require.NoFileExists(t, path+".sig.tmp")

	cmd := exec.Command(sshKeygen, "-Y", "verify", "-f", allowed, "-I", "auditor@example.com", "-n", namespace, "-s", path+".sig")
	cmd.Stdin = bytes.NewReader([]byte("abc  bagit.txt\n"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	signed, err := sshsig.VerifyFile(path, namespace, allowed, time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{"auditor@example.com"}, signed.Principals)
	require.Equal(t, ssh.FingerprintSHA256(signer.PublicKey()), signed.Fingerprint)

	require.NoError(t, os.WriteFile(path, []byte("abd  bagit.txt\n"), 0o644))
	_, err = sshsig.VerifyFile(path, namespace, allowed, time.Now())
	require.ErrorContains(t, err, "does not match")

	require.NoError(t, os.WriteFile(path, []byte("abc  bagit.txt\n"), 0o644))
	_, otherSigner := keygen(t, sshKeygen, "ed25519")
	other := allowedSigners(t, "someone@else", "", otherSigner.PublicKey())
	_, err = sshsig.VerifyFile(path, namespace, other, time.Now())
	require.ErrorIs(t, err, sshsig.ErrNotAllowed)

	_, err = sshsig.LoadSigner(allowed)
	require.Error(t, err, "an allowed_signers file is no key")
}

// A passphrase-protected key signs through ssh-agent, never with a passphrase on the command line.
func TestLoadSignerThroughAgent(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen", "apt-get install openssh-client")
	sshAgent := testenv.LookPath(t, "ssh-agent", "apt-get install openssh-client")
	sshAdd := testenv.LookPath(t, "ssh-add", "apt-get install openssh-client")
	keyPath := filepath.Join(t.TempDir(), "id_ed25519")
	out, err := exec.Command(sshKeygen, "-q", "-t", "ed25519", "-N", "correct horse", "-f", keyPath).CombinedOutput()
	require.NoError(t, err, "%s", out)

	t.Setenv("SSH_AUTH_SOCK", "")
	_, err = sshsig.LoadSigner(keyPath)
	require.ErrorContains(t, err, "passphrase-protected")

	sock := filepath.Join(t.TempDir(), "agent.sock")
	out, err = exec.Command(sshAgent, "-a", sock).CombinedOutput()
	require.NoError(t, err, "%s", out)
	pid := regexp.MustCompile(`SSH_AGENT_PID=(\d+)`).FindStringSubmatch(string(out))
	require.NotNil(t, pid, "%s", out)
	t.Cleanup(func() { exec.Command("kill", pid[1]).Run() })
	t.Setenv("SSH_AUTH_SOCK", sock)

	_, err = sshsig.LoadSigner(keyPath)
	require.ErrorContains(t, err, "does not hold this key")

	// ssh-add reads the passphrase from SSH_ASKPASS when it has no terminal.
	askpass := filepath.Join(t.TempDir(), "askpass")
	require.NoError(t, os.WriteFile(askpass, []byte("#!/bin/sh\necho 'correct horse'\n"), 0o755))
	add := exec.Command(sshAdd, keyPath)
	add.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=none")
	out, err = add.CombinedOutput()
	require.NoError(t, err, "%s", out)

	signer, err := sshsig.LoadSigner(keyPath)
	require.NoError(t, err)
	armored, err := sshsig.Sign(signer, namespace, strings.NewReader("m"))
	require.NoError(t, err)
	sig, err := sshsig.Parse(armored)
	require.NoError(t, err)
	require.NoError(t, sig.Verify(namespace, strings.NewReader("m")))
}
