package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ErrChanged is the error (wrapped with the object) of a download whose object was replaced while it
// was being read, found when a cut-off download is resumed.
var ErrChanged = errors.New("object changed while it was read")

// openReader starts a GetObject of name.
func (s *Store) openReader(ctx context.Context, name string) (io.ReadCloser, error) {
	key := s.loc.Key(name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.pathError("open", name, err)
	}
	return &objectReader{
		s: s, ctx: ctx, name: name, key: key,
		etag: aws.ToString(out.ETag), size: aws.ToInt64(out.ContentLength), body: out.Body,
	}, nil
}

// objectReader reads an object, resuming a download cut off mid-stream with a ranged GetObject of the
// rest of the same version (If-Match on the ETag).
type objectReader struct {
	s        *Store
	ctx      context.Context
	name     string
	key      string
	etag     string
	size     int64 // from the first response
	off      int64 // bytes delivered
	body     io.ReadCloser
	failures int // consecutive failed attempts
	err      error
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		if r.body == nil {
			if err := r.reopen(); err != nil {
				r.err = err
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && r.off == r.size:
			r.err = io.EOF
			return n, io.EOF
		case err == io.EOF && r.off > r.size:
			r.err = fmt.Errorf("read %s: %w: more bytes than its length %d", r.s.path(r.name), ErrChanged, r.size)
			return n, r.err
		}
		// Cut off (a reset, or EOF before the length): read the rest with a new request.
		r.body.Close()
		if r.off == r.size { // all there; only the end of the stream was lost
			r.body, r.err = nil, io.EOF
			return n, io.EOF
		}
		r.body = nil
		if r.ctx.Err() != nil {
			r.err = fmt.Errorf("read %s: %w", r.s.path(r.name), context.Cause(r.ctx))
			return n, r.err
		}
		r.failures++
		if r.failures >= r.s.attempts {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = fmt.Errorf("read %s at byte %d: %w", r.s.path(r.name), r.off, err)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// reopen requests the rest of the object, after a pause that grows with the failures in a row.
func (r *objectReader) reopen() error {
	if r.failures > 1 {
		t := time.NewTimer(min(time.Duration(r.failures-1)*100*time.Millisecond, 2*time.Second))
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return fmt.Errorf("read %s: %w", r.s.path(r.name), context.Cause(r.ctx))
		}
	}
	out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket: aws.String(r.s.loc.Bucket), Key: aws.String(r.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-", r.off)), IfMatch: aws.String(r.etag),
	})
	if err != nil {
		if errorCode(err) == "PreconditionFailed" || httpStatus(err) == 412 {
			return fmt.Errorf("read %s at byte %d: %w", r.s.path(r.name), r.off, ErrChanged)
		}
		return fmt.Errorf("read %s at byte %d: %w", r.s.path(r.name), r.off, err)
	}
	r.body = out.Body
	return nil
}

// Close ends the download.
func (r *objectReader) Close() error {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	return nil
}
