package s3store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// helperEnv makes the test binary a writer that streams into S3 until it is killed (TestMain).
const helperEnv = "S3STORE_TEST_KILLED_WRITER"

func TestMain(m *testing.M) {
	if url := os.Getenv(helperEnv); url != "" {
		os.Exit(killedWriter(url))
	}
	os.Exit(m.Run())
}

// killedWriter writes an endless file to url/data/events/endless with the AWS configuration of its
// environment, and never commits it.
func killedWriter(url string) int {
	s, err := New(context.Background(), url, &Options{PathStyle: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := s.Create("data/events/endless")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := randomBytes(5, 1<<20)
	for i := 0; i < 1024; i++ {
		if _, err := f.Write(buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "not killed")
	return 1
}

// TestKilledWriter: a writer killed with SIGKILL in the middle of a multipart upload leaves no object,
// only an unfinished upload, which AbortUploads (what a resumed export runs first) takes away.
func TestKilledWriter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=s3://arch/exports/one", "AWS_ENDPOINT_URL="+e.srv.Endpoint,
		"AWS_ACCESS_KEY_ID="+e.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+e.srv.SecretKey, "AWS_REGION=us-east-1",
		"AWS_PROFILE=", "AWS_ENDPOINT_URL_S3=")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	parts := func() int {
		ups, err := e.srv.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(e.bucket)})
		require.NoError(t, err)
		if len(ups.Uploads) == 0 {
			return 0
		}
		ps, err := e.srv.Client().ListParts(t.Context(), &s3.ListPartsInput{Bucket: aws.String(e.bucket), Key: ups.Uploads[0].Key, UploadId: ups.Uploads[0].UploadId})
		require.NoError(t, err)
		return len(ps.Parts)
	}
	deadline := time.Now().Add(time.Minute)
	for parts() < 2 {
		select {
		case err := <-exited:
			t.Fatalf("the writer ended by itself: %v", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "no two parts uploaded within a minute")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Kill())
	<-exited

	require.Empty(t, e.keys(t), "nothing shows before Commit")
	require.Len(t, e.pending(t), 1)
	n, err := e.store.AbortUploads(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, e.pending(t))
	require.Empty(t, e.keys(t))
}
