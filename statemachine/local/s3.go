package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// S3 is the Amazon S3 the executor reads and writes for a Distributed Map's
// ItemReader (GetObject) and ResultWriter (PutObject), and for the Task
// resource arn:aws:states:::aws-sdk:s3:getObject. On AWS these calls use the
// state machine's role; here they use whatever the implementation is bound
// to: [DirS3] (a local folder, for `trailfill run`), [MemS3] (memory, for
// `trailfill plan`), the Step Functions emulator's own S3, or an adapter
// over an S3 client.
//
// GetObject returns the whole object. Errors that wrap [ErrNoSuchKey] or
// [ErrNoSuchBucket] are reported as S3 does (S3.NoSuchKeyException,
// S3.NoSuchBucketException in an aws-sdk Task). PutObject creates or
// replaces the object. Both are called concurrently by Distributed Map
// children and must return when ctx ends.
type S3 interface {
	GetObject(ctx context.Context, bucket, key string) ([]byte, error)
	PutObject(ctx context.Context, bucket, key string, body []byte) error
}

// S3ObjectGetter is an optional extension of [S3]: when Options.S3 also
// implements it, aws-sdk:s3:getObject reports the object's own metadata.
// Otherwise the ETag is derived from the body (the MD5 ETag of a
// single-part upload), the content type is S3's default and LastModified is
// omitted.
type S3ObjectGetter interface {
	GetObjectInfo(ctx context.Context, bucket, key string) (*S3Object, error)
}

// S3Object is an object with the metadata aws-sdk:s3:getObject returns.
type S3Object struct {
	Body []byte
	// ContentType is the object's Content-Type; "" reports
	// binary/octet-stream, what S3 stores when an upload names none.
	ContentType string
	// ETag is the entity tag with its quotes; "" derives the MD5 ETag.
	ETag string
	// LastModified is the object's modification time; zero omits it.
	LastModified time.Time
}

// Errors an S3 implementation wraps so that the executor names them as S3
// does.
var (
	ErrNoSuchKey    = errors.New("the specified key does not exist")
	ErrNoSuchBucket = errors.New("the specified bucket does not exist")
)

// MemS3 is an [S3] in memory, for simulations such as `trailfill plan`:
// a bucket exists once something was written to it. The zero value is
// ready to use; it is safe for concurrent use.
type MemS3 struct {
	mu      sync.Mutex
	buckets map[string]map[string][]byte
}

// GetObject returns a copy of bucket/key.
func (m *MemS3) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.buckets[bucket]
	if !ok {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, ErrNoSuchBucket)
	}
	body, ok := b[key]
	if !ok {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, ErrNoSuchKey)
	}
	return bytes.Clone(body), nil
}

// PutObject stores a copy of body as bucket/key.
func (m *MemS3) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buckets == nil {
		m.buckets = map[string]map[string][]byte{}
	}
	if m.buckets[bucket] == nil {
		m.buckets[bucket] = map[string][]byte{}
	}
	m.buckets[bucket][key] = bytes.Clone(body)
	return nil
}

// Keys returns the sorted keys of a bucket that start with prefix.
func (m *MemS3) Keys(bucket, prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.buckets[bucket] {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// DirS3 is an [S3] over a local folder: bucket B is the subfolder B of Root
// and key K the file B/K (K's "/" separate folders). Writes are atomic: the
// body goes to a temporary file whose name starts with "." (which Athena,
// Hive and S3 listings of trailfill skip), then it is renamed over the
// target. A bucket's folder is created by the first write into it. Keys
// that cannot be a path below the bucket's folder (empty, absolute, with an
// empty, "." or ".." segment, or with a backslash or NUL) are refused.
type DirS3 struct {
	Root string
}

// path returns the file of bucket/key and the bucket's folder.
func (d DirS3) path(bucket, key string) (file, dir string, err error) {
	if bucket == "" || strings.ContainsAny(bucket, `/\`+"\x00") || bucket == "." || bucket == ".." {
		return "", "", fmt.Errorf("local S3 folder %s: invalid bucket name %q", d.Root, bucket)
	}
	if key == "" || strings.ContainsAny(key, `\`+"\x00") {
		return "", "", fmt.Errorf("local S3 folder %s: invalid key %q: use a non-empty key with / separators", d.Root, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("local S3 folder %s: key %q cannot be stored as a file: no empty, \".\" or \"..\" segments", d.Root, key)
		}
	}
	dir = filepath.Join(d.Root, bucket)
	return filepath.Join(dir, filepath.FromSlash(key)), dir, nil
}

// GetObject reads bucket/key.
func (d DirS3) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	obj, err := d.GetObjectInfo(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	return obj.Body, nil
}

// GetObjectInfo reads bucket/key with its modification time.
func (d DirS3) GetObjectInfo(ctx context.Context, bucket, key string) (*S3Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file, dir, err := d.path(bucket, key)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(file)
	if err == nil && st.IsDir() {
		err = fs.ErrNotExist
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(dir); derr != nil {
				return nil, fmt.Errorf("read s3://%s/%s from %s: %w", bucket, key, dir, ErrNoSuchBucket)
			}
			return nil, fmt.Errorf("read s3://%s/%s from %s: %w", bucket, key, file, ErrNoSuchKey)
		}
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	return &S3Object{Body: body, LastModified: st.ModTime().UTC()}, nil
}

// PutObject writes bucket/key atomically (temporary dot-file, then rename).
func (d DirS3) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file, _, err := d.path(bucket, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("write s3://%s/%s: create its folder: %w", bucket, key, err)
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails (Go 1.24+)
	tmp := filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".tmp-"+hex.EncodeToString(suffix[:]))
	if err := writeSynced(tmp, body); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write s3://%s/%s: %w", bucket, key, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

func writeSynced(name string, body []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
