// Package agekeys reads the age recipients and identities a user names on the command line, in the forms
// the age command accepts: native X25519 (age1…) and hybrid post-quantum recipients, SSH public keys
// (ssh-ed25519, ssh-rsa), identity files of AGE-SECRET-KEY-1… lines, and SSH private key files.
package agekeys

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"github.com/axarchive/axarchive/internal/smallfile"
)

// maxKeyFile bounds a recipients or identity file: they hold a few keys, not megabytes.
const maxKeyFile = 1 << 20

// ParseRecipient reads one recipient: age1… (X25519 or hybrid) or an SSH public key line.
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "age1"):
		rs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil {
			return nil, fmt.Errorf("recipient %s: %w", abbreviate(s), err)
		}
		return rs[0], nil
	case strings.HasPrefix(s, "ssh-"):
		r, err := agessh.ParseRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("recipient %s: %w", abbreviate(s), err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("recipient %s: not an age (age1…) or SSH (ssh-ed25519, ssh-rsa) public key", abbreviate(s))
}

// Recipients reads the recipients given one by one and those in recipients files (one per line, # for
// comments, as age -R reads them). At least one must come out of them when any was named.
func Recipients(given, files []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range given {
		r, err := ParseRecipient(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	for _, f := range files {
		data, err := smallfile.Read(f, maxKeyFile)
		if err != nil {
			return nil, err
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), maxKeyFile)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			r, err := ParseRecipient(text)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", f, line, err)
			}
			out = append(out, r)
			n++
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no recipients in the file", f)
		}
	}
	return out, nil
}

// Identities reads identity files: age identity files (AGE-SECRET-KEY-1… lines) or unencrypted SSH
// private keys. A passphrase-protected SSH key is refused with a hint: axarchive never asks for one.
func Identities(files []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, f := range files {
		data, err := smallfile.Read(f, maxKeyFile)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(data, []byte("-----BEGIN")) {
			id, err := agessh.ParseIdentity(data)
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("%s: the SSH key is passphrase-protected; decrypt with an age identity file or an unprotected copy of the key kept offline", f)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, id)
			continue
		}
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: not an age identity file or SSH private key: %w", f, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// abbreviate keeps an error message short and free of a whole pasted key.
func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:20] + "…"
	}
	return s
}
