package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/axarchive/axarchive/archive"
)

// checksum is the algorithm of the checksum sent with every object and part, which the server checks
// before it stores them (and S3 keeps, so that a later GetObjectAttributes can report it).
const checksum = types.ChecksumAlgorithmCrc32c

// errCommitted and errAborted are returned by a file's Write after Commit or Abort.
var (
	errCommitted = errors.New("write after commit")
	errAborted   = errors.New("write after abort")
)

// Create starts writing an object. Up to one part (Options.PartSize) is held in memory and sent with one
// PutObject at Commit; beyond that the file becomes a multipart upload whose parts go up while the
// caller writes, Options.Concurrency at a time, each request retried on its own. Commit completes the
// upload; Abort (or AbortUploads after a crash) aborts it, so that nothing shows under the name until
// Commit has returned nil.
func (s *Store) Create(name string) (archive.NewFile, error) {
	if err := checkName(name); err != nil {
		return nil, &fs.PathError{Op: "create", Path: s.path(name), Err: fs.ErrInvalid}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	return &upload{
		s:      s,
		name:   name,
		key:    s.loc.Key(name),
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, s.concurrency),
		free:   make(chan []byte, s.concurrency+1),
	}, nil
}

// upload is a NewFile of a Store. Its methods are for one goroutine; the part uploads it starts run in
// their own.
type upload struct {
	s        *Store
	name     string
	key      string
	ctx      context.Context // cancelled by Abort and by the first failed part
	cancel   context.CancelFunc
	buf      []byte        // the part being filled
	free     chan []byte   // part buffers back from their upload
	nbuf     int           // part buffers allocated: at most concurrency+1
	sem      chan struct{} // a token per part upload in flight
	id       string        // the multipart upload's ID, once started
	nextPart int32
	wg       sync.WaitGroup

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error // first error: sticky

	committed, aborted bool
}

func (u *upload) fail(err error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
		u.cancel()
	}
	return u.err
}

func (u *upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *upload) Write(p []byte) (int, error) {
	switch {
	case u.committed:
		return 0, errCommitted
	case u.aborted:
		return 0, errAborted
	}
	if err := u.failed(); err != nil {
		return 0, err
	}
	if u.ctx.Err() != nil {
		return 0, u.fail(u.ctxErr())
	}
	n := 0
	for len(p) > 0 {
		if int64(len(u.buf)) == u.s.partSize {
			if err := u.sendPart(); err != nil {
				return n, err
			}
		}
		if u.buf == nil && u.id != "" {
			b, err := u.buffer()
			if err != nil {
				return n, err
			}
			u.buf = b
		} else if u.buf == nil && u.nextPart == 0 {
			select {
			case b := <-u.s.firstParts: // a buffer an earlier file's PutObject is done with
				u.buf = b[:0]
			default:
			}
		}
		// The first part grows by append (a small file never takes a whole part of memory); later
		// parts fill a buffer of the part's size.
		k := min(len(p), int(u.s.partSize)-len(u.buf))
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		n += k
	}
	return n, nil
}

// buffer returns an empty part buffer: one back from an upload, a new one while fewer than
// concurrency+1 exist, else the next one an upload gives back.
func (u *upload) buffer() ([]byte, error) {
	select {
	case b := <-u.free:
		return b[:0], nil
	default:
	}
	if u.nbuf < u.s.concurrency+1 {
		u.nbuf++
		return make([]byte, 0, u.s.partSize), nil
	}
	select {
	case b := <-u.free:
		return b[:0], nil
	case <-u.ctx.Done():
		return nil, u.fail(u.ctxErr())
	}
}

func (u *upload) ctxErr() error {
	if err := u.failed(); err != nil {
		return err
	}
	return fmt.Errorf("upload %s: %w", u.s.path(u.name), context.Cause(u.ctx))
}

// sendPart starts the upload of u.buf as the next part, starting the multipart upload first if needed,
// and leaves u.buf nil.
func (u *upload) sendPart() error {
	if u.id == "" {
		out, err := u.s.client.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(u.s.loc.Bucket), Key: aws.String(u.key), ChecksumAlgorithm: checksum,
		})
		if err != nil {
			return u.fail(fmt.Errorf("start upload of %s: %w", u.s.path(u.name), err))
		}
		u.id = aws.ToString(out.UploadId)
		u.nbuf = 1 // the first part's buffer, grown to the part's size
	}
	if u.nextPart == MaxParts {
		return u.fail(fmt.Errorf("upload %s: more than %d parts of %d bytes", u.s.path(u.name), MaxParts, u.s.partSize))
	}
	select {
	case u.sem <- struct{}{}:
	case <-u.ctx.Done():
		return u.fail(u.ctxErr())
	}
	u.nextPart++
	num, b := u.nextPart, u.buf
	u.buf = nil
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.sem }()
		out, err := u.s.client.UploadPart(u.ctx, &s3.UploadPartInput{
			Bucket: aws.String(u.s.loc.Bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
			PartNumber: aws.Int32(num), Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
			ChecksumAlgorithm: checksum,
		})
		u.free <- b
		if err != nil {
			u.fail(fmt.Errorf("upload part %d of %s: %w", num, u.s.path(u.name), err))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C})
		u.mu.Unlock()
	}()
	return nil
}

// Commit sends what is left and makes the object visible: a PutObject for a file of at most one part,
// else the last part and CompleteMultipartUpload. A Complete retried after its answer was lost, which a
// server may then no longer know (NoSuchUpload), counts as done when the object under the name has the
// parts' composite checksum. A failed Commit leaves the file to Abort.
func (u *upload) Commit() error {
	switch {
	case u.committed:
		return errCommitted
	case u.aborted:
		return errAborted
	}
	if err := u.failed(); err != nil {
		return err
	}
	if u.id == "" {
		body := u.buf
		_, err := u.s.client.PutObject(u.ctx, &s3.PutObjectInput{
			Bucket: aws.String(u.s.loc.Bucket), Key: aws.String(u.key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), ChecksumAlgorithm: checksum,
		})
		if err != nil {
			return u.fail(fmt.Errorf("upload %s: %w", u.s.path(u.name), err))
		}
		u.done()
		// The request has been answered: nothing reads body any more, so the next file may fill it.
		select {
		case u.s.firstParts <- body[:0]:
		default:
		}
		return nil
	}
	if len(u.buf) > 0 {
		if err := u.sendPart(); err != nil {
			return err
		}
	}
	u.wg.Wait()
	if err := u.failed(); err != nil {
		return err
	}
	parts := u.parts
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	_, err := u.s.client.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(u.s.loc.Bucket), Key: aws.String(u.key), UploadId: aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil && errorCode(err) == "NoSuchUpload" && u.completedEarlier(parts) {
		// A retry of a Complete whose answer was lost (a cut connection): the first one did it.
		err = nil
	}
	if err != nil {
		return u.fail(fmt.Errorf("complete upload of %s: %w", u.s.path(u.name), err))
	}
	u.done()
	return nil
}

// completedEarlier reports whether the object under the key is the one these parts make, by its
// composite CRC32C (the CRC32C of the parts' CRC32Cs, then "-" and their number): the check after a
// CompleteMultipartUpload that the server no longer knows, which it does when a retried Complete follows
// one that succeeded.
func (u *upload) completedEarlier(parts []types.CompletedPart) bool {
	want, ok := compositeCRC32C(parts)
	if !ok {
		return false
	}
	head, err := u.s.client.HeadObject(u.ctx, &s3.HeadObjectInput{
		Bucket: aws.String(u.s.loc.Bucket), Key: aws.String(u.key), ChecksumMode: types.ChecksumModeEnabled,
	})
	return err == nil && aws.ToString(head.ChecksumCRC32C) == want
}

// compositeCRC32C is S3's checksum of a multipart object made of parts.
func compositeCRC32C(parts []types.CompletedPart) (string, bool) {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	for _, p := range parts {
		sum, err := base64.StdEncoding.DecodeString(aws.ToString(p.ChecksumCRC32C))
		if err != nil || len(sum) != 4 {
			return "", false
		}
		h.Write(sum)
	}
	return fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(h.Sum(nil)), len(parts)), true
}

// done marks the file committed and lets its buffers go.
func (u *upload) done() {
	u.committed = true
	// A part buffer of a multipart upload (all are back: every part has been answered) becomes the
	// next file's first part (see Store.firstParts).
	select {
	case b := <-u.free:
		select {
		case u.s.firstParts <- b[:0]:
		default:
		}
	default:
	}
	u.buf, u.free, u.parts = nil, nil, nil
	u.cancel()
}

// abortTimeout bounds the AbortMultipartUpload of Abort, which runs even when the Store's context is
// cancelled.
const abortTimeout = 30 * time.Second

// Abort stops the part uploads in flight and aborts the multipart upload, so that the server drops its
// parts, even when the Store's context has been cancelled (an interrupted export). It does nothing after
// a successful Commit or a first Abort.
func (u *upload) Abort() error {
	if u.committed || u.aborted {
		return nil
	}
	u.aborted = true
	u.fail(errAborted)
	u.wg.Wait()
	u.buf, u.parts = nil, nil
	if u.id == "" {
		return nil
	}
	// An interrupted export (its context cancelled) still aborts what it was uploading.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.s.ctx), abortTimeout)
	defer cancel()
	if err := u.s.abortUpload(ctx, u.key, u.id); err != nil {
		return fmt.Errorf("abort upload of %s: %w", u.s.path(u.name), err)
	}
	return nil
}

// abortUpload aborts a multipart upload until the server no longer lists it. A part whose request the
// client gave up on may still be being stored by the server, and S3 says that such a part may come back
// after the abort ("it might be necessary to abort a given multipart upload multiple times"): versitygw
// does exactly that.
func (s *Store) abortUpload(ctx context.Context, key, id string) error {
	for attempt := 0; ; attempt++ {
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.loc.Bucket), Key: aws.String(key), UploadId: aws.String(id),
		})
		if err != nil && errorCode(err) != "NoSuchUpload" {
			return err
		}
		_, err = s.client.ListParts(ctx, &s3.ListPartsInput{
			Bucket: aws.String(s.loc.Bucket), Key: aws.String(key), UploadId: aws.String(id), MaxParts: aws.Int32(1),
		})
		switch {
		case err != nil && errorCode(err) == "NoSuchUpload":
			return nil
		case err != nil:
			return err
		case attempt == 20:
			return fmt.Errorf("upload %s still listed after %d aborts", id, attempt+1)
		}
		t := time.NewTimer(time.Duration(attempt+1) * 50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}
