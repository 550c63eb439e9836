package gitlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/testkit"
)

// sharedSample reads a file of the shared GitLab samples,
// ../shared/testdata/gitlab beside the repository (the project's rule: tests
// read the shared data in place, they never copy it). A missing folder or file
// fails the test: a skip would hide that the samples were not checked.
func sharedSample(t *testing.T, name string) []byte {
	t.Helper()
	p := filepath.Join(testkit.SharedDir(t), "testdata", "gitlab", name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read the shared GitLab sample %s (expected in ../shared/testdata/gitlab beside the repository): %v", p, err)
	}
	return b
}

// sampleLines returns the streaming examples from GitLab's docs, one JSON object
// per line, exactly as in the file.
func sampleLines(t *testing.T) []string {
	t.Helper()
	b := sharedSample(t, "streaming_examples_from_gitlab_docs.ndjson")
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 5 {
		t.Fatalf("only %d sample payloads", len(lines))
	}
	return lines
}

// withID returns a sample whose leading `{"id": 1,` is replaced by id (the
// docs' samples all use id 1).
func withID(t *testing.T, sample, id string) string {
	t.Helper()
	const prefix = `{"id": 1,`
	if !strings.HasPrefix(sample, prefix) {
		t.Fatalf("sample does not start with %s: %.40s", prefix, sample)
	}
	return `{"id": ` + id + `,` + strings.TrimPrefix(sample, prefix)
}

// archiveFiles returns every file under root (relative, '/'-separated) with its
// content, temporary files included, so tests see anything left behind.
func archiveFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkArchive fails unless root holds exactly want (key -> content).
func checkArchive(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := archiveFiles(t, root)
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("archive lacks %s", k)
		case g != v:
			t.Errorf("archive %s =\n%s\nwant\n%s", k, g, v)
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			t.Errorf("archive holds unexpected %s", k)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testkit.SyncBuffer

func testLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// failingStore fails every write.
type failingStore struct{ archive.Store }

func (failingStore) PutIfAbsent(context.Context, string, []byte, archive.Metadata) (bool, error) {
	return false, errors.New("disk on fire")
}

func (failingStore) Put(context.Context, string, []byte) error { return errors.New("disk on fire") }

// memStore is an in-memory archive.Store with the contract's semantics
// (create-only PutIfAbsent, sorted List), for tests that write thousands of
// objects: a local folder syncs each file to disk.
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
	meta map[string]archive.Metadata
}

func newMemStore() *memStore {
	return &memStore{objs: map[string][]byte{}, meta: map[string]archive.Metadata{}}
}

func (m *memStore) Put(_ context.Context, key string, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = append([]byte(nil), body...)
	delete(m.meta, key)
	return nil
}

func (m *memStore) PutIfAbsent(_ context.Context, key string, body []byte, meta archive.Metadata) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		return false, nil
	}
	m.objs[key] = append([]byte(nil), body...)
	if len(meta) > 0 {
		m.meta[key] = meta
	}
	return true, nil
}

func (m *memStore) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, archive.ErrNotFound)
	}
	return append([]byte(nil), b...), nil
}

func (m *memStore) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	b, err := m.Get(ctx, key)
	return b, string(b), err // the bytes themselves are a version
}

func (m *memStore) PutIfMatch(_ context.Context, key string, body []byte, version string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.objs[key]; !ok || string(b) != version {
		return false, nil
	}
	m.objs[key] = append([]byte(nil), body...)
	return true, nil
}

func (m *memStore) Head(_ context.Context, key string) (archive.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return archive.ObjectInfo{}, fmt.Errorf("head %s: %w", key, archive.ErrNotFound)
	}
	return archive.ObjectInfo{Size: int64(len(b)), Metadata: m.meta[key]}, nil
}

func (m *memStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	delete(m.meta, key)
	return nil
}

func (m *memStore) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (m *memStore) String() string { return "memory" }

// files returns a copy of every object.
func (m *memStore) files() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.objs))
	for k, v := range m.objs {
		out[k] = string(v)
	}
	return out
}

// diffFiles reports the differences between got and want (key -> content).
func diffFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	n := 0
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("archive lacks %s", k)
			n++
		case g != want[k]:
			t.Errorf("archive %s =\n%s\nwant\n%s", k, g, want[k])
			n++
		}
		if n > 10 {
			t.Fatal("too many differences")
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			t.Errorf("archive holds unexpected %s", k)
			n++
			if n > 10 {
				t.Fatal("too many differences")
			}
		}
	}
}
