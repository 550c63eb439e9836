package gitlab

import (
	"bytes"
	"context"
	"errors"
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

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// failingStore fails every write.
type failingStore struct{ archive.Store }

func (failingStore) PutIfAbsent(context.Context, string, []byte, archive.Metadata) (bool, error) {
	return false, errors.New("disk on fire")
}

func (failingStore) Put(context.Context, string, []byte) error { return errors.New("disk on fire") }
