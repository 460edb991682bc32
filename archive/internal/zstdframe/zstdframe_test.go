package zstdframe

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func frame(t *testing.T, raw []byte) []byte {
	t.Helper()
	enc, err := NewEncoder(3)
	require.NoError(t, err)
	return enc.EncodeAll(raw, nil)
}

// A frame the encoder wrote passes the checker and decodes; the checker hashes and counts every byte.
func TestCheckerAccepts(t *testing.T) {
	raw := bytes.Repeat([]byte(`{"token":1,"x":"abc"}`+"\n"), 20000)
	zb := frame(t, raw)
	var c Checker
	c.Reset(bytes.NewReader(zb), int64(len(zb)))
	dec, err := NewDecoder()
	require.NoError(t, err)
	defer dec.Close()
	require.NoError(t, dec.Reset(&c))
	got, err := io.ReadAll(dec)
	require.NoError(t, err)
	assert.Equal(t, raw, got)
	_, err = io.Copy(io.Discard, &c)
	require.NoError(t, err)
	require.NoError(t, c.Complete())
	assert.Equal(t, int64(len(zb)), c.Size())
	assert.Equal(t, fmt.Sprintf("%x", sha256.Sum256(zb)), fmt.Sprintf("%x", c.Hash().Sum(nil)))
}

func TestCheckerRefuses(t *testing.T) {
	zb := frame(t, []byte("a line\n"))
	for _, tc := range []struct {
		name  string
		data  []byte
		limit int64
		want  string
	}{
		{"magic", append([]byte{0, 0, 0, 0}, zb[4:]...), int64(len(zb)), "zstd frame: not a zstd frame"},
		{"skippable", append([]byte{0x50, 0x2a, 0x4d, 0x18}, zb[4:]...), int64(len(zb)), "skippable frames are not allowed"},
		{"truncated", zb[:len(zb)-2], int64(len(zb)), "zstd frame is truncated"},
		{"trailing", append(append([]byte(nil), zb...), zb...), int64(2 * len(zb)), "data after the end of the frame"},
		{"larger", zb, int64(len(zb) - 1), "the file is larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Checker
			c.Reset(bytes.NewReader(tc.data), tc.limit)
			_, err := io.Copy(io.Discard, &c)
			if err == nil {
				err = c.Complete()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, err, c.Complete())
		})
	}
}

// HashRest hashes what is left without following the frame, up to one byte past the limit.
func TestHashRest(t *testing.T) {
	zb := frame(t, []byte("a line\n"))
	bad := append([]byte{0, 0, 0, 0}, zb[4:]...)
	r := bytes.NewReader(bad)
	var c Checker
	c.Reset(r, int64(len(bad)))
	_, err := c.Read(make([]byte, 8))
	require.Error(t, err)
	c.HashRest(r)
	assert.Equal(t, int64(len(bad)), c.Size())
	assert.Equal(t, fmt.Sprintf("%x", sha256.Sum256(bad)), fmt.Sprintf("%x", c.Hash().Sum(nil)))
}
