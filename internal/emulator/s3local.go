package emulator

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"

	"github.com/trailfill/trailfill/statemachine/local"
)

// LocalS3 is the emulator's S3 seen from inside the process: the same
// buckets and objects the S3 API serves, without HTTP. It implements
// local.S3 and local.S3ObjectGetter, so the emulated Step Functions (and a
// local executor in a test) read ItemReader objects from, and write
// ResultWriter results to, the emulator's own S3. Writes go through the
// FailS3Puts rules like writes over HTTP. Get it with [Server.LocalS3].
type LocalS3 struct{ s *Server }

// LocalS3 returns the in-process view of the emulator's S3.
func (s *Server) LocalS3() LocalS3 { return LocalS3{s: s} }

// GetObject returns an object's content; a missing bucket or key wraps
// local.ErrNoSuchBucket or local.ErrNoSuchKey.
func (l LocalS3) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	obj, err := l.GetObjectInfo(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return obj.Body, nil
}

// GetObjectInfo returns an object with its Content-Type, ETag and
// Last-Modified time.
func (l LocalS3) GetObjectInfo(ctx context.Context, bucket, key string) (*local.S3Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj, err := l.s.s3.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, s3LocalError("get", bucket, key, err)
	}
	defer obj.Contents.Close()
	body, err := io.ReadAll(obj.Contents)
	if err != nil {
		return nil, fmt.Errorf("emulator: get s3://%s/%s: %w", bucket, key, err)
	}
	out := &local.S3Object{Body: body, ContentType: obj.Metadata["Content-Type"], ETag: `"` + hex.EncodeToString(obj.Hash) + `"`}
	if lm, err := time.Parse(http.TimeFormat, obj.Metadata["Last-Modified"]); err == nil {
		out.LastModified = lm
	}
	return out, nil
}

// PutObject stores an object in an existing bucket, unless a FailS3Puts
// rule fails the write (an InternalError, nothing stored).
func (l LocalS3) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.s.s3.takeFailure(bucket, key) {
		return fmt.Errorf("emulator: put s3://%s/%s: InternalError: We encountered an internal error. Please try again", bucket, key)
	}
	meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat)}
	if _, err := l.s.s3.backend.PutObject(bucket, key, meta, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		return s3LocalError("put", bucket, key, err)
	}
	return nil
}

func s3LocalError(op, bucket, key string, err error) error {
	switch {
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket):
		return fmt.Errorf("emulator: %s s3://%s/%s: %w", op, bucket, key, local.ErrNoSuchBucket)
	case gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey):
		return fmt.Errorf("emulator: %s s3://%s/%s: %w", op, bucket, key, local.ErrNoSuchKey)
	}
	return fmt.Errorf("emulator: %s s3://%s/%s: %w", op, bucket, key, err)
}
