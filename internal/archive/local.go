package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LocalStore keeps the archive in a folder. Writes go to a temporary file whose name
// starts with '.' (Athena and Hive skip such names) in the target folder, are synced,
// then renamed into place, so a reader never sees a partial file under its final name.
type LocalStore struct {
	Root string
}

// NewLocalStore returns a store rooted at dir (created on first write).
func NewLocalStore(dir string) (*LocalStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve output folder %q: %w", dir, err)
	}
	return &LocalStore{Root: abs}, nil
}

func (s *LocalStore) String() string { return s.Root }

func (s *LocalStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.Root, filepath.FromSlash(key)), nil
}

// writeTemp writes body to a new dot-named temporary file beside path.
func writeTemp(path string, body []byte) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create folder %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	_, werr := f.Write(body)
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("write %s: %w", tmp, werr)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("set mode of %s: %w", tmp, err)
	}
	return tmp, nil
}

// lockName is the hidden, empty file in a folder that serialises the
// compare-and-swap writes (PutIfMatch) of its objects across processes. It
// stays (removing a file others may have open for flock is not safe); only
// folders of objects amended by Update have one.
const lockName = ".trailfill.lock"

// Put implements Store. It does not take the folder's lock: objects that
// several writers amend go through Update (PutIfMatch) only.
func (s *LocalStore) Put(_ context.Context, key string, body []byte) error {
	path, err := s.path(key)
	if err != nil {
		return err
	}
	return replace(path, body)
}

// replace writes body to path atomically (a temporary file renamed).
func replace(path string, body []byte) error {
	tmp, err := writeTemp(path, body)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("move %s into place: %w", path, err)
	}
	return nil
}

// GetVersion implements Store; the version is the SHA-256 of the bytes (hex).
func (s *LocalStore) GetVersion(ctx context.Context, key string) ([]byte, string, error) {
	b, err := s.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	return b, SHA256Hex(b), nil
}

// PutIfMatch implements Store: under the folder's lock, the object is
// compared with version and replaced by a rename.
func (s *LocalStore) PutIfMatch(_ context.Context, key string, body []byte, version string) (bool, error) {
	path, err := s.path(key)
	if err != nil {
		return false, err
	}
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return false, err
	}
	defer unlock()
	cur, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if SHA256Hex(cur) != version {
		return false, nil
	}
	if err := replace(path, body); err != nil {
		return false, err
	}
	return true, nil
}

// PutIfAbsent implements Store. The final name is created with a hard link, which
// fails if the name exists, so concurrent writers of the same key store it once.
// Metadata goes to a hidden sidecar file beside the object (.<name>.meta),
// renamed into place by the writer that created the object. A crash between
// the two leaves an object without metadata: to trailfill such an object is
// not its own, which is the safe side (reconcile never touches it).
func (s *LocalStore) PutIfAbsent(_ context.Context, key string, body []byte, meta Metadata) (bool, error) {
	path, err := s.path(key)
	if err != nil {
		return false, err
	}
	tmp, err := writeTemp(path, body)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	var metaTmp string
	if len(meta) > 0 {
		b, err := json.Marshal(meta)
		if err != nil {
			return false, fmt.Errorf("encode metadata of %s: %w", path, err)
		}
		if metaTmp, err = writeTemp(sidecar(path), b); err != nil {
			return false, err
		}
		defer os.Remove(metaTmp)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("link %s into place: %w", path, err)
	}
	if metaTmp == "" {
		// A sidecar left by a crash in Delete must not describe this object.
		if err := os.Remove(sidecar(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true, fmt.Errorf("remove stale metadata of %s: %w", path, err)
		}
		return true, nil
	}
	if err := os.Rename(metaTmp, sidecar(path)); err != nil {
		return true, fmt.Errorf("move metadata of %s into place: %w", path, err)
	}
	return true, nil
}

// sidecar is the metadata file of the object at path.
func sidecar(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".meta")
}

// Head implements Store.
func (s *LocalStore) Head(_ context.Context, key string) (ObjectInfo, error) {
	path, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, fmt.Errorf("read %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("read %s: %w", path, err)
	}
	info := ObjectInfo{Size: fi.Size(), Metadata: Metadata{}}
	b, err := os.ReadFile(sidecar(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return ObjectInfo{}, fmt.Errorf("read metadata of %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &info.Metadata); err != nil {
			return ObjectInfo{}, fmt.Errorf("decode metadata of %s: %w", path, err)
		}
	}
	return info, nil
}

// Get implements Store.
func (s *LocalStore) Get(_ context.Context, key string) ([]byte, error) {
	path, err := s.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// Delete implements Store.
func (s *LocalStore) Delete(_ context.Context, key string) error {
	path, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", path, err)
	}
	if err := os.Remove(sidecar(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete metadata of %s: %w", path, err)
	}
	return nil
}

// List implements Store. Temporary files (names starting with '.') are not listed.
func (s *LocalStore) List(_ context.Context, prefix string) ([]string, error) {
	// Walk from the deepest folder the prefix names, then filter by the full prefix.
	base := s.Root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = filepath.Join(s.Root, filepath.FromSlash(prefix[:i]))
	}
	var keys []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != base {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.Root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", base, err)
	}
	sort.Strings(keys)
	return keys, nil
}
