package engine

import (
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

// spool holds one slice's records from the moment they are read until the slice
// is written: the record bytes in a temporary file (a dense window does not have
// to fit in memory; a Lambda's /tmp holds it), only a small index in memory.
// Event IDs de-duplicate re-read events.
type spool struct {
	dir      string
	f        *os.File
	unlinked bool // the file's name is already gone: nothing to remove at close
	size     int64
	index    []spooled
	ids      map[string]struct{}
}

type spooled struct {
	t   int64 // Unix seconds
	ns  int32
	n   int32
	off int64
	id  string
}

func newSpool(dir string) *spool { return &spool{dir: dir, ids: make(map[string]struct{})} }

// has reports whether the event is already spooled.
func (s *spool) has(id string) bool {
	_, ok := s.ids[id]
	return ok
}

// add appends one record.
func (s *spool) add(t time.Time, id string, rec string) error {
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, ".trailfill-spool-*")
		if err != nil {
			return fmt.Errorf("create a spool file in %s (set TMPDIR to a writable folder): %w", s.dir, err)
		}
		s.f = f
		// Unlink the name at once where the system allows it (Linux, macOS:
		// the open descriptor keeps the data): a process killed before close
		// (a Lambda timeout, kill -9) then leaves nothing in /tmp, which a
		// Lambda sandbox reuses across invocations. Elsewhere close removes it.
		s.unlinked = os.Remove(f.Name()) == nil
	}
	n, err := io.WriteString(s.f, rec)
	if err != nil {
		return fmt.Errorf("write spool file %s: %w", s.f.Name(), err)
	}
	s.index = append(s.index, spooled{t: t.Unix(), ns: int32(t.Nanosecond()), n: int32(n), off: s.size, id: id})
	s.size += int64(n)
	s.ids[id] = struct{}{}
	return nil
}

// spooledRecord is one record read back from a spool.
type spooledRecord struct {
	id   string
	body []byte
}

// records returns the spooled records whose time is in [from, to), ordered by
// time and event ID so that a re-run writes identical bytes.
func (s *spool) records(from, to time.Time) ([]spooledRecord, error) {
	if s.f == nil {
		return nil, nil
	}
	var sel []spooled
	for _, e := range s.index {
		t := time.Unix(e.t, int64(e.ns))
		if !t.Before(from) && t.Before(to) {
			sel = append(sel, e)
		}
	}
	sort.Slice(sel, func(a, b int) bool {
		if sel[a].t != sel[b].t {
			return sel[a].t < sel[b].t
		}
		if sel[a].ns != sel[b].ns {
			return sel[a].ns < sel[b].ns
		}
		return sel[a].id < sel[b].id
	})
	out := make([]spooledRecord, len(sel))
	for i, e := range sel {
		b := make([]byte, e.n)
		if _, err := s.f.ReadAt(b, e.off); err != nil {
			return nil, fmt.Errorf("read spool file %s: %w", s.f.Name(), err)
		}
		out[i] = spooledRecord{id: e.id, body: b}
	}
	return out, nil
}

// close releases the spool file (and removes it if its name is still there).
func (s *spool) close() {
	if s.f != nil {
		name := s.f.Name()
		s.f.Close()
		if !s.unlinked {
			os.Remove(name)
		}
		s.f = nil
	}
	s.index, s.ids = nil, nil
}
