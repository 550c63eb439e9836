package gitlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/gitlab/gitlabemu"
)

// The gitlab-s3 scenario: GitLab streamed a group's events into its own S3
// destination (per-event objects named by upload time) until an outage on
// 2025-03-01, and after the repair in its batched format; the backfill of
// [2025-02-27, 2025-03-03) must leave every event once, beside the native
// objects, which stay byte for byte as they were.
var (
	s3Start = time.Date(2025, 2, 27, 0, 0, 0, 0, time.UTC)
	s3End   = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	s3Now   = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
)

var entityTypes = []string{"Group", "Project", "User"}

// restRecord is an event as the REST API returns it: id a number, the
// streaming fields only inside details, the event type as event_name (null
// for some, which then take GitLab's default audit_operation).
func restRecord(id int, at time.Time) json.RawMessage {
	entity := entityTypes[id%3]
	name := `"member_updated"`
	if id%4 == 0 {
		name = "null"
	}
	return json.RawMessage(fmt.Sprintf(`{"id":%d,"author_id":1,"entity_id":6,"entity_type":%q,"event_name":%s,"details":{"custom_message":"change %d","author_name":"Alice","target_id":%d,"target_type":"Member","target_details":"bob","ip_address":"192.0.2.1","entity_path":"acme/platform"},"created_at":%q}`,
		id, entity, name, id, 1000+id, at.UTC().Format("2006-01-02T15:04:05.000Z")))
}

// scenarioEvent is one event of the scenario and how GitLab delivered it.
type scenarioEvent struct {
	id     int
	at     time.Time
	rest   json.RawMessage
	stream string // the streaming payload GitLab would send (with root_group_entity_id, as current GitLab adds)
}

type s3Scenario struct {
	events  []scenarioEvent // every event the API holds, by id
	natives map[string]string
	// nativeIDs counts the native copies of each id.
	nativeIDs map[int]int
	written   []int // ids the backfill must write
}

func (sc *s3Scenario) event(id int) scenarioEvent {
	for _, e := range sc.events {
		if e.id == id {
			return e
		}
	}
	panic(id)
}

func nativeStream(t *testing.T, rest json.RawMessage) string {
	t.Helper()
	s, err := StreamingFromREST(rest)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(s), "}") + `,"root_group_entity_id":6}`
}

func perEventKey(e scenarioEvent, uploaded time.Time) string {
	var f struct {
		EntityType string `json:"entity_type"`
		EventType  string `json:"event_type"`
	}
	_ = json.Unmarshal([]byte(e.stream), &f)
	return fmt.Sprintf("%s/%s/%s_%d_%d.json", strings.ToLower(f.EntityType), uploaded.UTC().Format("2006/01"), f.EventType, e.id, uploaded.UnixMilli())
}

func newS3Scenario(t *testing.T) *s3Scenario {
	t.Helper()
	sc := &s3Scenario{natives: map[string]string{}, nativeIDs: map[int]int{}}
	add := func(id int, at time.Time) scenarioEvent {
		r := restRecord(id, at)
		e := scenarioEvent{id: id, at: at, rest: r, stream: nativeStream(t, r)}
		sc.events = append(sc.events, e)
		return e
	}
	native := func(e scenarioEvent, uploaded time.Time) {
		sc.natives[perEventKey(e, uploaded)] = e.stream
		sc.nativeIDs[e.id]++
	}
	// Before the range: delivered natively, not part of the backfill.
	native(add(99, s3Start.Add(-20*time.Hour)), s3Start.Add(-20*time.Hour+time.Second))
	// 2025-02-27 and -28: streamed per event, uploaded about 2 s later.
	id := 100
	for day := range 2 {
		for i := range 20 {
			at := s3Start.Add(time.Duration(day)*24*time.Hour + time.Duration(i)*71*time.Minute + 250*time.Millisecond)
			native(add(id, at), at.Add(2*time.Second+time.Duration(i)*time.Millisecond))
			id++
		}
	}
	// At-least-once: GitLab delivered one event twice.
	native(sc.event(105), sc.event(105).at.Add(9*time.Second))
	// The month's last event, uploaded in March: its object is in 2025/03.
	last := add(id, time.Date(2025, 2, 28, 23, 59, 59, 500e6, time.UTC))
	native(last, time.Date(2025, 3, 1, 0, 0, 1, 200e6, time.UTC))
	// 2025-03-01: the outage. Nothing delivered; the backfill writes these,
	// the first at the window boundary.
	id = 200
	for i := range 12 {
		add(id, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*2*time.Hour+time.Duration(i)*time.Millisecond))
		sc.written = append(sc.written, id)
		id++
	}
	// 2025-03-02: repaired, batched delivery: 4 batches of 4 events, and 2
	// events a lost batch held; the last batch also holds an event of
	// 2025-03-03, after the range.
	id = 300
	var day2 []scenarioEvent
	for i := range 18 {
		day2 = append(day2, add(id, time.Date(2025, 3, 2, 1, 0, 0, 0, time.UTC).Add(time.Duration(i)*73*time.Minute)))
		id++
	}
	after := add(399, time.Date(2025, 3, 3, 1, 0, 0, 0, time.UTC))
	for b := range 4 {
		evs := append([]scenarioEvent(nil), day2[4*b:4*b+4]...)
		if b == 3 {
			evs = append(evs, after)
		}
		var parts []string
		for _, e := range evs {
			parts = append(parts, e.stream)
			sc.nativeIDs[e.id]++
		}
		uploaded := evs[len(evs)-1].at.Add(1500 * time.Millisecond)
		sc.natives[fmt.Sprintf("%s/%d_%d.json", uploaded.Format("2006/01/02"), uploaded.UnixMilli(), evs[0].id)] = "[" + strings.Join(parts, ",") + "]"
	}
	sc.written = append(sc.written, day2[16].id, day2[17].id)
	return sc
}

// inRange are the scenario's events inside [s3Start, s3End).
func (sc *s3Scenario) inRange() []scenarioEvent {
	var out []scenarioEvent
	for _, e := range sc.events {
		if !e.at.Before(s3Start) && e.at.Before(s3End) {
			out = append(out, e)
		}
	}
	return out
}

// s3Archive abstracts the two stores of the scenario: the S3 emulator and a
// local folder.
type s3Archive struct {
	store      archive.Store
	putNative  func(key, body string)
	objects    func() map[string]string // every object, manifests excluded
	nativeMeta func(key string) string  // what describes a native object besides its bytes ("" if nothing)
}

func gitlabAPI(t *testing.T, sc *s3Scenario) *Client {
	t.Helper()
	emu, err := gitlabemu.Start(gitlabemu.Config{Token: apiToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	emu.SetNow(func() time.Time { return s3Now })
	for _, e := range sc.events {
		if err := emu.Add(gitlabemu.ScopeKey("group", bfScope.ID), e.rest); err != nil {
			t.Fatal(err)
		}
	}
	c, err := NewClient(emu.URL(), apiToken)
	if err != nil {
		t.Fatal(err)
	}
	c.Sleep = func(context.Context, time.Duration) error { return nil }
	c.Logger = testLogger(&syncBuffer{})
	return c
}

func s3Backfill(c *Client, store archive.Store, conc int) *Backfill {
	return &Backfill{Client: c, Store: store, Layout: LayoutGitLabS3, Scope: bfScope, Concurrency: conc,
		Logger: testLogger(&syncBuffer{}), Now: func() time.Time { return s3Now }}
}

// checkEachEventOnce fails unless, counting every object of the archive
// (native and trailfill's), each event of the range is held exactly as often
// as GitLab delivered it natively, or once if it never did, with trailfill's
// copies exactly the converted REST record at its created_at key.
func checkEachEventOnce(t *testing.T, sc *s3Scenario, objs map[string]string) {
	t.Helper()
	held := map[string]int{}
	ours := map[string]string{}
	for k, body := range objs {
		if o, ok := ParseBatchObjectKey(k); ok {
			ids, err := batchIDs([]byte(body))
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			for _, id := range ids {
				held[id]++
			}
			if _, native := sc.natives[o.Key]; !native {
				t.Errorf("batch object %s is not GitLab's", k)
			}
			continue
		}
		o, ok := ParseEventObjectKey(k)
		if !ok {
			t.Fatalf("unexpected object %s", k)
		}
		held[o.ID]++
		if _, native := sc.natives[k]; !native {
			ours[o.ID] = k
		}
	}
	for _, e := range sc.inRange() {
		id := fmt.Sprint(e.id)
		want := max(sc.nativeIDs[e.id], 1)
		if held[id] != want {
			t.Errorf("event %s held %d times, want %d", id, held[id], want)
		}
	}
	var wantOurs []string
	for _, id := range sc.written {
		wantOurs = append(wantOurs, fmt.Sprint(id))
		e := sc.event(id)
		conv, _ := StreamingFromREST(e.rest)
		var f struct {
			EntityType string `json:"entity_type"`
			EventType  string `json:"event_type"`
		}
		_ = json.Unmarshal(conv, &f)
		key := fmt.Sprintf("%s/2025/03/%s_%d_%d.json", strings.ToLower(f.EntityType), f.EventType, id, e.at.UnixMilli())
		if ours[fmt.Sprint(id)] != key || objs[key] != string(conv) {
			t.Errorf("event %d: trailfill's copy %q = %q; want %s = %s", id, ours[fmt.Sprint(id)], objs[key], key, conv)
		}
	}
	var gotOurs []string
	for id := range ours {
		gotOurs = append(gotOurs, id)
	}
	sort.Strings(gotOurs)
	sort.Strings(wantOurs)
	if strings.Join(gotOurs, ",") != strings.Join(wantOurs, ",") {
		t.Errorf("trailfill wrote events %v, want %v", gotOurs, wantOurs)
	}
}

// runS3Scenario backfills the scenario into a, checks the archive, then
// re-runs (skipped), re-runs without manifests (nothing written: the
// archive's objects are found by id) and verifies.
func runS3Scenario(t *testing.T, a s3Archive, afterRun func(t *testing.T, sc *s3Scenario)) {
	sc := newS3Scenario(t)
	for k, v := range sc.natives {
		a.putNative(k, v)
	}
	nativeMeta := map[string]string{}
	for k := range sc.natives {
		nativeMeta[k] = a.nativeMeta(k)
	}
	c := gitlabAPI(t, sc)
	ctx := context.Background()

	sum, err := s3Backfill(c, a.store, 2).Run(ctx, s3Start, s3End)
	if err != nil {
		t.Fatal(err)
	}
	nIn := len(sc.inRange())
	nativeIn := nIn - len(sc.written)
	if sum.Windows != 4 || sum.Done != 4 || sum.Events != nIn || sum.Written != len(sc.written) || sum.Present != nativeIn || sum.Native != nativeIn {
		t.Fatalf("summary %+v; want %d events, %d written, %d native", sum, nIn, len(sc.written), nativeIn)
	}
	objs := a.objects()
	checkEachEventOnce(t, sc, objs)
	for k, v := range sc.natives {
		if objs[k] != v || a.nativeMeta(k) != nativeMeta[k] {
			t.Errorf("native object %s changed", k)
		}
	}
	if afterRun != nil {
		afterRun(t, sc)
	}

	// The manifests list every event of their window with the object
	// holding it.
	ms, err := archive.Index(ctx, a.store, LayoutGitLabS3.ManifestPrefix("", bfScope), s3Start, s3End, DecodeManifest)
	if err != nil || len(ms) != 4 {
		t.Fatalf("%d manifests, %v", len(ms), err)
	}
	byID := map[string]ManifestObject{}
	for _, m := range ms {
		if m.Layout != LayoutGitLabS3 || m.Version != ManifestVersion || m.Source != "" || m.Events != len(m.Objects) {
			t.Errorf("manifest %s: %+v", m.Key(), m)
		}
		for _, o := range m.Objects {
			byID[o.ID] = o
		}
	}
	if len(byID) != nIn {
		t.Errorf("manifests list %d events, want %d", len(byID), nIn)
	}
	last := byID["140"]
	if !last.Native || last.Key != perEventKey(sc.event(140), time.Date(2025, 3, 1, 0, 0, 1, 200e6, time.UTC)) {
		t.Errorf("the month's last event is listed as %+v", last)
	}
	if o := byID["105"]; !o.Native || o.Key != perEventKey(sc.event(105), sc.event(105).at.Add(2*time.Second+5*time.Millisecond)) {
		t.Errorf("a twice-delivered event is listed as %+v (want its first native object)", o)
	}
	if o := byID["300"]; !o.Native || !strings.HasPrefix(o.Key, "2025/03/02/") {
		t.Errorf("a batched event is listed as %+v", o)
	}
	if o := byID["200"]; o.Native || o.Key != "user/2025/03/audit_operation_200_1740787200000.json" {
		t.Errorf("a recovered event is listed as %+v", o)
	}

	// Verification: complete.
	rep, err := Verify(ctx, VerifyOptions{Store: a.store, Layout: LayoutGitLabS3, Scope: bfScope, Start: s3Start, End: s3End})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete || rep.Archived != 4 || rep.Events != nIn || rep.Native != nativeIn || rep.ExitCode() != 0 {
		t.Fatalf("verify: %+v", rep)
	}

	// Re-run: every window skipped.
	sum, err = s3Backfill(c, a.store, 2).Run(ctx, s3Start, s3End)
	if err != nil || sum.Skipped != 4 || sum.Requests != 0 {
		t.Fatalf("re-run: %+v, %v", sum, err)
	}
	// Without manifests the windows are read again, and nothing is written:
	// every event is found by id, trailfill's own copies included.
	for _, m := range ms {
		if err := a.store.Delete(ctx, m.Key()); err != nil {
			t.Fatal(err)
		}
	}
	sum, err = s3Backfill(c, a.store, 1).Run(ctx, s3Start, s3End)
	if err != nil || sum.Done != 4 || sum.Written != 0 || sum.Present != nIn || sum.Native != nativeIn {
		t.Fatalf("run without manifests: %+v, %v", sum, err)
	}
	if got := a.objects(); len(got) != len(objs) {
		t.Errorf("%d objects after the third run, %d before", len(got), len(objs))
	}
}

// TestBackfillGitLabS3OnS3 runs the scenario against the project's S3
// emulator through the real S3 client and the GitLab REST emulator: the
// native objects are in the bucket root, as GitLab's S3 destination writes
// them.
func TestBackfillGitLabS3OnS3(t *testing.T) {
	t.Parallel()
	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	const bucket = "gitlab-audit"
	if err := emu.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ak, sk := emu.CallerCredentials("111122223333")
	s3c := awsconf.NewS3(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""), BaseEndpoint: aws.String(emu.URL()),
		HTTPClient: awsconf.NewHTTPClient()})
	store := &archive.S3Store{Client: s3c, Bucket: bucket}
	a := s3Archive{
		store: store,
		putNative: func(key, body string) {
			if err := emu.LocalS3().PutObject(context.Background(), bucket, key, []byte(body)); err != nil {
				t.Fatal(err)
			}
		},
		objects: func() map[string]string {
			out := map[string]string{}
			for _, k := range emu.S3Keys(bucket, "") {
				if strings.HasPrefix(k, "trailfill/") {
					continue
				}
				b, _ := emu.S3Object(bucket, k)
				out[k] = string(b)
			}
			return out
		},
		nativeMeta: func(key string) string {
			info, _ := emu.S3ObjectInfo(bucket, key)
			return fmt.Sprintf("%s %s %v", info.ETag, info.ContentType, info.Metadata)
		},
	}
	emu.ResetS3Counters()
	runS3Scenario(t, a, func(t *testing.T, sc *s3Scenario) {
		// Each folder was listed once; nothing but trailfill's objects and
		// manifests was written; GitLab's objects were only read.
		lists, gets := map[string]int{}, map[string]int{}
		for _, r := range emu.S3RequestLog() {
			switch r.Op {
			case emulator.S3ListObjectsV2:
				lists[r.Key]++
			case emulator.S3GetObject:
				gets[r.Key]++
			case emulator.S3PutObject:
				if _, native := sc.natives[r.Key]; native {
					t.Errorf("PUT of native object %s", r.Key)
				}
			default:
				t.Errorf("unexpected %s %s", r.Op, r.Key)
			}
		}
		for p, n := range lists {
			if n != 1 {
				t.Errorf("%s listed %d times", p, n)
			}
		}
		if lists["2025/03/"] != 1 || lists["user/2025/03/"] != 1 || lists["group/2025/02/"] != 1 {
			t.Errorf("folders listed: %v", lists)
		}
		// Each native object read once (a batch for all its events); the
		// one of before the range and GitLab's second copy of an event not
		// at all.
		second := perEventKey(sc.event(105), sc.event(105).at.Add(9*time.Second))
		for k := range sc.natives {
			o, batch := ParseBatchObjectKey(k)
			want := 1
			if !batch {
				o, _ = ParseEventObjectKey(k)
			}
			if o.ID == "99" || k == second {
				want = 0
			}
			if gets[k] != want {
				t.Errorf("native %s read %d times, want %d", k, gets[k], want)
			}
		}
		// trailfill's objects: application/json, marked as recovered.
		for k := range a.objects() {
			info, _ := emu.S3ObjectInfo(bucket, k)
			if _, native := sc.natives[k]; native {
				if info.Metadata[MetaOrigin] != "" {
					t.Errorf("native %s has metadata %v", k, info.Metadata)
				}
				continue
			}
			if info.ContentType != "application/json" || info.Metadata[MetaOrigin] != OriginREST {
				t.Errorf("%s: content type %q, metadata %v", k, info.ContentType, info.Metadata)
			}
		}
	})
}

// TestBackfillGitLabS3Local runs the scenario into a local folder.
func TestBackfillGitLabS3Local(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	store, err := archive.NewLocalStore(root)
	if err != nil {
		t.Fatal(err)
	}
	a := s3Archive{
		store: store,
		putNative: func(key, body string) {
			p := filepath.Join(root, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		objects: func() map[string]string {
			out := map[string]string{}
			for k, v := range archiveFiles(t, root) {
				if strings.HasPrefix(k, "trailfill/") {
					continue
				}
				if base := k[strings.LastIndexByte(k, '/')+1:]; strings.HasPrefix(base, ".") {
					// trailfill's metadata sidecars: only beside its own objects
					if !strings.HasSuffix(base, ".json.meta") || v != `{"trailfill":"gitlab-rest-api"}` {
						t.Errorf("unexpected file %s = %q", k, v)
					}
					continue
				}
				out[k] = v
			}
			return out
		},
		nativeMeta: func(key string) string {
			fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(key)))
			if err != nil {
				return "missing"
			}
			return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
		},
	}
	runS3Scenario(t, a, nil)
}

// TestBackfillNativeLookahead: an event GitLab delivered two months late is
// found only when the search reaches that month.
func TestBackfillNativeLookahead(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 20, 10, 0, 0, 0, time.UTC)
	rest := restRecord(7, at)
	e := scenarioEvent{id: 7, at: at, rest: rest, stream: nativeStream(t, rest)}
	late := perEventKey(e, time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC))
	sc := &s3Scenario{events: []scenarioEvent{e}}
	c := gitlabAPI(t, sc)
	for _, n := range []int{0, 2} {
		t.Run(fmt.Sprintf("lookahead %d", n), func(t *testing.T) {
			store := newMemStore()
			if err := store.Put(context.Background(), late, []byte(e.stream)); err != nil {
				t.Fatal(err)
			}
			b := s3Backfill(c, store, 1)
			b.NativeLookahead = n
			sum, err := b.Run(context.Background(), time.Date(2025, 1, 20, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 21, 0, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			// 0 is the default, one month: March is not searched.
			if n == 0 && (sum.Written != 1 || sum.Native != 0) || n == 2 && (sum.Written != 0 || sum.Native != 1) {
				t.Fatalf("summary %+v", sum)
			}
		})
	}
	b := s3Backfill(c, newMemStore(), 1)
	b.NativeLookahead = MaxNativeLookahead + 1
	if _, err := b.Run(context.Background(), at, at.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "lookahead") {
		t.Fatalf("lookahead over the maximum: %v", err)
	}
}
