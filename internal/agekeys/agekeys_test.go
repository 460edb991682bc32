package agekeys_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/agekeys"
	"github.com/axarchive/axarchive/internal/testenv"
)

func roundTrip(t *testing.T, recipients []age.Recipient, identities []age.Identity) {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	require.NoError(t, err)
	_, err = io.WriteString(w, "secret")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	r, err := age.Decrypt(&buf, identities...)
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "secret", string(got))
}

// Keys made by the stock age-keygen and ssh-keygen, given as the age command takes them.
func TestKeysFromStockTools(t *testing.T) {
	ageKeygen := testenv.LookPath(t, "age-keygen", "apt-get install age")
	sshKeygen := testenv.LookPath(t, "ssh-keygen", "apt-get install openssh-client")
	dir := t.TempDir()
	ageKey := filepath.Join(dir, "age.key")
	out, err := exec.Command(ageKeygen, "-o", ageKey).CombinedOutput()
	require.NoError(t, err, "%s", out)
	pub, err := exec.Command(ageKeygen, "-y", ageKey).Output()
	require.NoError(t, err)
	sshKey := filepath.Join(dir, "id_ed25519")
	out, err = exec.Command(sshKeygen, "-q", "-t", "ed25519", "-N", "", "-f", sshKey).CombinedOutput()
	require.NoError(t, err, "%s", out)
	sshPub, err := os.ReadFile(sshKey + ".pub")
	require.NoError(t, err)

	recipientsFile := filepath.Join(dir, "recipients.txt")
	require.NoError(t, os.WriteFile(recipientsFile, []byte("# ops\n\n"+string(sshPub)), 0o644))
	rs, err := agekeys.Recipients([]string{strings.TrimSpace(string(pub))}, []string{recipientsFile})
	require.NoError(t, err)
	require.Len(t, rs, 2)

	for _, idFile := range []string{ageKey, sshKey} {
		ids, err := agekeys.Identities([]string{idFile})
		require.NoError(t, err)
		roundTrip(t, rs, ids)
	}

	locked := filepath.Join(dir, "locked")
	out, err = exec.Command(sshKeygen, "-q", "-t", "ed25519", "-N", "pass phrase", "-f", locked).CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = agekeys.Identities([]string{locked})
	require.ErrorContains(t, err, "passphrase-protected")
}

func TestBadKeys(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("# nobody\n"), 0o644))
	junk := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(junk, []byte("hello\n"), 0o644))
	for _, tc := range []struct {
		given, files []string
		want         string
	}{
		{given: []string{"age1notakey"}, want: "recipient age1notakey"},
		{given: []string{"pgp:0xDEADBEEF"}, want: "not an age (age1…) or SSH"},
		{given: []string{"ssh-ed25519 AAAAbroken"}, want: "recipient ssh-ed25519 AAAAbr"},
		{files: []string{empty}, want: "no recipients in the file"},
		{files: []string{junk}, want: junk + ":1: recipient hello"},
		{files: []string{filepath.Join(dir, "missing")}, want: "no such file"},
		{files: []string{dir}, want: "not a regular file"},
	} {
		_, err := agekeys.Recipients(tc.given, tc.files)
		require.ErrorContains(t, err, tc.want)
	}
	_, err := agekeys.Identities([]string{junk})
	require.ErrorContains(t, err, "not an age identity file or SSH private key")
}
