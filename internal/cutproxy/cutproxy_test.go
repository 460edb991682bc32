package cutproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sink accepts connections and sends what each received on got when it ends; it answers every
// connection with reply once the first byte came (before, a reset could beat the client's connect).
func sink(t *testing.T, reply []byte) (string, <-chan []byte) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	got := make(chan []byte, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				first := make([]byte, 1)
				if _, err := io.ReadFull(c, first); err != nil {
					got <- nil
					return
				}
				c.Write(reply)
				b, _ := io.ReadAll(c)
				got <- append(first, b...)
			}()
		}
	}()
	return l.Addr().String(), got
}

func TestProxy(t *testing.T) {
	reply := bytes.Repeat([]byte("r"), 100000)
	target, got := sink(t, reply)
	p := New(t, target)
	data := bytes.Repeat([]byte("0123456789"), 10000)

	t.Run("passes-through", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		_, err = c.Write(data)
		require.NoError(t, err)
		c.(*net.TCPConn).CloseWrite()
		back, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, reply, back)
		require.Equal(t, data, <-got)
		c.Close()
	})
	t.Run("cut-up", func(t *testing.T) {
		p.CutAfter(Up, 12345)
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		defer c.Close()
		c.Write(data) // may or may not fail, depending on when the reset arrives
		// No byte beyond the cut passes (those before it may be lost with the reset, as on a network).
		b := <-got
		require.LessOrEqual(t, len(b), 12345)
		require.Equal(t, data[:len(b)], b)
		_, err = io.ReadAll(c)
		require.Error(t, err, "the client sees a reset, not an orderly end")
		require.Equal(t, 1, p.Cuts())
		require.Zero(t, p.Pending())
	})
	t.Run("cut-down", func(t *testing.T) {
		p.CutAfter(Down, 5000)
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte("x"))
		require.NoError(t, err)
		back, err := io.ReadAll(c)
		require.Error(t, err)
		require.Equal(t, reply[:len(back)], back)
		require.LessOrEqual(t, len(back), 5000)
		require.Equal(t, 2, p.Cuts())
		<-got
	})
	t.Run("cut-all", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte("x"))
		require.NoError(t, err)
		_, err = io.ReadFull(c, make([]byte, 10))
		require.NoError(t, err)
		p.CutAll()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(c)
		require.Error(t, err)
		require.Equal(t, 3, p.Cuts())
		<-got
	})
}
