package engine

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestSpoolLeavesNoFileBehind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSpool(dir)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"b", "a", "c"} {
		if err := s.add(at.Add(time.Duration(i%2)*time.Second), id, `{"eventID":"`+id+`"}`); err != nil {
			t.Fatal(err)
		}
	}
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
		// While the spool is open (a process killed now leaves nothing).
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("an open spool left %d file(s) in its folder, want none", len(left))
		}
	}
	recs, err := s.records(at, at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, r := range recs {
		got += r.id
	}
	if got != "bca" {
		t.Errorf("records in order %q, want %q (time, then event ID)", got, "bca")
	}
	s.close()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a closed spool left %d file(s) in its folder", len(left))
	}
}
