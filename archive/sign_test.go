package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeSign stands in for an SSHSIG signer (internal/sshsig has the real one, tested against ssh-keygen):
// the archive package only has to hand over the tag manifest and store what comes back.
func fakeSign(message []byte) ([]byte, error) {
	sum := sha256.Sum256(message)
	return append([]byte("sig:"), sum[:]...), nil
}

func TestSignedExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	opts := testOptions(0, 9)
	opts.Sign = fakeSign
	writeArchive(t, dir, opts, plainEvents(0, 10), nil)

	a, err := Open(dir)
	require.NoError(t, err)
	require.True(t, a.Signed())
	tags, sig, err := a.Signature()
	require.NoError(t, err)
	want, _ := fakeSign(tags)
	require.Equal(t, want, sig, "the signature is over tagmanifest-sha256.txt as written")
	onDisk, err := os.ReadFile(filepath.Join(dir, "tagmanifest-sha256.txt"))
	require.NoError(t, err)
	require.Equal(t, onDisk, tags)
	for _, quick := range []bool{false, true} {
		rep, err := a.Verify(context.Background(), VerifyOptions{Quick: quick})
		require.NoError(t, err)
		require.NoError(t, rep.Err(), "a signature file belongs to the archive (quick=%v)", quick)
	}
}

func TestSignExistingArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	writeArchive(t, dir, testOptions(0, 9), plainEvents(0, 10), nil)
	a, err := Open(dir)
	require.NoError(t, err)
	require.False(t, a.Signed())
	_, _, err = a.Signature()
	require.ErrorIs(t, err, ErrUnsigned)

	require.NoError(t, a.Sign(fakeSign))
	require.True(t, a.Signed())
	require.NoFileExists(t, filepath.Join(dir, SignatureFile+".tmp"))
	rep, err := a.Verify(context.Background(), VerifyOptions{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())

	failing := func([]byte) ([]byte, error) { return nil, errors.New("agent refused") }
	require.ErrorContains(t, a.Sign(failing), "agent refused")

	_, err = Open(t.TempDir()) // what there is to sign is an Archive
	require.ErrorIs(t, err, ErrNotArchive)
}

func TestSignatureFileHostile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	writeArchive(t, dir, testOptions(0, 9), plainEvents(0, 10), nil)
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(dir, SignatureFile)))
	a, err := Open(dir)
	require.NoError(t, err)
	rep, _ := a.Verify(context.Background(), VerifyOptions{Quick: true})
	require.ErrorContains(t, rep.Err(), "symbolic link")
	_, _, err = a.Signature()
	require.Error(t, err, "a link is never followed")

	require.NoError(t, os.Remove(filepath.Join(dir, SignatureFile)))
	big := make([]byte, maxSignatureSize+1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, SignatureFile), big, 0o644))
	_, _, err = a.Signature()
	require.ErrorContains(t, err, "larger than")
}

// A signed export stopped before Close finishes signed only when resumed with a signer; without one the
// resume is refused rather than completing an archive the user asked to have signed.
func TestResumeSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	opts := testOptions(0, 9)
	opts.Sign = fakeSign
	w, err := Create(dir, opts)
	require.NoError(t, err)
	evs := plainEvents(0, 10)
	for i := range 5 {
		require.NoError(t, w.WriteEvent(&evs[i]))
	}
	require.NoError(t, w.Suspend())

	unsigned := testOptions(0, 9)
	_, err = Resume(dir, unsigned)
	require.ErrorIs(t, err, ErrMismatch)
	require.ErrorContains(t, err, "signing")

	w, err = Resume(dir, opts)
	require.NoError(t, err)
	for i := int(w.NextToken()); i < 10; i++ {
		require.NoError(t, w.WriteEvent(&evs[i]))
	}
	require.NoError(t, w.FinishEvents())
	require.NoError(t, w.Close())
	a, err := Open(dir)
	require.NoError(t, err)
	require.True(t, a.Signed())
}
