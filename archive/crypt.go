package archive

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"filippo.io/age"
)

// encryptionAge is the manifest's encryption scheme: every chunk file is the age (age-encryption.org/v1)
// encryption of its zstd frame, each with a file key of its own (SPEC.md, "Encrypted chunks").
const encryptionAge = "age"

// SetIdentities gives an Archive the identities that decrypt its chunks (ignored for an archive that
// is not encrypted). Call it before reading or verifying.
func (a *Archive) SetIdentities(ids ...age.Identity) { a.identities = ids }

// Encrypted reports whether the archive's chunks are encrypted.
func (a *Archive) encrypted() bool { return a.m.Encryption != "" }

// cipherReader counts and hashes the bytes of an encrypted chunk file as age reads them, refusing to
// read beyond the size the manifest gives.
type cipherReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
}

func (c *cipherReader) reset(r io.Reader, limit int64) {
	c.r, c.n, c.limit = r, 0, limit
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
}

func (c *cipherReader) Read(p []byte) (int, error) {
	if room := c.limit - c.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.n > c.limit {
		return 0, fmt.Errorf("%w: the file is larger than the %d bytes of the manifest", ErrCorrupt, c.limit)
	}
	return n, err
}

// errTap passes reads through and keeps the first error other than io.EOF.
type errTap struct {
	r   io.Reader
	err error
}

func (t *errTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// decryptError names what went wrong opening an age file: no identity, the wrong ones, or a header
// that is not age's.
func decryptError(err error, identities int) error {
	var noMatch *age.NoIdentityMatchError
	switch {
	case identities == 0:
		return ErrEncrypted
	case errors.As(err, &noMatch):
		return fmt.Errorf("%w (%d identities tried)", ErrIdentity, identities)
	}
	return fmt.Errorf("%w: age: %v", ErrCorrupt, err)
}
