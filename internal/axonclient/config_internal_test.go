package axonclient

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Keepalive pings never come more often than Axon Server accepts (AXON.md 2.1: every second at most, or
// it sends GOAWAY "too_many_pings"); the defaults fill what is not set.
func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		in, want time.Duration
	}{{0, DefaultKeepaliveTime}, {time.Millisecond, minKeepaliveTime}, {999 * time.Millisecond, minKeepaliveTime}, {time.Minute, time.Minute}} {
		c, err := Config{KeepaliveTime: tc.in}.withDefaults()
		require.NoError(t, err)
		assert.Equal(t, tc.want, c.KeepaliveTime, "KeepaliveTime %s", tc.in)
		assert.GreaterOrEqual(t, c.KeepaliveTime, time.Second)
	}
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, "localhost:8124", c.Address)
	assert.Equal(t, "default", c.Context)
	assert.Equal(t, DefaultMaxRecvMsgSize, c.MaxRecvMsgSize)
	assert.Equal(t, DefaultMaxSendMsgSize, c.MaxSendMsgSize)
	assert.Equal(t, 5, c.Retry.MaxAttempts)
	assert.False(t, c.useTLS())
	for _, tlsOn := range []Config{{TLS: true}, {CACertFile: "x"}, {InsecureSkipVerify: true}, {ServerName: "x"}, {ClientCertFile: "c", ClientKeyFile: "k"}} {
		assert.True(t, tlsOn.useTLS(), "%+v", tlsOn)
	}
	_, err = Config{Token: "a\nb"}.withDefaults()
	assert.Error(t, err, "a token with a line break would split the header")
}
