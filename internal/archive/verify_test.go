package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

const (
	vAccount = "111111111111"
	vRegion  = "eu-west-1"
)

func vt(h, m, s int) time.Time { return time.Date(2025, 11, 22, h, m, s, 0, time.UTC) }

// trailBody is a gzip trail file of events with the given IDs and times.
func trailBody(t *testing.T, evs map[string]time.Time) []byte {
	t.Helper()
	var recs []json.RawMessage
	for id, ts := range evs {
		recs = append(recs, json.RawMessage(fmt.Sprintf(`{"eventID":%q,"eventTime":%q,"eventName":"X"}`, id, ts.Format(time.RFC3339))))
	}
	b, err := EncodeTrailFile(recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// piece writes piece index of the slice at ss and returns its manifest object.
func piece(t *testing.T, s Store, ss time.Time, index int, evs map[string]time.Time) ManifestObject {
	t.Helper()
	body := trailBody(t, evs)
	key := PieceKey("", vAccount, vRegion, ss, index)
	if wrote, err := s.PutIfAbsent(context.Background(), key, body, PieceMarker); err != nil || !wrote {
		t.Fatalf("write %s: %v %v", key, wrote, err)
	}
	return ManifestObject{Key: key, Events: len(evs), Bytes: len(body), SHA256: SHA256Hex(body)}
}

// native writes a native trail file delivered at stamp.
func native(t *testing.T, s Store, stamp time.Time, unique string, evs map[string]time.Time) string {
	t.Helper()
	key := TrailDayPrefix("", vAccount, vRegion, stamp) + fmt.Sprintf("%s_CloudTrail_%s_%s_%s.json.gz", vAccount, vRegion, stamp.Format(trailStamp), unique)
	if err := s.Put(context.Background(), key, trailBody(t, evs)); err != nil {
		t.Fatal(err)
	}
	return key
}

func manifest(t *testing.T, s Store, ws time.Time, covered, provisional []Interval, objs ...ManifestObject) *Manifest {
	t.Helper()
	m := &Manifest{Version: ManifestVersion, Account: vAccount, Region: vRegion, WindowStart: ws, Covered: Coalesce(covered), Objects: objs}
	if len(provisional) > 0 {
		m.Provisional = Coalesce(provisional)
	}
	for _, o := range objs {
		m.Recovered += o.Events
	}
	m.Events = m.Recovered
	if err := WriteManifest(context.Background(), s, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerifyPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	iv := func(a, b time.Time) []Interval { return []Interval{{From: a, To: b}} }
	windows := Windows(vt(10, 0, 0), vt(12, 30, 0), 30*time.Minute)

	// 10:00 archived; one of its events was delivered natively later (in
	// a file of the next day's folder), another is native's own duplicate.
	good := piece(t, store, vt(10, 0, 0), 0, map[string]time.Time{"a1": vt(10, 1, 0), "a2": vt(10, 2, 0), "dup": vt(10, 3, 0)})
	good2 := piece(t, store, vt(10, 5, 0), 0, map[string]time.Time{"a3": vt(10, 6, 0)})
	manifest(t, store, vt(10, 0, 0), iv(vt(10, 0, 0), vt(10, 30, 0)), nil, good, good2)
	native(t, store, time.Date(2025, 11, 23, 0, 3, 0, 0, time.UTC), "NATIVEFILE000001", map[string]time.Time{"dup": vt(10, 3, 0), "n1": vt(10, 20, 0)})
	native(t, store, vt(10, 25, 0), "NATIVEFILE000002", map[string]time.Time{"n1": vt(10, 20, 0), "n2": vt(10, 21, 0)})
	// 10:30 covered by a narrower earlier run only: missing.
	manifest(t, store, vt(10, 30, 0), iv(vt(10, 45, 0), vt(11, 0, 0)), nil)
	// 11:00 corrupt: its object changed.
	bad := piece(t, store, vt(11, 0, 0), 0, map[string]time.Time{"c1": vt(11, 1, 0)})
	badManifest := manifest(t, store, vt(11, 0, 0), iv(vt(11, 0, 0), vt(11, 30, 0)), nil, bad)
	if err := store.Delete(ctx, bad.Key); err != nil {
		t.Fatal(err)
	}
	piece(t, store, vt(11, 0, 0), 0, map[string]time.Time{"c1": vt(11, 1, 0), "c2": vt(11, 2, 0)})
	// 11:30 no manifest, a piece of a run that did not finish: unlisted.
	stray := piece(t, store, vt(11, 50, 0), 3, map[string]time.Time{"s1": vt(11, 51, 0)})
	// 12:00 read too near the present: provisional.
	manifest(t, store, vt(12, 0, 0), iv(vt(12, 0, 0), vt(12, 10, 0)), iv(vt(12, 10, 0), vt(12, 30, 0)))

	r, err := VerifyPartition(ctx, store, vAccount, vRegion, VerifyOptions{Windows: windows})
	if err != nil {
		t.Fatal(err)
	}
	changed, _ := store.Get(ctx, bad.Key)
	want := &PartitionReport{
		Account: vAccount, Region: vRegion, VerifyCounts: VerifyCounts{Windows: 5, Archived: 1, Provisional: 1, Missing: 2, Corrupt: 1,
			Events: 6, Native: 3, Recovered: 4, Duplicated: 1, NativeDuplicates: 1, Objects: 2},
		MissingWindows:     []time.Time{vt(10, 30, 0), vt(11, 30, 0)},
		ProvisionalWindows: []time.Time{vt(12, 0, 0)},
		CorruptWindows: []CorruptWindow{{Window: vt(11, 0, 0), Manifest: badManifest.Key(), Problems: []ObjectProblem{
			{Key: bad.Key, Problem: fmt.Sprintf("size mismatch: %d bytes, the manifest records %d", len(changed), bad.Bytes)},
		}}},
		DuplicatedWindows: []WindowOverlap{{Window: vt(10, 0, 0), Native: 3, Recovered: 4, Both: 1}},
		WindowEvents: []WindowOverlap{{Window: vt(10, 0, 0), Native: 3, Recovered: 4, Both: 1}, {Window: vt(10, 30, 0)},
			{Window: vt(11, 0, 0), Recovered: 2}, {Window: vt(12, 0, 0)}},
		Unlisted: []string{stray.Key},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report\n %+v\nwant\n %+v", *r, *want)
	}
	if r.Complete() {
		t.Error("incomplete partition reported complete")
	}

	t.Run("ignore native", func(t *testing.T) {
		r, err := VerifyPartition(ctx, store, vAccount, vRegion, VerifyOptions{Windows: windows[:1], IgnoreNative: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Archived != 1 || r.Native != 0 || r.Duplicated != 0 || !r.Complete() {
			t.Errorf("without native files: %+v", *r)
		}
	})
	t.Run("empty partition", func(t *testing.T) {
		r, err := VerifyPartition(ctx, store, "222222222222", vRegion, VerifyOptions{Windows: windows})
		if err != nil {
			t.Fatal(err)
		}
		if r.Missing != 5 || r.Archived != 0 || len(r.MissingWindows) != 5 || len(r.Unlisted) != 0 || r.CorruptWindows == nil {
			t.Errorf("empty partition: %+v", *r)
		}
	})
}

// A range that starts and ends inside windows archived whole: the windows'
// pieces outside the range are checked (not reported missing), and only the
// range's part is counted.
func TestVerifyPartOfArchivedWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	iv := func(a, b time.Time) []Interval { return []Interval{{From: a, To: b}} }
	early := piece(t, store, vt(10, 0, 0), 0, map[string]time.Time{"e1": vt(10, 1, 0)})
	inside := piece(t, store, vt(10, 20, 0), 0, map[string]time.Time{"i1": vt(10, 21, 0), "i2": vt(10, 22, 0)})
	late := piece(t, store, vt(10, 50, 0), 0, map[string]time.Time{"l1": vt(10, 55, 0)})
	manifest(t, store, vt(10, 0, 0), iv(vt(10, 0, 0), vt(10, 30, 0)), nil, early, inside)
	manifest(t, store, vt(10, 30, 0), iv(vt(10, 30, 0), vt(11, 0, 0)), nil, late)

	r, err := VerifyPartition(ctx, store, vAccount, vRegion, VerifyOptions{Windows: Windows(vt(10, 17, 0), vt(10, 43, 0), 30*time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Complete() || r.Archived != 2 || r.Corrupt != 0 || len(r.Unlisted) != 0 {
		t.Fatalf("report %+v: want both windows archived, nothing corrupt or unlisted", *r)
	}
	if r.Recovered != 2 {
		t.Errorf("%d recovered events counted, want the range's 2 (i1, i2)", r.Recovered)
	}
}

// An event in two of trailfill's pieces is a duplicate verify reports: the
// partition is not complete.
func TestVerifyReportsAnEventInTwoPieces(t *testing.T) {
	t.Parallel()
	store, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p0 := piece(t, store, vt(10, 0, 0), 0, map[string]time.Time{"a": vt(10, 1, 0), "b": vt(10, 2, 0)})
	p1 := piece(t, store, vt(10, 0, 0), 1, map[string]time.Time{"b": vt(10, 2, 0)})
	manifest(t, store, vt(10, 0, 0), []Interval{{From: vt(10, 0, 0), To: vt(10, 30, 0)}}, nil, p0, p1)
	r, err := VerifyPartition(context.Background(), store, vAccount, vRegion, VerifyOptions{Windows: Windows(vt(10, 0, 0), vt(10, 30, 0), 30*time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if r.PieceDuplicates != 1 || r.Complete() {
		t.Fatalf("report %+v: want 1 piece duplicate and the partition incomplete", *r)
	}
}
