package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/axarchive/axarchive/archive/manifest"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/axarchive/axarchive/internal/testenv"
)

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	return id
}

// encryptedPair writes the same records into a plain and an encrypted archive.
func encryptedPair(t *testing.T, ids ...*age.X25519Identity) (plain, encrypted string) {
	t.Helper()
	plain, encrypted = filepath.Join(t.TempDir(), "plain"), filepath.Join(t.TempDir(), "enc")
	evs, snaps := edgeEvents(0), edgeSnapshots()
	opts := testOptions(0, evs[len(evs)-1].Token)
	opts.ChunkRecords = 4
	writeArchive(t, plain, opts, evs, snaps)
	for _, id := range ids {
		opts.Recipients = append(opts.Recipients, id.Recipient())
	}
	writeArchive(t, encrypted, opts, evs, snaps)
	return plain, encrypted
}

func TestEncryptedRoundTrip(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	plainDir, encDir := encryptedPair(t, alice, bob)
	plain, err := Open(plainDir)
	require.NoError(t, err)
	enc, err := Open(encDir)
	require.NoError(t, err)

	m := enc.Manifest()
	require.Equal(t, encryptionAge, m.Encryption)
	require.Equal(t, versionEncryption, m.Version)
	require.True(t, enc.encrypted())
	require.Equal(t, plain.Manifest().Fingerprint, m.Fingerprint, "the fingerprint is of the content, encrypted or not")
	require.Equal(t, plain.Manifest().Events.Count, m.Events.Count)
	for i, c := range m.Chunks {
		require.True(t, strings.HasSuffix(c.Path, ".jsonl.zst.age"), c.Path)
		require.Equal(t, plain.Manifest().Chunks[i].RawSHA256, c.RawSHA256)
		raw, err := os.ReadFile(filepath.Join(encDir, "data", c.Path))
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")), "an age file")
		sum := sha256.Sum256(raw)
		require.Equal(t, hex.EncodeToString(sum[:]), c.SHA256, "BagIt's checksum is the ciphertext's")
	}

	// Without a key: the quick verification proves the files; the records stay closed.
	rep, err := enc.Verify(context.Background(), VerifyOptions{Quick: true})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	_, err = enc.Verify(context.Background(), VerifyOptions{})
	require.ErrorIs(t, err, ErrEncrypted)
	it := enc.Events(context.Background(), 0)
	require.False(t, it.Next())
	require.ErrorIs(t, it.Err(), ErrEncrypted)
	require.ErrorContains(t, it.Err(), "data/events/00000000000000000000.jsonl.zst.age")
	it.Close()

	// Either recipient's key opens it, and every line is the plain archive's.
	for _, id := range []*age.X25519Identity{alice, bob} {
		enc.SetIdentities(id)
		rep, err := enc.Verify(context.Background(), VerifyOptions{})
		require.NoError(t, err, "%v", rep.Err())
		require.NoError(t, rep.Err())
		for _, stream := range []string{manifest.StreamEvents, manifest.StreamSnapshots} {
			require.Equal(t, readAll(t, plain, stream), readAll(t, enc, stream))
		}
	}

	// A key the archive was not encrypted to.
	enc2, err := Open(encDir)
	require.NoError(t, err)
	enc2.SetIdentities(newIdentity(t))
	_, err = enc2.Verify(context.Background(), VerifyOptions{})
	require.ErrorIs(t, err, ErrVerify)
	it = enc2.Events(context.Background(), 0)
	require.False(t, it.Next())
	require.ErrorIs(t, it.Err(), ErrIdentity)
	require.ErrorContains(t, it.Err(), "data/events/00000000000000000000.jsonl.zst.age")
	it.Close()
}

// age authenticates every 64 KiB of ciphertext: a change that the manifest was made to agree with (its
// checksums recomputed) is still found, and named, by every reader that decrypts.
func TestEncryptedTamperedCiphertext(t *testing.T) {
	id := newIdentity(t)
	_, encDir := encryptedPair(t, id)
	a, err := Open(encDir)
	require.NoError(t, err)
	c := a.Manifest().Chunks[1]
	path := filepath.Join(encDir, "data", c.Path)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	raw[len(raw)-5] ^= 1 // inside the last payload chunk
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	sum := sha256.Sum256(raw)
	reseal(t, encDir, func(m *manifest.Manifest) { m.Chunks[1].SHA256 = hex.EncodeToString(sum[:]) })

	a, err = Open(encDir)
	require.NoError(t, err)
	rep, err := a.Verify(context.Background(), VerifyOptions{Quick: true})
	require.NoError(t, err, "the checksums agree: only decryption can tell")
	require.NoError(t, rep.Err())
	a.SetIdentities(id)
	rep, err = a.Verify(context.Background(), VerifyOptions{})
	require.ErrorIs(t, err, ErrVerify)
	require.ErrorContains(t, rep.Err(), c.Path)
	it := a.Events(context.Background(), 0)
	for it.Next() {
	}
	require.ErrorIs(t, it.Err(), ErrCorrupt)
	require.ErrorContains(t, it.Err(), c.Path)
	require.ErrorContains(t, it.Err(), "decrypt: ")
	it.Close()
}

func TestEncryptedResume(t *testing.T) {
	id := newIdentity(t)
	dir := filepath.Join(t.TempDir(), "a")
	evs := edgeEvents(0)
	opts := testOptions(0, evs[len(evs)-1].Token)
	opts.ChunkRecords = 4
	opts.Recipients = []age.Recipient{id.Recipient()}
	w, err := Create(dir, opts)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, w.WriteEvent(&evs[i]))
	}
	require.NoError(t, w.Suspend())

	plainOpts := testOptions(0, evs[len(evs)-1].Token)
	plainOpts.ChunkRecords = 4
	_, err = Resume(dir, plainOpts)
	require.ErrorIs(t, err, ErrMismatch, "never completed half encrypted")
	require.ErrorContains(t, err, "encryption")

	w, err = Resume(dir, opts)
	require.NoError(t, err)
	// A resumed live export reads back what it committed: with an identity it can.
	it := w.CommittedEvents(context.Background())
	require.False(t, it.Next())
	require.ErrorIs(t, it.Err(), ErrEncrypted)
	it.Close()
	w.Suspend()
	opts.Identities = []age.Identity{id}
	w, err = Resume(dir, opts)
	require.NoError(t, err)
	it = w.CommittedEvents(context.Background())
	n := 0
	for it.Next() {
		n++
	}
	require.NoError(t, it.Err())
	require.Positive(t, n)
	it.Close()
	for i := range evs {
		if evs[i].Token >= w.NextToken() {
			require.NoError(t, w.WriteEvent(&evs[i]))
		}
	}
	require.NoError(t, w.FinishEvents())
	require.NoError(t, w.Close())
	a, err := Open(dir)
	require.NoError(t, err)
	a.SetIdentities(id)
	rep, err := a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
}

// The manifest never mixes encrypted and plain chunks, nor claims encryption in version 1.
func TestEncryptedManifestConsistency(t *testing.T) {
	_, encDir := encryptedPair(t, newIdentity(t))
	for name, edit := range map[string]func(m *manifest.Manifest){
		"plain chunk name": func(m *manifest.Manifest) { m.Chunks[0].Path = strings.TrimSuffix(m.Chunks[0].Path, ".age") },
		"unknown scheme":   func(m *manifest.Manifest) { m.Encryption = "rot13" },
		"not said":         func(m *manifest.Manifest) { m.Encryption = "" },
		"version 1":        func(m *manifest.Manifest) { m.Version = 1 },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			copyDir(t, encDir, dir)
			reseal(t, dir, edit)
			_, err := Open(dir)
			require.Error(t, err)
		})
	}
}

// What axarchive encrypts, the stock age and zstd tools read: age -d -i KEY CHUNK | zstd -dc.
func TestEncryptedChunksReadByStockTools(t *testing.T) {
	ageBin := testenv.LookPath(t, "age", "apt-get install age")
	zstdBin := testenv.LookPath(t, "zstd", "apt-get install zstd")
	id := newIdentity(t)
	plainDir, encDir := encryptedPair(t, id)
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	require.NoError(t, os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600))
	plain, err := Open(plainDir)
	require.NoError(t, err)
	enc, err := Open(encDir)
	require.NoError(t, err)
	for i, c := range enc.Manifest().Chunks {
		cmd := exec.Command("sh", "-c", `"$0" -d -i "$1" "$2" | "$3" -dc`, ageBin, keyFile, filepath.Join(encDir, "data", c.Path), zstdBin)
		out, err := cmd.Output()
		require.NoError(t, err, c.Path)
		want, err := os.ReadFile(filepath.Join(plainDir, "data", plain.Manifest().Chunks[i].Path))
		require.NoError(t, err)
		require.Equal(t, string(zstdDecompress(t, want)), string(out), c.Path)
	}
}

// What the stock age tool encrypts, axarchive reads: a chunk sealed with `age -r` in place of ours.
func TestEncryptedChunkWrittenByStockAge(t *testing.T) {
	ageBin := testenv.LookPath(t, "age", "apt-get install age")
	id := newIdentity(t)
	plainDir, encDir := encryptedPair(t, id)
	plain, err := Open(plainDir)
	require.NoError(t, err)
	enc, err := Open(encDir)
	require.NoError(t, err)
	c := enc.Manifest().Chunks[2]
	src := filepath.Join(plainDir, "data", plain.Manifest().Chunks[2].Path)
	dst := filepath.Join(encDir, "data", c.Path)
	out, err := exec.Command(ageBin, "-r", id.Recipient().String(), "-o", dst+".new", src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Rename(dst+".new", dst))
	raw, err := os.ReadFile(dst)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	reseal(t, encDir, func(m *manifest.Manifest) {
		m.Chunks[2].SHA256, m.Chunks[2].Size = hex.EncodeToString(sum[:]), int64(len(raw))
	})
	enc, err = Open(encDir)
	require.NoError(t, err)
	enc.SetIdentities(id)
	rep, err := enc.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, readAll(t, plain, manifest.StreamEvents), readAll(t, enc, manifest.StreamEvents))
}
