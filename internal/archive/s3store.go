package archive

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/trailfill/trailfill/internal/clock"
)

// S3Store keeps the archive in an S3 bucket under a prefix. A single PutObject is
// atomic: an object is either absent or whole. Content-MD5 makes S3 reject a body
// damaged in transit.
//
// Every write carries the canned ACL bucket-owner-full-control: trail buckets
// are often in a log-archive account and may still use ACL-based object
// ownership, where CloudTrail's own bucket statement and many organizations
// require it of every writer; buckets with ACLs disabled accept exactly this
// ACL ("Controlling ownership of objects and disabling ACLs", S3 User Guide).
// With KMSKeyID every write is SSE-KMS with that key and an S3 Bucket Key.
type S3Store struct {
	Client   S3API
	Bucket   string
	Prefix   string
	KMSKeyID string
}

func (s *S3Store) String() string {
	return Destination{Bucket: s.Bucket, Prefix: s.Prefix}.String()
}

func (s *S3Store) fullKey(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if s.Prefix == "" {
		return key, nil
	}
	return s.Prefix + "/" + key, nil
}

func (s *S3Store) putInput(key string, body []byte, meta Metadata) *s3.PutObjectInput {
	sum := md5.Sum(body)
	ct := "application/json"
	if strings.HasSuffix(key, ".gz") {
		ct = "application/x-gzip"
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.Bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType:   aws.String(ct),
		ACL:           types.ObjectCannedACLBucketOwnerFullControl,
		Metadata:      meta,
	}
	if s.KMSKeyID != "" {
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(s.KMSKeyID)
		in.BucketKeyEnabled = aws.Bool(true)
	}
	return in
}

// Put implements Store.
func (s *S3Store) Put(ctx context.Context, key string, body []byte) error {
	full, err := s.fullKey(key)
	if err != nil {
		return err
	}
	if _, err := s.Client.PutObject(ctx, s.putInput(full, body, nil)); err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", s.Bucket, full, err)
	}
	return nil
}

// PutIfAbsent implements Store with a conditional write (If-None-Match: *).
func (s *S3Store) PutIfAbsent(ctx context.Context, key string, body []byte, meta Metadata) (bool, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return false, err
	}
	// 409 ConditionalRequestConflict means another conditional write of the same
	// key is in flight: ask again (AWS's advice) until one of them has won.
	for attempt := 1; ; attempt++ {
		in := s.putInput(full, body, meta)
		in.IfNoneMatch = aws.String("*")
		_, err := s.Client.PutObject(ctx, in)
		switch {
		case err == nil:
			return true, nil
		case isStatus(err, http.StatusPreconditionFailed):
			return false, nil
		case isStatus(err, http.StatusConflict) && attempt < 10:
			if err := conflictBackoff.Wait(ctx, nil, attempt); err != nil {
				return false, fmt.Errorf("write s3://%s/%s: %w", s.Bucket, full, err)
			}
		default:
			return false, fmt.Errorf("write s3://%s/%s: %w", s.Bucket, full, err)
		}
	}
}

// conflictBackoff spaces the retries of a conditional write that met
// another one in flight (409): full jitter from 40 ms, doubling to 1 s.
var conflictBackoff = clock.Backoff{Base: 40 * time.Millisecond, Max: time.Second}

// Get implements Store.
func (s *S3Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, _, err := s.get(ctx, key)
	return b, err
}

// get reads the object at key and its ETag.
func (s *S3Store) get(ctx context.Context, key string) ([]byte, string, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return nil, "", err
	}
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(full)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || isStatus(err, http.StatusNotFound) {
			return nil, "", fmt.Errorf("read s3://%s/%s: %w", s.Bucket, full, ErrNotFound)
		}
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", s.Bucket, full, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", s.Bucket, full, err)
	}
	return b, aws.ToString(out.ETag), nil
}

// GetVersion implements Store; the version is the object's ETag.
func (s *S3Store) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	b, etag, err := s.get(ctx, key)
	if err == nil && etag == "" {
		return nil, "", fmt.Errorf("read %s/%s: the answer has no ETag, which a conditional update needs (is this S3?)", s, key)
	}
	return b, etag, err
}

// PutIfMatch implements Store with a conditional write (If-Match: the ETag).
// S3 answers 412 when the ETag no longer matches or the object is gone, and
// 409 ConditionalRequestConflict when another conditional write of the key
// is in flight: both mean "read again" to the caller. (With If-Match S3
// needs s3:GetObject besides s3:PutObject on the key; the deployed roles
// have both under trailfill/.)
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
func (s *S3Store) PutIfMatch(ctx context.Context, key string, body []byte, version string) (bool, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return false, err
	}
	in := s.putInput(full, body, nil)
	in.IfMatch = aws.String(version)
	_, err = s.Client.PutObject(ctx, in)
	switch {
	case err == nil:
		return true, nil
	case isStatus(err, http.StatusPreconditionFailed), isStatus(err, http.StatusConflict), isStatus(err, http.StatusNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("write s3://%s/%s: %w", s.Bucket, full, err)
	}
}

// Head implements Store.
func (s *S3Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	full, err := s.fullKey(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(full)})
	if err != nil {
		var nf *types.NotFound
		if errors.As(err, &nf) || isStatus(err, http.StatusNotFound) {
			return ObjectInfo{}, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, full, ErrNotFound)
		}
		return ObjectInfo{}, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, full, err)
	}
	meta := Metadata{}
	for k, v := range out.Metadata {
		meta[strings.ToLower(k)] = v
	}
	return ObjectInfo{Size: aws.ToInt64(out.ContentLength), Metadata: meta}, nil
}

// Delete implements Store.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	full, err := s.fullKey(key)
	if err != nil {
		return err
	}
	if _, err := s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(full)}); err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", s.Bucket, full, err)
	}
	return nil
}

// List implements Store.
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	full := prefix
	if s.Prefix != "" {
		full = s.Prefix + "/" + prefix
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(full)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", s.Bucket, full, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.Prefix != "" {
				k = strings.TrimPrefix(k, s.Prefix+"/")
			}
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func isStatus(err error, code int) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == code {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch code {
		case http.StatusPreconditionFailed:
			return ae.ErrorCode() == "PreconditionFailed"
		case http.StatusNotFound:
			return ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey"
		}
	}
	return false
}
