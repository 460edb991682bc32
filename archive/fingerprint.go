package archive

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
)

// Fingerprint computes the content fingerprint of an archive from its record lines (SPEC.md,
// "Fingerprint"): E is the SHA-256 of every event line (with its LF) in token order, S the SHA-256 of
// every snapshot line in position order, and the fingerprint the lower-case hex SHA-256 of the 64 bytes
// E || S. Two archives, or an archive and a live context read the same way, hold the same records
// exactly when their fingerprints are equal.
//
// The zero value is the Fingerprint of no records. A Fingerprint is not safe for concurrent use.
type Fingerprint struct {
	events, snapshots hash.Hash // nil until first used
}

func (f *Fingerprint) init() {
	if f.events == nil {
		f.events, f.snapshots = sha256.New(), sha256.New()
	}
}

// WriteEventLine adds the next event line, which must end with its LF.
func (f *Fingerprint) WriteEventLine(line []byte) {
	f.init()
	f.events.Write(line)
}

// WriteSnapshotLine adds the next snapshot line, which must end with its LF.
func (f *Fingerprint) WriteSnapshotLine(line []byte) {
	f.init()
	f.snapshots.Write(line)
}

// Sum returns the fingerprint of the lines written so far; writing may continue afterwards.
func (f *Fingerprint) Sum() string {
	f.init()
	h := sha256.New()
	h.Write(f.events.Sum(nil))
	h.Write(f.snapshots.Sum(nil))
	return hex.EncodeToString(h.Sum(nil))
}

// marshalHash and unmarshalHash carry a running SHA-256 through the journal.
func marshalHash(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("internal error: marshal sha256 state: " + err.Error())
	}
	return b
}

func unmarshalHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("hash state: %w", err)
	}
	return h, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
