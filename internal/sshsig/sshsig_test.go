package sshsig_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/axarchive/axarchive/internal/sshsig"
	"github.com/axarchive/axarchive/internal/testenv"
)

const namespace = "axarchive"

// keygen makes a key pair with the real ssh-keygen and returns the private key's path and its signer.
func keygen(t *testing.T, sshKeygen, keyType string) (string, ssh.Signer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "id_"+keyType)
	args := []string{"-q", "-t", keyType, "-N", "", "-C", "auditor@example.com", "-f", path}
	if keyType == "rsa" {
		args = append(args, "-b", "2048")
	}
	out, err := exec.Command(sshKeygen, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	pem, err := os.ReadFile(path)
	require.NoError(t, err)
	signer, err := ssh.ParsePrivateKey(pem)
	require.NoError(t, err)
	return path, signer
}

func allowedSigners(t *testing.T, principal string, opts string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "allowed_signers")
	line := principal + " "
	if opts != "" {
		line += opts + " "
	}
	line += strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	require.NoError(t, os.WriteFile(path, []byte("# auditors\n\n"+line+" comment here\n"), 0o644))
	return path
}

// What we sign, OpenSSH verifies; what OpenSSH signs, we verify; for each key type OpenSSH signs with.
func TestInteropWithOpenSSH(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen", "apt-get install openssh-client")
	message := []byte("tagmanifest contents\nline 2\n")
	for _, keyType := range []string{"ed25519", "rsa", "ecdsa"} {
		t.Run(keyType, func(t *testing.T) {
			keyPath, signer := keygen(t, sshKeygen, keyType)
			allowed := allowedSigners(t, "auditor@example.com", `namespaces="axarchive"`, signer.PublicKey())
			dir := t.TempDir()
			msgPath := filepath.Join(dir, "tagmanifest-sha256.txt")
			require.NoError(t, os.WriteFile(msgPath, message, 0o644))

			// ours -> ssh-keygen -Y verify
			sig, err := sshsig.Sign(signer, namespace, bytes.NewReader(message))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(msgPath+".sig", sig, 0o644))
			cmd := exec.Command(sshKeygen, "-Y", "verify", "-f", allowed, "-I", "auditor@example.com", "-n", namespace, "-s", msgPath+".sig")
			cmd.Stdin = bytes.NewReader(message)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "ssh-keygen -Y verify of our signature: %s", out)
			cmd = exec.Command(sshKeygen, "-Y", "verify", "-f", allowed, "-I", "auditor@example.com", "-n", namespace, "-s", msgPath+".sig")
			cmd.Stdin = bytes.NewReader(append(message, '!'))
			out, err = cmd.CombinedOutput()
			require.Error(t, err, "ssh-keygen must refuse a changed message: %s", out)

			// ssh-keygen -Y sign -> ours
			require.NoError(t, os.Remove(msgPath+".sig"))
			out, err = exec.Command(sshKeygen, "-Y", "sign", "-f", keyPath, "-n", namespace, msgPath).CombinedOutput()
			require.NoError(t, err, "%s", out)
			armored, err := os.ReadFile(msgPath + ".sig")
			require.NoError(t, err)
			parsed, err := sshsig.Parse(armored)
			require.NoError(t, err)
			require.NoError(t, parsed.Verify(namespace, bytes.NewReader(message)))
			f, err := os.Open(allowed)
			require.NoError(t, err)
			defer f.Close()
			signers, err := sshsig.ParseAllowedSigners(allowed, f)
			require.NoError(t, err)
			principals, err := sshsig.FindPrincipals(signers, parsed, time.Now())
			require.NoError(t, err)
			require.Equal(t, []string{"auditor@example.com"}, principals)

			require.Error(t, parsed.Verify(namespace, bytes.NewReader(append(message, '!'))), "a changed message")
			require.ErrorIs(t, parsed.Verify("file", bytes.NewReader(message)), sshsig.ErrNamespace)
		})
	}
}

func TestAllowedSignersRules(t *testing.T) {
	_, priv, err := ed25519Key()
	require.NoError(t, err)
	other, _, err := ed25519Key()
	require.NoError(t, err)
	armored, err := sshsig.Sign(priv, namespace, strings.NewReader("m"))
	require.NoError(t, err)
	sig, err := sshsig.Parse(armored)
	require.NoError(t, err)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(priv.PublicKey())))
	otherKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other)))
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, file string
		want       []string
	}{
		{"plain", "a@x " + key, []string{"a@x"}},
		{"several principals", "a@x,b@y " + key, []string{"a@x", "b@y"}},
		{"namespace allowed", `a@x namespaces="file,axarchive" ` + key, []string{"a@x"}},
		{"namespace pattern", `a@x namespaces="axarch*" ` + key, []string{"a@x"}},
		{"namespace refused", `a@x namespaces="file" ` + key, nil},
		{"namespace negated", `a@x namespaces="*,!axarchive" ` + key, nil},
		{"other key", "a@x " + otherKey, nil},
		{"cert authority is not a signing key", "a@x cert-authority " + key, nil},
		{"not yet valid", `a@x valid-after="20270101Z" ` + key, nil},
		{"expired", `a@x valid-before="20261201Z" ` + key, nil},
		{"within validity", `a@x valid-after="20260101Z",valid-before="202612312359Z" ` + key, []string{"a@x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signers, err := sshsig.ParseAllowedSigners("allowed_signers", strings.NewReader(tc.file))
			require.NoError(t, err)
			got, err := sshsig.FindPrincipals(signers, sig, now)
			if tc.want == nil {
				require.ErrorIs(t, err, sshsig.ErrNotAllowed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{"a@x", `a@x frobnicate ` + key, `a@x valid-after="tomorrow" ` + key, "a@x ssh-ed25519 !!!!"} {
		_, err := sshsig.ParseAllowedSigners("allowed_signers", strings.NewReader("\n"+bad+"\n"))
		require.ErrorContains(t, err, "allowed_signers:2:", "%q", bad)
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	_, priv, err := ed25519Key()
	require.NoError(t, err)
	good, err := sshsig.Sign(priv, namespace, strings.NewReader("m"))
	require.NoError(t, err)
	for name, in := range map[string][]byte{
		"empty":       nil,
		"no armor":    []byte("hello"),
		"bad base64":  []byte("-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n"),
		"no preamble": []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"),
		"truncated":   append(append([]byte{}, good[:60]...), []byte("\n-----END SSH SIGNATURE-----\n")...),
		"huge":        bytes.Repeat([]byte("A"), 1<<20),
	} {
		_, err := sshsig.Parse(in)
		require.Error(t, err, name)
	}
}
