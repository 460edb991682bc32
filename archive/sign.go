package archive

import (
	"errors"
	"fmt"
	"io/fs"
)

// The signature of an archive (SPEC 3.4).
const (
	// SignatureFile is the detached signature of an archive's tag manifest, at the archive's root.
	SignatureFile = signaturePath

	// SignatureNamespace is the SSHSIG namespace of an archive signature, so that a signature made for
	// another purpose with the same key is never taken for one of an archive.
	SignatureNamespace = "axarchive"
)

// Sign signs the archive, replacing any signature it had: for archives exported without
// Options.Sign, or to sign again with another key. It reads only the tag manifest, which a full Verify
// ties to every other file.
func (a *Archive) Sign(sign SignFunc) error { return signTagManifest(a.st, sign) }

func signTagManifest(st Storage, sign SignFunc) error {
	tags, err := readSmallFile(st, tagManifestPath, maxTagFileBytes)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	sig, err := sign(tags)
	if err != nil {
		return fmt.Errorf("sign %s: %w", tagManifestPath, err)
	}
	return writeFile(st, signaturePath, sig)
}

// Signature returns the archive's tag manifest and its detached signature, for the caller to check
// against the keys it trusts, or ErrUnsigned.
func (a *Archive) Signature() (tagManifest, signature []byte, err error) {
	signature, err = readSmallFile(a.st, signaturePath, maxSignatureSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w (no %s)", a.dir, ErrUnsigned, signaturePath)
	}
	if err != nil {
		return nil, nil, err
	}
	tagManifest, err = readSmallFile(a.st, tagManifestPath, maxTagFileBytes)
	if err != nil {
		return nil, nil, err
	}
	return tagManifest, signature, nil
}

// Signed reports whether the archive has a signature file (checked or not).
func (a *Archive) Signed() bool {
	_, err := a.st.Stat(signaturePath)
	return err == nil
}
