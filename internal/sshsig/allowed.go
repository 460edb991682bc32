package sshsig

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// AllowedSigner is one line of an OpenSSH allowed_signers file (ssh-keygen(1), ALLOWED SIGNERS).
type AllowedSigner struct {
	Principals    []string // patterns, as in ssh_config: * and ? wildcards, ! negates
	Namespaces    []string // patterns; none means any namespace
	CertAuthority bool     // the key signs certificates; it is not trusted as a signing key itself
	ValidAfter    time.Time
	ValidBefore   time.Time
	Key           ssh.PublicKey
	Line          int
}

// maxAllowedSigners bounds the file: an allowed_signers file is a hand-kept list of keys.
const maxAllowedSigners = 4 << 20

// ParseAllowedSigners reads an allowed_signers file; name is used in errors.
func ParseAllowedSigners(name string, r io.Reader) ([]AllowedSigner, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAllowedSigners+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxAllowedSigners {
		return nil, fmt.Errorf("%s: larger than %d bytes; not an allowed_signers file", name, maxAllowedSigners)
	}
	var out []AllowedSigner
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxAllowedSigners)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseAllowedLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		s.Line = n
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func parseAllowedLine(line string) (AllowedSigner, error) {
	var s AllowedSigner
	principals, rest := nextField(line)
	if principals == "" {
		return s, errors.New("no principals")
	}
	s.Principals = strings.Split(principals, ",")
	// Options come before the key type; the key is the first field that parses as an authorized key.
	for rest != "" {
		if key := publicKeyAt(rest); key != nil {
			s.Key = key
			return s, nil
		}
		var opts string
		opts, rest = nextField(rest)
		if err := s.applyOptions(opts); err != nil {
			return s, err
		}
	}
	return s, errors.New("no public key")
}

// publicKeyAt parses "keytype base64 [comment]" at the start of s, or returns nil.
func publicKeyAt(s string) ssh.PublicKey {
	keyType, rest := nextField(s)
	encoded, _ := nextField(rest)
	blob, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil || key.Type() != keyType {
		return nil
	}
	return key
}

// nextField splits off the first whitespace-separated field, keeping quoted spans whole.
func nextField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	quoted := false
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[:i], strings.TrimLeft(s[i:], " \t")
		}
	}
	return s, ""
}

func (s *AllowedSigner) applyOptions(opts string) error {
	for opts != "" {
		var opt string
		opt, opts = splitOption(opts)
		name, value, hasValue := strings.Cut(opt, "=")
		value = strings.Trim(value, `"`)
		switch strings.ToLower(name) {
		case "cert-authority":
			s.CertAuthority = true
		case "namespaces":
			if !hasValue {
				return errors.New("namespaces without a value")
			}
			s.Namespaces = strings.Split(value, ",")
		case "valid-after", "valid-before":
			t, err := parseSSHTime(value)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if name == "valid-after" {
				s.ValidAfter = t
			} else {
				s.ValidBefore = t
			}
		default:
			return fmt.Errorf("unknown option %q", name)
		}
	}
	return nil
}

// splitOption splits a comma-separated option list at the first comma outside quotes.
func splitOption(s string) (opt, rest string) {
	quoted := false
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// parseSSHTime reads ssh-keygen's YYYYMMDD[HHMM[SS]][Z] (local time unless Z).
func parseSSHTime(v string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		v, loc = v[:len(v)-1], time.UTC
	}
	for _, layout := range []string{"20060102", "200601021504", "20060102150405"} {
		if len(v) == len(layout) {
			return time.ParseInLocation(layout, v, loc)
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not YYYYMMDD[HHMM[SS]][Z]", v)
}

// matchList reports whether name matches a pattern list as OpenSSH's match_pattern_list does: a negated
// match refuses outright, otherwise any positive match accepts.
func matchList(name string, patterns []string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if ok, _ := path.Match(p, name); ok || p == name {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// ErrNotAllowed is returned when no allowed signer vouches for a signature's key.
var ErrNotAllowed = errors.New("sshsig: the signing key is not in the allowed signers")

// FindPrincipals returns the principals of the allowed signers that trust sig's key for its namespace at
// time now (as ssh-keygen -Y find-principals), or ErrNotAllowed.
func FindPrincipals(signers []AllowedSigner, sig *Signature, now time.Time) ([]string, error) {
	var out []string
	for _, s := range signers {
		if s.CertAuthority || !bytes.Equal(s.Key.Marshal(), sig.PublicKey.Marshal()) {
			continue
		}
		if len(s.Namespaces) > 0 && !matchList(sig.Namespace, s.Namespaces) {
			continue
		}
		if !s.ValidAfter.IsZero() && now.Before(s.ValidAfter) || !s.ValidBefore.IsZero() && !now.Before(s.ValidBefore) {
			continue
		}
		out = append(out, s.Principals...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w (key %s)", ErrNotAllowed, Fingerprint(sig.PublicKey))
	}
	return out, nil
}
