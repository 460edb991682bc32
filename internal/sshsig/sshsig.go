// Package sshsig signs and verifies detached signatures in OpenSSH's SSHSIG format (PROTOCOL.sshsig), the
// format of `ssh-keygen -Y sign` and `ssh-keygen -Y verify`, so that an auditor can check what axarchive
// signed with stock OpenSSH and no axarchive at all.
package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	magic       = "SSHSIG"
	version     = 1
	armorBegin  = "-----BEGIN SSH SIGNATURE-----"
	armorEnd    = "-----END SSH SIGNATURE-----"
	armorColumn = 70 // ssh-keygen wraps the base64 body at 70 columns
	// maxArmored bounds what Parse reads: a signature with the largest RSA key is a few KiB.
	maxArmored = 64 << 10
)

// Signature is a parsed SSHSIG signature.
type Signature struct {
	PublicKey     ssh.PublicKey
	Namespace     string
	HashAlgorithm string // "sha256" or "sha512"
	Signature     *ssh.Signature
}

// wire is the binary SSHSIG blob after the magic preamble.
type wire struct {
	Version       uint32
	PublicKey     []byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Signature     []byte
}

// signedData is what the key actually signs: the message's hash, bound to the namespace.
type signedData struct {
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Hash          []byte
}

func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("sshsig: unsupported hash algorithm %q", alg)
}

func digest(alg string, message io.Reader) ([]byte, error) {
	h, err := newHash(alg)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(h, message); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func toSign(namespace, alg string, sum []byte) []byte {
	return append([]byte(magic), ssh.Marshal(signedData{Namespace: namespace, HashAlgorithm: alg, Hash: sum})...)
}

// Sign signs message under namespace with sha512, as ssh-keygen -Y sign does, and returns the armored
// signature. RSA keys sign with rsa-sha2-512 (OpenSSH refuses SHA-1 RSA signatures).
func Sign(signer ssh.Signer, namespace string, message io.Reader) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sshsig: empty namespace")
	}
	const alg = "sha512"
	sum, err := digest(alg, message)
	if err != nil {
		return nil, err
	}
	data := toSign(namespace, alg, sum)
	var sig *ssh.Signature
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: signing: %w", err)
	}
	blob := append([]byte(magic), ssh.Marshal(wire{
		Version:       version,
		PublicKey:     signer.PublicKey().Marshal(),
		Namespace:     namespace,
		HashAlgorithm: alg,
		Signature:     ssh.Marshal(sig),
	})...)
	return armor(blob), nil
}

func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorColumn {
		b.WriteString(enc[:armorColumn] + "\n")
		enc = enc[armorColumn:]
	}
	b.WriteString(enc + "\n" + armorEnd + "\n")
	return b.Bytes()
}

// ErrMalformed is returned by Parse for bytes that are not an SSHSIG signature.
var ErrMalformed = errors.New("sshsig: not a valid SSH signature")

// ErrMismatch is returned when a signature does not sign the message it is checked against.
var ErrMismatch = errors.New("sshsig: signature does not match the message")

// Parse reads an armored SSHSIG signature. It checks the structure, not the signature itself.
func Parse(armored []byte) (*Signature, error) {
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(armored) > maxArmored {
		return nil, malformed("%d bytes, larger than any SSH signature (%d)", len(armored), maxArmored)
	}
	text := strings.TrimSpace(strings.ReplaceAll(string(armored), "\r\n", "\n"))
	if len(text) < len(armorBegin)+len(armorEnd) || !strings.HasPrefix(text, armorBegin) || !strings.HasSuffix(text, armorEnd) {
		return nil, malformed("no BEGIN/END SSH SIGNATURE lines")
	}
	body := strings.Join(strings.Fields(text[len(armorBegin):len(text)-len(armorEnd)]), "")
	blob, err := base64.StdEncoding.Strict().DecodeString(body)
	if err != nil {
		return nil, malformed("bad base64: %v", err)
	}
	if !bytes.HasPrefix(blob, []byte(magic)) {
		return nil, malformed("missing SSHSIG preamble")
	}
	var w wire
	if err := ssh.Unmarshal(blob[len(magic):], &w); err != nil {
		return nil, malformed("%v", err)
	}
	if w.Version != version {
		return nil, malformed("unsupported version %d", w.Version)
	}
	if _, err := newHash(w.HashAlgorithm); err != nil {
		return nil, malformed("%v", err)
	}
	pub, err := ssh.ParsePublicKey(w.PublicKey)
	if err != nil {
		return nil, malformed("signer's public key: %v", err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(w.Signature, sig); err != nil {
		return nil, malformed("signature blob: %v", err)
	}
	return &Signature{PublicKey: pub, Namespace: w.Namespace, HashAlgorithm: w.HashAlgorithm, Signature: sig}, nil
}

// ErrNamespace is returned when a signature was made for another purpose than the one checked.
var ErrNamespace = errors.New("sshsig: signature made for another namespace")

// Verify checks that sig signs message under namespace with the key it names. Which keys to trust is the
// caller's decision (see AllowedSigners).
func (s *Signature) Verify(namespace string, message io.Reader) error {
	if s.Namespace != namespace {
		return fmt.Errorf("%w: %q, expected %q", ErrNamespace, s.Namespace, namespace)
	}
	if s.PublicKey.Type() == ssh.KeyAlgoRSA && s.Signature.Format == ssh.KeyAlgoRSA {
		return errors.New("sshsig: RSA signature with SHA-1, which OpenSSH refuses")
	}
	sum, err := digest(s.HashAlgorithm, message)
	if err != nil {
		return err
	}
	if err := s.PublicKey.Verify(toSign(namespace, s.HashAlgorithm, sum), s.Signature); err != nil {
		return fmt.Errorf("%w (%v)", ErrMismatch, err)
	}
	return nil
}

// Fingerprint is the key's SHA256 fingerprint as ssh-keygen prints it.
func Fingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }
