package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// memS3 is an in-memory S3 for the executor's tests: buckets must exist,
// and failPut (if set) fails matching writes.
type memS3 struct {
	mu      sync.Mutex
	buckets map[string]map[string][]byte
	gets    int
	failPut func(bucket, key string) error
}

func newMemS3(buckets ...string) *memS3 {
	m := &memS3{buckets: map[string]map[string][]byte{}}
	for _, b := range buckets {
		m.buckets[b] = map[string][]byte{}
	}
	return m
}

func (m *memS3) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	b, ok := m.buckets[bucket]
	if !ok {
		return nil, fmt.Errorf("get %s/%s: %w", bucket, key, ErrNoSuchBucket)
	}
	body, ok := b[key]
	if !ok {
		return nil, fmt.Errorf("get %s/%s: %w", bucket, key, ErrNoSuchKey)
	}
	return bytes.Clone(body), nil
}

func (m *memS3) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		if err := m.failPut(bucket, key); err != nil {
			return err
		}
	}
	b, ok := m.buckets[bucket]
	if !ok {
		return fmt.Errorf("put %s/%s: %w", bucket, key, ErrNoSuchBucket)
	}
	b[key] = bytes.Clone(body)
	return nil
}

func (m *memS3) put(bucket, key, body string) {
	if err := m.PutObject(context.Background(), bucket, key, []byte(body)); err != nil {
		panic(err)
	}
}

func (m *memS3) object(t *testing.T, bucket, key string) []byte {
	t.Helper()
	body, err := m.GetObject(context.Background(), bucket, key)
	if err != nil {
		t.Fatalf("object %s/%s: %v", bucket, key, err)
	}
	return body
}

func (m *memS3) keys(bucket string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.buckets[bucket] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestDirS3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("put then get", func(t *testing.T) {
		d := DirS3{Root: t.TempDir()}
		if err := d.PutObject(ctx, "staging", "runs/r1/partitions.json", []byte(`[1,2]`)); err != nil {
			t.Fatal(err)
		}
		got, err := d.GetObject(ctx, "staging", "runs/r1/partitions.json")
		if err != nil || string(got) != `[1,2]` {
			t.Fatalf("get = %q, %v", got, err)
		}
		file := filepath.Join(d.Root, "staging", "runs", "r1", "partitions.json")
		if b, err := os.ReadFile(file); err != nil || string(b) != `[1,2]` {
			t.Fatalf("file %s = %q, %v", file, b, err)
		}
		// Replacing leaves no temporary file behind.
		if err := d.PutObject(ctx, "staging", "runs/r1/partitions.json", []byte(`[3]`)); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Dir(file))
		if err != nil || len(entries) != 1 || entries[0].Name() != "partitions.json" {
			t.Fatalf("folder holds %v (%v)", entries, err)
		}
		obj, err := d.GetObjectInfo(ctx, "staging", "runs/r1/partitions.json")
		if err != nil || string(obj.Body) != `[3]` || obj.LastModified.IsZero() {
			t.Fatalf("info %+v, %v", obj, err)
		}
	})
	t.Run("missing bucket and key", func(t *testing.T) {
		d := DirS3{Root: t.TempDir()}
		if _, err := d.GetObject(ctx, "nope", "k"); !errors.Is(err, ErrNoSuchBucket) {
			t.Fatalf("missing bucket: %v", err)
		}
		if err := d.PutObject(ctx, "b", "x", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := d.GetObject(ctx, "b", "k"); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("missing key: %v", err)
		}
		// A folder is not an object.
		if err := d.PutObject(ctx, "b", "dir/file", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := d.GetObject(ctx, "b", "dir"); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("folder read as an object: %v", err)
		}
	})
	t.Run("keys that are no path", func(t *testing.T) {
		d := DirS3{Root: t.TempDir()}
		for _, key := range []string{"", "/abs", "a//b", "a/../../etc/passwd", "./a", "a/", `a\b`} {
			if err := d.PutObject(ctx, "b", key, []byte("x")); err == nil {
				t.Errorf("key %q accepted", key)
			}
		}
		for _, bucket := range []string{"", "..", "a/b"} {
			if err := d.PutObject(ctx, bucket, "k", []byte("x")); err == nil {
				t.Errorf("bucket %q accepted", bucket)
			}
		}
		if entries, _ := os.ReadDir(d.Root); len(entries) != 0 {
			t.Fatalf("refused writes left %v", entries)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		d := DirS3{Root: t.TempDir()}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := d.PutObject(cctx, "b", "k", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("put: %v", err)
		}
		if _, err := d.GetObject(cctx, "b", "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("get: %v", err)
		}
	})
}

func TestMemS3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var m MemS3
	if _, err := m.GetObject(ctx, "b", "k"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("empty store: %v", err)
	}
	body := []byte("v1")
	if err := m.PutObject(ctx, "b", "runs/k", body); err != nil {
		t.Fatal(err)
	}
	body[0] = 'x' // the store keeps its own copy
	if err := m.PutObject(ctx, "b", "other", nil); err != nil {
		t.Fatal(err)
	}
	got, err := m.GetObject(ctx, "b", "runs/k")
	if err != nil || string(got) != "v1" {
		t.Fatalf("get = %q, %v", got, err)
	}
	if _, err := m.GetObject(ctx, "b", "nope"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("missing key: %v", err)
	}
	if keys := m.Keys("b", "runs/"); len(keys) != 1 || keys[0] != "runs/k" {
		t.Fatalf("keys %v", keys)
	}
}
