package ordered

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type nums struct{ in, out []int }

func (b *nums) Reset() { b.in, b.out = b.in[:0], b.out[:0] }

// run squares 0..n-1 in batches of 3 through a pipeline whose workers take random time, and returns
// what the consumer saw, in the order it saw it.
func run(t *testing.T, n int, fail int) ([]int, error) {
	p := New(func() *nums { return new(nums) }, func() func(*nums) {
		r := rand.New(rand.NewPCG(1, 2))
		return func(b *nums) {
			time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
			for _, v := range b.in {
				b.out = append(b.out, v*v)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		defer p.Finish()
		for i := 0; i < n; i += 3 {
			s, err := p.Get(ctx)
			if err != nil {
				produced <- err
				return
			}
			for v := i; v < min(i+3, n); v++ {
				s.Batch.in = append(s.Batch.in, v)
			}
			if err := p.Submit(ctx, s); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()
	var got []int
	err := p.Drain(func(b *nums) error {
		for _, v := range b.out {
			if fail >= 0 && v == fail*fail {
				return errors.New("fail")
			}
			got = append(got, v)
		}
		return nil
	}, cancel)
	perr := <-produced
	if err == nil {
		require.NoError(t, perr)
	} else {
		require.ErrorIs(t, perr, context.Canceled, "the producer was told to stop")
	}
	return got, err
}

func TestOrder(t *testing.T) {
	got, err := run(t, 10000, -1)
	require.NoError(t, err)
	require.Len(t, got, 10000)
	for i, v := range got {
		require.Equal(t, i*i, v)
	}
}

func TestStopOnError(t *testing.T) {
	got, err := run(t, 1_000_000, 500)
	require.EqualError(t, err, "fail")
	assert.Len(t, got, 500, "nothing after the failing batch is consumed")
}
