package sshsig_test

import (
	"strings"
	"testing"

	"github.com/axarchive/axarchive/internal/sshsig"
)

// Signatures and allowed_signers files come from whoever hands over an archive: no input may crash or hang
// the parsers, and a parsed signature must not verify a message it does not sign.
func FuzzParse(f *testing.F) {
	_, priv, err := ed25519Key()
	if err != nil {
		f.Fatal(err)
	}
	good, err := sshsig.Sign(priv, "axarchive", strings.NewReader("m"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sig, err := sshsig.Parse(in)
		if err != nil {
			return
		}
		_ = sig.Verify("axarchive", strings.NewReader("not the message"))
	})
}

func FuzzAllowedSigners(f *testing.F) {
	f.Add(`a@x,b@y namespaces="axarchive",valid-after="20260101Z" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKn3 c`)
	f.Add("# comment\n\n*@example.com cert-authority ssh-rsa AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = sshsig.ParseAllowedSigners("allowed_signers", strings.NewReader(in))
	})
}
