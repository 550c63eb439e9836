package gitlab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/gitlab/gitlabemu"
)

const apiToken = "glpat-test-token-0123456789"

var (
	bfStart = time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	bfEnd   = time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	bfNow   = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	bfScope = Scope{Kind: ScopeGroup, ID: "acme/platform"}
)

type dataset struct {
	all    []json.RawMessage
	inside map[string]string // key -> bytes, for events in [bfStart, bfEnd)
}

func rawEvent(id int64, at time.Time, style int) json.RawMessage {
	ts := at.UTC().Format("2006-01-02T15:04:05.000Z")
	switch style % 3 {
	case 0:
		return json.RawMessage(fmt.Sprintf(`{"id":%d,"author_id":1,"entity_id":6,"entity_type":"Group","details":{"custom_message":"event %d","ip_address":"127.0.0.1"},"created_at":"%s"}`, id, id, ts))
	case 1:
		return json.RawMessage(fmt.Sprintf("{\n    \"id\": %d,\n    \"created_at\": \"%s\",\n    \"details\": {\"change\": \"visibility\", \"from\": \"private\", \"to\": \"internal\"}\n  }", id, ts))
	default:
		return json.RawMessage(fmt.Sprintf(`{"created_at": "%s", "event_type": "user_created", "id": %d, "target_details": "ünïcode & <html>"}`, ts, id))
	}
}

// newDataset builds events of bfScope around and inside [bfStart, bfEnd):
// boundary instants, a busy day needing several pages, and events just outside.
func newDataset() *dataset {
	d := &dataset{inside: map[string]string{}}
	var id int64 = 1000
	add := func(at time.Time) {
		id++
		raw := rawEvent(id, at, int(id))
		d.all = append(d.all, raw)
		if !at.Before(bfStart) && at.Before(bfEnd) {
			d.inside[EventKey("gitlab", fmt.Sprint(id), at)] = string(raw)
		}
	}
	ms := time.Millisecond
	for _, at := range []time.Time{
		time.Date(2025, 2, 27, 12, 0, 0, 0, time.UTC), // before the range
		bfStart.Add(-ms), bfStart, bfStart.Add(ms),
		time.Date(2025, 3, 1, 23, 59, 59, 999e6, time.UTC),
		time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC), // window boundary: belongs to 03-02
		time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 3, 0, 0, 0, 1e6, time.UTC),
		time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC),
		bfEnd.Add(-500 * ms), bfEnd, bfEnd.Add(ms), // end is exclusive
		time.Date(2025, 3, 6, 0, 0, 0, 0, time.UTC),
	} {
		add(at)
	}
	// A busy day: 250 events (3 pages of 100).
	for i := range 250 {
		add(time.Date(2025, 3, 2, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * 17 * time.Second))
	}
	// Several events in the same millisecond.
	for range 5 {
		add(time.Date(2025, 3, 3, 15, 4, 5, 6e6, time.UTC))
	}
	return d
}

type bfFixture struct {
	t     *testing.T
	emu   *gitlabemu.Server
	root  string
	store archive.Store
	data  *dataset
	mu    sync.Mutex
	waits []time.Duration
	logs  syncBuffer
}

func newBFFixture(t *testing.T, cfg gitlabemu.Config) *bfFixture {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = apiToken
	}
	emu, err := gitlabemu.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	emu.SetNow(func() time.Time { return bfNow })
	root := t.TempDir()
	store, err := archive.NewLocalStore(root)
	if err != nil {
		t.Fatal(err)
	}
	f := &bfFixture{t: t, emu: emu, root: root, store: store, data: newDataset()}
	if err := emu.Add(gitlabemu.ScopeKey("group", bfScope.ID), f.data.all...); err != nil {
		t.Fatal(err)
	}
	// Another group's events must not leak in.
	if err := emu.Add(gitlabemu.ScopeKey("group", "other"), rawEvent(5, bfStart.Add(time.Hour), 0)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *bfFixture) sleep(_ context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits = append(f.waits, d)
	return nil
}

func (f *bfFixture) backfill(conc int) *Backfill {
	f.t.Helper()
	c, err := NewClient(f.emu.URL()+"/api/v4/", apiToken)
	if err != nil {
		f.t.Fatal(err)
	}
	c.Sleep = f.sleep
	c.Now = func() time.Time { return bfNow }
	c.Rand = func() float64 { return 0.5 }
	c.Logger = testLogger(&f.logs)
	return &Backfill{Client: c, Store: f.store, Scope: bfScope, Concurrency: conc,
		Logger: testLogger(&f.logs), Now: func() time.Time { return bfNow }}
}

// wantArchive is the exact archive after a complete run of [bfStart, end):
// every event inside once, and one manifest per window.
func (f *bfFixture) wantEvents(end time.Time) map[string]string {
	want := map[string]string{}
	for k, v := range f.data.inside {
		want[k] = v
	}
	if end.After(bfEnd) {
		for _, raw := range f.data.all {
			e, _ := ParseEvent(raw)
			if !e.CreatedAt.Before(bfEnd) && e.CreatedAt.Before(end) {
				want[e.Key("gitlab")] = string(raw)
			}
		}
	}
	return want
}

// checkComplete checks the archive holds exactly the events of [bfStart, end)
// and a manifest for each window, each manifest listing exactly its events
// with the right hashes.
func (f *bfFixture) checkComplete(end time.Time) {
	t := f.t
	t.Helper()
	events := f.wantEvents(end)
	got := archiveFiles(t, f.root)
	want := map[string]string{}
	for k, v := range events {
		want[k] = v
	}
	for _, w := range archive.Windows(bfStart, end, DefaultWindow) {
		key := ManifestKey("gitlab", bfScope, w.Start)
		body, ok := got[key]
		if !ok {
			t.Errorf("no manifest %s", key)
			continue
		}
		want[key] = body
		var m Manifest
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("manifest %s: %v", key, err)
		}
		var keys []string
		for k := range events {
			e, _ := ParseEvent(json.RawMessage(events[k]))
			if !e.CreatedAt.Before(w.From) && e.CreatedAt.Before(w.To) {
				keys = append(keys, k)
			}
		}
		if m.Events != len(keys) || len(m.Objects) != len(keys) {
			t.Errorf("manifest %s: %d events, %d objects; want %d", key, m.Events, len(m.Objects), len(keys))
		}
		for _, o := range m.Objects {
			sum := sha256.Sum256([]byte(got[o.Key]))
			if events[o.Key] == "" || o.SHA256 != hex.EncodeToString(sum[:]) || o.Bytes != len(got[o.Key]) {
				t.Errorf("manifest %s: bad object %+v", key, o)
			}
		}
		if !m.From.Equal(w.From) || !m.To.Equal(w.To) || m.Scope != "group-acme%2Fplatform" || m.Source != "gitlab" {
			t.Errorf("manifest %s: %+v", key, m)
		}
	}
	checkArchive(t, f.root, want)
}

func TestBackfillCompleteWithPagingAndThrottling(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	f.emu.ThrottleNext(
		gitlabemu.Throttle{Count: 3, RetryAfter: "2"},
		gitlabemu.Throttle{Count: 2, Reset: true},
		gitlabemu.Throttle{Count: 4}, // no headers: exponential backoff
	)
	f.emu.FailNext(2)
	sum, err := f.backfill(1).Run(context.Background(), bfStart, bfEnd)
	if err != nil {
		t.Fatal(err)
	}
	f.checkComplete(bfEnd)
	if sum.Windows != 4 || sum.Done != 4 || sum.Events != len(f.data.inside) || sum.Written != len(f.data.inside) || sum.Present != 0 {
		t.Errorf("summary %+v, want %d events", sum, len(f.data.inside))
	}
	s := time.Second
	want := []time.Duration{
		2*s + s/2, 2*s + s/2, 2*s + s/2, // Retry-After: 2 plus jitter
		s + s/2, s + s/2, // RateLimit-Reset one second ahead, plus jitter
		750 * time.Millisecond, 1500 * time.Millisecond, 3 * s, 6 * s, // exponential, 3/4 of each step
		750 * time.Millisecond, 1500 * time.Millisecond, // two 500s
	}
	if fmt.Sprint(f.waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", f.waits, want)
	}
	// Requests: 11 refused, then pages: 1 + 3 (250+ events) + 1 + 1.
	reqs := f.emu.Requests()
	ok := 0
	for _, r := range reqs {
		if r.Status == http.StatusOK {
			ok++
			if r.Query.Get("per_page") != "100" || r.Query.Get("pagination") != "keyset" || r.Query.Get("order_by") != "id" || r.Query.Get("sort") != "desc" {
				t.Errorf("request %v lacks the keyset parameters", r.Query)
			}
			if r.Path != "/api/v4/groups/acme%2Fplatform/audit_events" {
				t.Errorf("path %s", r.Path)
			}
		}
	}
	if ok != 6 || len(reqs) != 17 || sum.Requests != 17 {
		t.Errorf("%d requests (%d ok), summary %d", len(reqs), ok, sum.Requests)
	}
}

func TestBackfillConcurrentWindowsAndResume(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	f.emu.ThrottleNext(gitlabemu.Throttle{Count: 10})
	b := f.backfill(4)
	if _, err := b.Run(context.Background(), bfStart, bfEnd); err != nil {
		t.Fatal(err)
	}
	f.checkComplete(bfEnd)

	// Re-run: every window has a manifest, no request is sent.
	before := len(f.emu.Requests())
	sum, err := f.backfill(4).Run(context.Background(), bfStart, bfEnd)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 4 || sum.Done != 0 || sum.Requests != 0 || len(f.emu.Requests()) != before {
		t.Fatalf("re-run: %+v, %d requests", sum, len(f.emu.Requests())-before)
	}
	f.checkComplete(bfEnd)

	// A longer range redoes only the last, partial window and adds the new one.
	end2 := time.Date(2025, 3, 7, 0, 0, 0, 0, time.UTC)
	sum, err = f.backfill(2).Run(context.Background(), bfStart, end2)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Windows != 6 || sum.Skipped != 3 || sum.Done != 3 {
		t.Fatalf("extended run: %+v", sum)
	}
	// 03-04 had 2 archived events before 12:00 and gains 2; 03-06 has 1.
	if sum.Present != 2 || sum.Written != 3 {
		t.Errorf("extended run: %+v", sum)
	}
	f.checkComplete(end2)
}

func TestBackfillFailedWindowThenResume(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	f.emu.FailNext(6) // the first window exhausts its 5 retries
	sum, err := f.backfill(1).Run(context.Background(), bfStart, bfEnd)
	if err == nil || !strings.Contains(err.Error(), "2025-03-01T00:00:00Z") || !strings.Contains(err.Error(), "re-run") {
		t.Fatalf("error %v", err)
	}
	if sum.Failed != 1 || sum.Done != 3 {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := f.store.Get(context.Background(), ManifestKey("gitlab", bfScope, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("failed window has a manifest: %v", err)
	}
	sum, err = f.backfill(1).Run(context.Background(), bfStart, bfEnd)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 1 || sum.Skipped != 3 {
		t.Fatalf("resume: %+v", sum)
	}
	f.checkComplete(bfEnd)
}

func TestBackfillKeepsStreamedEvent(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	// The receiver stored one of the events first, with the streaming
	// payload's bytes.
	var target Event
	for _, raw := range f.data.all {
		e, _ := ParseEvent(raw)
		if e.CreatedAt.Equal(time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)) {
			target = e
		}
	}
	streamed := fmt.Sprintf(`{"id": %s, "created_at": %q, "event_type": "streamed"}`, target.ID, target.CreatedAt.Format(time.RFC3339Nano))
	evs, err := ParseBody([]byte(streamed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StoreEvents(context.Background(), f.store, "gitlab", evs); err != nil {
		t.Fatal(err)
	}
	sum, err := f.backfill(2).Run(context.Background(), bfStart, bfEnd)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Present != 1 || sum.Written != len(f.data.inside)-1 {
		t.Fatalf("summary %+v", sum)
	}
	key := target.Key("gitlab")
	f.data.inside[key] = streamed // the streamed copy stays; the manifest hashes it
	f.checkComplete(bfEnd)
}

func TestBackfillThirtyDayLimit(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	c, _ := NewClient(f.emu.URL(), apiToken)
	c.Sleep = f.sleep
	c.Logger = testLogger(&f.logs)
	a := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := c.Pages(context.Background(), c.QueryURL(bfScope, a, a.Add(MaxQueryRange+time.Second)), func(Page) error { return nil })
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "30 days") {
		t.Fatalf("31-day query: %v", err)
	}
	if _, err := c.Pages(context.Background(), c.QueryURL(bfScope, a, a.Add(MaxQueryRange)), func(Page) error { return nil }); err != nil {
		t.Fatalf("30-day query: %v", err)
	}
	if len(f.waits) != 0 {
		t.Errorf("a 400 was retried: %v", f.waits)
	}
	// The widest window the backfill accepts passes the API's check.
	b := f.backfill(1)
	b.Window = MaxQueryRange
	start := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	sum, err := b.Run(context.Background(), start, bfNow)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != len(f.data.all) {
		t.Fatalf("30-day windows: %+v, want %d events", sum, len(f.data.all))
	}
	b.Window = MaxQueryRange + 24*time.Hour
	if _, err := b.Run(context.Background(), start, bfNow); err == nil {
		t.Fatal("a 31-day window was accepted")
	}
}

func TestBackfillRefusesForeignNextLink(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{LinkBase: "http://attacker.example:8080"})
	b := f.backfill(1)
	_, err := b.Run(context.Background(), time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "refusing to send the token") {
		t.Fatalf("error %v", err)
	}
	for _, r := range f.emu.Requests() {
		if !r.Token {
			t.Errorf("request without token: %+v", r)
		}
	}
	if len(f.emu.Requests()) != 1 {
		t.Errorf("%d requests", len(f.emu.Requests()))
	}
	checkArchive(t, f.root, f.firstPageOnly(t))
}

// firstPageOnly is the archive after only the first page (100 newest events of
// 2025-03-02) was stored.
func (f *bfFixture) firstPageOnly(t *testing.T) map[string]string {
	var day []Event
	for _, raw := range f.data.all {
		e, _ := ParseEvent(raw)
		if e.CreatedAt.Format("2006-01-02") == "2025-03-02" {
			day = append(day, e)
		}
	}
	// ids grow with time in the dataset: newest first means highest ids.
	want := map[string]string{}
	for i := len(day) - 1; i >= len(day)-100; i-- {
		want[day[i].Key("gitlab")] = string(day[i].Raw)
	}
	return want
}

func TestBackfillAPIErrors(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	c, _ := NewClient(f.emu.URL(), "wrong-token")
	c.Sleep = f.sleep
	c.Logger = testLogger(&f.logs)
	b := &Backfill{Client: c, Store: f.store, Scope: bfScope, Logger: testLogger(&syncBuffer{})}
	_, err := b.Run(context.Background(), bfStart, bfEnd)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "GITLAB_TOKEN") {
		t.Fatalf("error %v", err)
	}
	if len(f.emu.Requests()) != 4 || len(f.waits) != 0 {
		t.Errorf("401 retried: %d requests, waits %v", len(f.emu.Requests()), f.waits)
	}
	checkArchive(t, f.root, map[string]string{})
}

func TestBackfillInvalidEventFailsWindow(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	at := time.Date(2025, 3, 3, 1, 0, 0, 0, time.UTC)
	f.emu.AddRaw(gitlabemu.ScopeKey("group", bfScope.ID), 999999, at, json.RawMessage(`{"id":"not-a-number","created_at":"2025-03-03T01:00:00Z"}`))
	sum, err := f.backfill(1).Run(context.Background(), bfStart, bfEnd)
	if err == nil || !strings.Contains(err.Error(), "invalid event") || !strings.Contains(err.Error(), "2025-03-03T00:00:00Z") {
		t.Fatalf("error %v", err)
	}
	if sum.Failed != 1 || sum.Done != 3 {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := f.store.Get(context.Background(), ManifestKey("gitlab", bfScope, at.Truncate(24*time.Hour))); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("the failed window has a manifest: %v", err)
	}
}

func TestBackfillContextCancel(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	f.emu.ThrottleNext(gitlabemu.Throttle{Count: 1000000})
	b := f.backfill(1)
	n := 0
	b.Client.Sleep = func(ctx context.Context, d time.Duration) error {
		n++
		if n == 50 {
			cancel() // 429 forever: only the context ends it
		}
		return ctx.Err()
	}
	_, err := b.Run(ctx, bfStart, bfEnd)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "re-run") {
		t.Fatalf("error %v", err)
	}
	if n != 50 {
		t.Errorf("%d waits", n)
	}
	checkArchive(t, f.root, map[string]string{})
}

func TestNextLink(t *testing.T) {
	cases := map[string]string{
		`<https://g.example/api/v4/x?cursor=a%2Cb&per_page=100>; rel="next"`:                                       "https://g.example/api/v4/x?cursor=a%2Cb&per_page=100",
		`<https://g.example/1>; rel="first", <https://g.example/2>; rel="next", <https://g.example/9>; rel="last"`: "https://g.example/2",
		`<https://g.example/a,b>; rel="prev next"`:                                                                 "https://g.example/a,b",
		`<https://g.example/1>; rel="prev"`:                                                                        "",
		`<https://g.example/1>; title="a, next"; rel=next`:                                                         "https://g.example/1",
		``: "",
	}
	for in, want := range cases {
		h := http.Header{}
		if in != "" {
			h.Set("Link", in)
		}
		got, err := nextLink(h)
		if err != nil || got != want {
			t.Errorf("nextLink(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
