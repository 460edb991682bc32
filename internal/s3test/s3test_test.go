package s3test

import (
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"
)

// TestServer: buckets with and without Object Lock, and a restart on the same port that keeps the data.
func TestServer(t *testing.T) {
	s := Start(t)
	s.CreateBucket(t, "locked", true)
	s.CreateBucket(t, "plain", false)
	c := s.Client()
	ctx := t.Context()

	lock, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String("locked")})
	require.NoError(t, err)
	require.Equal(t, types.ObjectLockEnabledEnabled, lock.ObjectLockConfiguration.ObjectLockEnabled)
	_, err = c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String("plain")})
	require.Error(t, err)

	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("plain"), Key: aws.String("a/b"), Body: strings.NewReader("kept")})
	require.NoError(t, err)
	addr := s.Addr()
	require.NoError(t, s.Restart())
	require.Equal(t, addr, s.Addr())
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("plain"), Key: aws.String("a/b")})
	require.NoError(t, err)
	b, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	require.Equal(t, "kept", string(b))

	s.Stop()
	s.Stop() // a second Stop does nothing
	_, err = c.ListBuckets(ctx, &s3.ListBucketsInput{}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	require.Error(t, err)
}
