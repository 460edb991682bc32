package sshsig

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/axarchive/axarchive/internal/smallfile"
)

// maxKeyFile bounds a private key file: the largest OpenSSH key (RSA 16384) is under 16 KiB.
const maxKeyFile = 1 << 20

// LoadSigner reads an OpenSSH private key file. A passphrase-protected key is used through ssh-agent
// (SSH_AUTH_SOCK) when the agent holds it, as ssh-keygen -Y sign does; a passphrase is never asked for or
// taken from the command line.
func LoadSigner(path string) (ssh.Signer, error) {
	data, err := smallfile.Read(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err == nil {
		return signer, nil
	}
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if pub, _, _, _, perr := ssh.ParseAuthorizedKey(data); perr == nil {
			// A public key file names a key held by the agent.
			return agentSigner(path, pub)
		}
		return nil, fmt.Errorf("%s: not an OpenSSH private key: %w", path, err)
	}
	if missing.PublicKey == nil {
		return nil, fmt.Errorf("%s: the key is passphrase-protected: add it to ssh-agent (ssh-add %s) and try again", path, path)
	}
	return agentSigner(path, missing.PublicKey)
}

func agentSigner(path string, pub ssh.PublicKey) (ssh.Signer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, fmt.Errorf("%s: the key is passphrase-protected and no ssh-agent is running (SSH_AUTH_SOCK): start one and ssh-add the key", path)
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("%s: ssh-agent: %w", path, err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: ssh-agent: %w", path, err)
	}
	for _, s := range signers {
		if string(s.PublicKey().Marshal()) == string(pub.Marshal()) {
			return s, nil
		}
	}
	conn.Close()
	return nil, fmt.Errorf("%s: ssh-agent does not hold this key (%s): ssh-add %s", path, Fingerprint(pub), path)
}

// SignFile writes path+".sig", an SSHSIG signature of the file under namespace, through a temporary file
// and a rename, so that a signature file is either whole or absent.
func SignFile(signer ssh.Signer, namespace, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	armored, err := Sign(signer, namespace, f)
	if err != nil {
		return err
	}
	tmp := path + ".sig.tmp"
	if err := os.WriteFile(tmp, armored, 0o644); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path+".sig")
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Signed is the outcome of VerifyFile: who signed, with which key.
type Signed struct {
	Principals  []string
	Fingerprint string
}

func (s Signed) String() string {
	return fmt.Sprintf("%s (%s)", strings.Join(s.Principals, ", "), s.Fingerprint)
}

// VerifyFile checks path+".sig" against the file's bytes, the namespace and an allowed_signers file.
func VerifyFile(path, namespace, allowedSigners string, now time.Time) (Signed, error) {
	armored, err := smallfile.Read(path+".sig", maxArmored)
	if err != nil {
		return Signed{}, err
	}
	message, err := os.ReadFile(path)
	if err != nil {
		return Signed{}, err
	}
	signers, err := LoadAllowedSigners(allowedSigners)
	if err != nil {
		return Signed{}, err
	}
	signed, err := VerifyMessage(message, armored, namespace, signers, now)
	if err != nil {
		return Signed{}, fmt.Errorf("%s.sig: %w", path, err)
	}
	return signed, nil
}

// LoadAllowedSigners reads an allowed_signers file.
func LoadAllowedSigners(path string) ([]AllowedSigner, error) {
	data, err := smallfile.Read(path, maxAllowedSigners)
	if err != nil {
		return nil, err
	}
	return ParseAllowedSigners(path, bytes.NewReader(data))
}

// VerifyMessage checks an armored signature of message under namespace and finds who, among the allowed
// signers, vouches for its key.
func VerifyMessage(message, armored []byte, namespace string, signers []AllowedSigner, now time.Time) (Signed, error) {
	sig, err := Parse(armored)
	if err != nil {
		return Signed{}, err
	}
	if err := sig.Verify(namespace, bytes.NewReader(message)); err != nil {
		return Signed{}, err
	}
	principals, err := FindPrincipals(signers, sig, now)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Principals: principals, Fingerprint: Fingerprint(sig.PublicKey)}, nil
}
