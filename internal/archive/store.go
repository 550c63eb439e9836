// Package archive writes and reads the trailfill archive: trail files in the native
// CloudTrail layout, GitLab audit events, and the per-window manifests that make runs
// resumable and verifiable. A Store hides whether the archive is a local folder or an
// S3 bucket and prefix; every write through it is atomic (whole or absent).
package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned by Store.Get and Store.Head for a key that does
// not exist, when the store can tell. An S3 caller without s3:ListBucket on
// the key gets 403 AccessDenied for a missing key instead: code that must
// know whether an object exists lists its prefix rather than relying on it.
var ErrNotFound = errors.New("not found")

// Metadata is user metadata of an object (S3 x-amz-meta-*), set when the
// object is created and never changed after. Keys are lowercase.
type Metadata map[string]string

// ObjectInfo is what Store.Head returns.
type ObjectInfo struct {
	Size     int64
	Metadata Metadata
}

// Store is an archive destination. Keys are relative to the destination's root
// (the local folder, or the S3 prefix) and use '/' as separator.
//
// Trail files under AWSLogs/ are only ever created (PutIfAbsent): the
// deployed roles may not overwrite or delete anything there. Put and Delete
// are for trailfill's own objects under trailfill/ (manifests, indexes) and
// for `reconcile`, which runs with an operator's credentials.
type Store interface {
	// Put writes body at key atomically, replacing what was there.
	Put(ctx context.Context, key string, body []byte) error
	// PutIfAbsent writes body (with meta, which may be nil) at key only if
	// nothing is there yet, atomically. It reports whether it wrote.
	PutIfAbsent(ctx context.Context, key string, body []byte, meta Metadata) (bool, error)
	// Get reads the object at key, or returns an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetVersion reads the object at key and its version: an opaque tag that
	// changes whenever the object does (S3's ETag), for PutIfMatch.
	GetVersion(ctx context.Context, key string) (body []byte, version string, err error)
	// PutIfMatch replaces the object at key with body only if it is still at
	// version, atomically (compare-and-swap); it reports false, writing
	// nothing, when the object changed or is gone. Update builds on it.
	PutIfMatch(ctx context.Context, key string, body []byte, version string) (bool, error)
	// Head returns the size and metadata of the object at key, or an error
	// wrapping ErrNotFound.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every complete object key under prefix, sorted (in a
	// local folder, temporary and hidden files, named with a leading '.', are
	// not objects).
	List(ctx context.Context, prefix string) ([]string, error)
	// String names the destination for people (a path or an s3:// URL).
	String() string
}

// Destination is a parsed --out value.
type Destination struct {
	Bucket string // set for s3://bucket/prefix
	Prefix string // S3 key prefix without leading or trailing '/'
	Dir    string // set for a local folder
}

// ParseDestination parses "s3://bucket[/prefix]" or a local folder path.
func ParseDestination(s string) (Destination, error) {
	if s == "" {
		return Destination{}, errors.New("empty destination: give --out DIR or --out s3://bucket/prefix")
	}
	if rest, ok := strings.CutPrefix(s, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if !validBucketName(bucket) {
			return Destination{}, fmt.Errorf("invalid S3 bucket name %q in %q: use s3://bucket/prefix", bucket, s)
		}
		prefix = strings.Trim(prefix, "/")
		if strings.Contains(prefix, "//") {
			return Destination{}, fmt.Errorf("invalid S3 prefix %q: empty path segment", prefix)
		}
		return Destination{Bucket: bucket, Prefix: prefix}, nil
	}
	if strings.Contains(s, "://") {
		return Destination{}, fmt.Errorf("unsupported destination %q: use a local folder or s3://bucket/prefix", s)
	}
	return Destination{Dir: s}, nil
}

// IsS3 reports whether the destination is an S3 bucket.
func (d Destination) IsS3() bool { return d.Bucket != "" }

func (d Destination) String() string {
	if d.IsS3() {
		if d.Prefix == "" {
			return "s3://" + d.Bucket
		}
		return "s3://" + d.Bucket + "/" + d.Prefix
	}
	return d.Dir
}

// S3Options are the write settings of an S3 archive.
type S3Options struct {
	// KMSKeyID, when set, makes every write SSE-KMS with this key (and an S3
	// Bucket Key), as buckets and SCPs that deny other uploads require.
	KMSKeyID string
}

// Open returns the Store for d. client is used for S3 destinations and may be nil
// for local ones.
func Open(d Destination, client S3API, o S3Options) (Store, error) {
	if d.IsS3() {
		if client == nil {
			return nil, errors.New("s3 destination needs an S3 client")
		}
		return &S3Store{Client: client, Bucket: d.Bucket, Prefix: d.Prefix, KMSKeyID: o.KMSKeyID}, nil
	}
	return NewLocalStore(d.Dir)
}

// validBucketName applies the S3 general-purpose bucket naming rules.
func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' || c == '.':
			if i == 0 || i == len(b)-1 {
				return false
			}
		default:
			return false
		}
	}
	return !strings.Contains(b, "..")
}

// checkKey rejects keys that could escape the destination root.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("invalid archive key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid archive key %q", key)
		}
	}
	return nil
}
