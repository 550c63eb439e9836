package archive

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// verifyFixture writes manifests and objects for account 111111111111,
// eu-west-1, windows of 30 minutes from 10:00.
type verifyFixture struct {
	t     *testing.T
	store *LocalStore
}

func (f verifyFixture) window(start time.Time, from, to time.Time, bodies ...string) *Manifest {
	f.t.Helper()
	ctx := context.Background()
	m := &Manifest{Version: ManifestVersion, Account: "111111111111", Region: "eu-west-1", WindowStart: start, From: from, To: to, Objects: []ManifestObject{}}
	for i, b := range bodies {
		ss := from.Add(time.Duration(i) * SliceLength)
		key := TrailFileKey("", m.Account, m.Region, ss, ss, ss.Add(SliceLength))
		if err := f.store.Put(ctx, key, []byte(b)); err != nil {
			f.t.Fatal(err)
		}
		m.Objects = append(m.Objects, ManifestObject{Key: key, Events: len(b), Bytes: len(b), SHA256: SHA256Hex([]byte(b))})
		m.Events += len(b)
	}
	if err := WriteManifest(ctx, f.store, m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func TestVerifyPartition(t *testing.T) {
	store, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := verifyFixture{t, store}
	ctx := context.Background()
	w := func(h, m int) time.Time { return time.Date(2025, 11, 22, h, m, 0, 0, time.UTC) }
	start, end := w(10, 0), w(12, 0)
	var windows []VerifyWindow
	for ws := start; ws.Before(end); ws = ws.Add(30 * time.Minute) {
		windows = append(windows, VerifyWindow{Start: ws, From: ws, To: ws.Add(30 * time.Minute)})
	}

	good := f.window(w(10, 0), w(10, 0), w(10, 30), "aaa", "bb")
	// A window archived by a narrower earlier run: not covered, so missing.
	f.window(w(10, 30), w(10, 45), w(11, 0), "c")
	// A window whose object changed size, and whose event count disagrees.
	bad := f.window(w(11, 0), w(11, 0), w(11, 30), "dddd")
	if err := store.Put(ctx, bad.Objects[0].Key, []byte("ddddd")); err != nil {
		t.Fatal(err)
	}
	bad.Events = 9
	b, _ := json.Marshal(bad)
	if err := store.Put(ctx, bad.Key(), b); err != nil {
		t.Fatal(err)
	}
	// 11:30 has no manifest. Stray files: one in the range, one before it,
	// one at its end, one of another region, one temporary.
	inRange := TrailFileKey("", "111111111111", "eu-west-1", w(11, 50), w(11, 50), w(11, 55))
	for _, k := range []string{
		inRange,
		TrailFileKey("", "111111111111", "eu-west-1", w(9, 55), w(9, 55), w(10, 0)),
		TrailFileKey("", "111111111111", "eu-west-1", w(12, 0), w(12, 0), w(12, 5)),
		"AWSLogs/111111111111/CloudTrail/eu-west-1/2025/11/22/notes.txt",
	} {
		if err := store.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	r, err := VerifyPartition(ctx, store, "111111111111", "eu-west-1", VerifyOptions{Windows: windows, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	want := &PartitionReport{
		Account: "111111111111", Region: "eu-west-1", Windows: 4, Archived: 1, Missing: 2, Corrupt: 1,
		Events: int64(good.Events), Objects: 2,
		MissingWindows: []time.Time{w(10, 30), w(11, 30)},
		CorruptWindows: []CorruptWindow{{Window: w(11, 0), Manifest: bad.Key(), Problems: []ObjectProblem{
			{Key: bad.Objects[0].Key, Problem: "size mismatch: 5 bytes, the manifest records 4"},
			{Key: bad.Key(), Problem: "the manifest counts 9 events but its objects hold 4"},
		}}},
		Unlisted: []string{inRange},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report\n %+v\nwant\n %+v", *r, *want)
	}
	if r.Complete() {
		t.Error("incomplete partition reported complete")
	}

	// An empty partition: every window missing, nothing else.
	r, err = VerifyPartition(ctx, store, "222222222222", "eu-west-1", VerifyOptions{Windows: windows, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	if r.Missing != 4 || r.Archived != 0 || len(r.MissingWindows) != 4 || len(r.Unlisted) != 0 || r.CorruptWindows == nil {
		t.Errorf("empty partition: %+v", *r)
	}
}
