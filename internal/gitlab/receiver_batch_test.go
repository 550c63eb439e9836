package gitlab

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/emulator"
)

// batchEvent is one event of a generated batch: GitLab's streaming examples
// (shared testdata) in turn, with their own created_at and event types, each
// with its own id (as current GitLab sends it: a string).
type batchEvent struct {
	id   int
	body string
}

func genBatch(t *testing.T, first, n int) []batchEvent {
	t.Helper()
	lines := sampleLines(t)
	out := make([]batchEvent, n)
	for i := range n {
		id := first + i
		out[i] = batchEvent{id: id, body: withID(t, lines[id%len(lines)], strconv.Quote(strconv.Itoa(id)))}
	}
	return out
}

func batchBody(evs []batchEvent) string {
	parts := make([]string, len(evs))
	for i, e := range evs {
		parts[i] = e.body
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// wantKey is the key of a generated event, derived here from the sample's
// fields without the package's key functions: every example's entity is a
// Project.
func wantKey(t *testing.T, layout Layout, e batchEvent) string {
	t.Helper()
	var f struct {
		CreatedAt string `json:"created_at"`
		EventType string `json:"event_type"`
	}
	if err := json.Unmarshal([]byte(e.body), &f); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, f.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	if layout == LayoutGitLabS3 {
		return fmt.Sprintf("project/%s/%s_%d_%d.json", at.UTC().Format("2006/01"), f.EventType, e.id, at.UnixMilli())
	}
	return fmt.Sprintf("GitLab/gitlab/%s/%d.json", at.UTC().Format("2006/01/02"), e.id)
}

// wantFiles is the exact archive holding evs (each id once, first copy).
func wantFiles(t *testing.T, layout Layout, evs ...[]batchEvent) map[string]string {
	t.Helper()
	want := map[string]string{}
	for _, list := range evs {
		for _, e := range list {
			if k := wantKey(t, layout, e); want[k] == "" {
				want[k] = e.body
			}
		}
	}
	return want
}

// postBatch sends a batched delivery: a JSON array without the event-type
// header, with GitLab's default content type.
func (f *recvFixture) postBatch(t *testing.T, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(TokenHeader, token)
	return f.do(t, req)
}

// checkOrigin fails unless every object of the gitlab-s3 layout carries the
// receiver's origin metadata and no default-layout object carries any.
func checkOrigin(t *testing.T, m *memStore, layout Layout) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.objs {
		got := m.meta[k][MetaOrigin]
		if (layout == LayoutGitLabS3) != (got == OriginStream) || (layout == LayoutDefault && len(m.meta[k]) > 0) {
			t.Fatalf("%s: metadata %v in layout %s", k, m.meta[k], layout)
		}
	}
}

var layouts = []Layout{LayoutDefault, LayoutGitLabS3}

// TestReceiverBatchSizes delivers batches of 1, 500 and 5,000 events (GitLab's
// batched delivery) in both layouts: each event stored once at its key with
// its exact bytes; the same batch again (at-least-once redelivery) stores
// nothing.
func TestReceiverBatchSizes(t *testing.T) {
	for _, layout := range layouts {
		for _, n := range []int{1, 500, 5000} {
			t.Run(fmt.Sprintf("%s/%d", layout, n), func(t *testing.T) {
				t.Parallel()
				store := newMemStore()
				f := newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: layout, MaxBody: 8 << 20})
				evs := genBatch(t, 1000, n)
				body := batchBody(evs)
				a := f.postBatch(t, tokenA, body)
				if a.status != http.StatusOK || a.num("events") != n || a.num("stored") != n || a.num("duplicates") != 0 {
					t.Fatalf("answer %d %v", a.status, a.body)
				}
				want := wantFiles(t, layout, evs)
				if len(want) != n {
					t.Fatalf("%d distinct keys for %d events", len(want), n)
				}
				diffFiles(t, store.files(), want)
				checkOrigin(t, store, layout)
				a = f.postBatch(t, tokenB, body)
				if a.status != http.StatusOK || a.num("stored") != 0 || a.num("duplicates") != n {
					t.Fatalf("redelivery: %d %v", a.status, a.body)
				}
				diffFiles(t, store.files(), want)
			})
		}
	}
}

// TestReceiverBatchOverLimit refuses a batch one byte over the limit and
// stores none of its events; at the limit it is stored.
func TestReceiverBatchOverLimit(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			evs := genBatch(t, 1, 5000)
			body := batchBody(evs)
			store := newMemStore()
			f := newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: layout, MaxBody: int64(len(body)) - 1})
			if a := f.postBatch(t, tokenA, body); a.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("answer %d %v", a.status, a.body)
			}
			diffFiles(t, store.files(), map[string]string{})
			f = newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: layout, MaxBody: int64(len(body))})
			if a := f.postBatch(t, tokenA, body); a.status != http.StatusOK || a.num("stored") != 5000 {
				t.Fatalf("at the limit: %d %v", a.status, a.body)
			}
		})
	}
}

// TestReceiverDuplicatesAcrossBatches delivers overlapping batches, one of
// which repeats events in itself: each id is stored once, the first copy.
func TestReceiverDuplicatesAcrossBatches(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			store := newMemStore()
			f := newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: layout, MaxBody: 4 << 20})
			a1 := genBatch(t, 1, 500)
			b1 := genBatch(t, 251, 500) // 251..750
			b1 = append(b1, b1[:10]...) // repeated inside the batch
			if a := f.postBatch(t, tokenA, batchBody(a1)); a.status != http.StatusOK || a.num("stored") != 500 {
				t.Fatalf("first batch: %d %v", a.status, a.body)
			}
			a := f.postBatch(t, tokenB, batchBody(b1))
			if a.status != http.StatusOK || a.num("events") != 510 || a.num("stored") != 250 || a.num("duplicates") != 260 {
				t.Fatalf("second batch: %d %v", a.status, a.body)
			}
			diffFiles(t, store.files(), wantFiles(t, layout, a1, b1))
		})
	}
}

// TestReceiverConcurrentBatches delivers overlapping batches at once, on both
// front ends' shared core: every id stored exactly once.
func TestReceiverConcurrentBatches(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			store := newMemStore()
			f := newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: layout, MaxBody: 4 << 20})
			const n = 8
			batches := make([][]batchEvent, n)
			for i := range n {
				batches[i] = genBatch(t, 1+100*i, 300) // ids 1..1000, most in three batches
			}
			answers := make([]answer, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					answers[i] = f.postBatch(t, []string{tokenA, tokenB}[i%2], batchBody(batches[i]))
				}()
			}
			close(start)
			wg.Wait()
			stored, dups := 0, 0
			for i, a := range answers {
				if a.status != http.StatusOK || a.num("events") != 300 {
					t.Fatalf("batch %d: %d %v", i, a.status, a.body)
				}
				stored += a.num("stored")
				dups += a.num("duplicates")
			}
			if stored != 1000 || dups != n*300-1000 {
				t.Fatalf("stored %d, duplicates %d", stored, dups)
			}
			diffFiles(t, store.files(), wantFiles(t, layout, batches...))
		})
	}
}

// TestReceiverPartlyInvalidBatch stores the valid events of a batch and
// answers 207 listing the others; a batch without a valid event is a 400.
func TestReceiverPartlyInvalidBatch(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.String(), func(t *testing.T) {
			t.Parallel()
			store := newMemStore()
			f := newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: layout})
			good := genBatch(t, 40, 2)
			body := "[" + good[0].body + `,{"id":"41x","created_at":"soon"},` + good[1].body + `,"text",{"id":"../x","created_at":"2022-02-23T06:21:05Z"}]`
			a := f.postBatch(t, tokenA, body)
			if a.status != http.StatusMultiStatus || a.num("events") != 5 || a.num("stored") != 2 || a.num("rejected") != 3 {
				t.Fatalf("answer %d %v", a.status, a.body)
			}
			b, _ := json.Marshal(a.body["rejections"])
			const want = `[{"error":"event 41x: created_at \"soon\" is not an RFC 3339 time","id":"41x","index":1},{"error":"event is not a JSON object","index":3},{"error":"event id ../x is not a positive integer or a streaming id (expected digits, or a UUID string)","index":4}]`
			if string(b) != want {
				t.Errorf("rejections %s\nwant %s", b, want)
			}
			diffFiles(t, store.files(), wantFiles(t, layout, good))
			if l := f.logs.String(); !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, "partly rejected") || !strings.Contains(l, `"status":207`) {
				t.Errorf("a partly rejected batch is not logged as an error:\n%s", l)
			}

			// Many bad elements: all counted, the first 100 listed.
			var elems []string
			for i := range 150 {
				elems = append(elems, fmt.Sprintf(`{"id":%d}`, 9000+i))
			}
			more := genBatch(t, 42, 1)
			a = f.postBatch(t, tokenA, "["+strings.Join(elems, ",")+","+more[0].body+"]")
			if a.status != http.StatusMultiStatus || a.num("rejected") != 150 || a.num("stored") != 1 {
				t.Fatalf("answer %d %v", a.status, a.body)
			}
			if l, _ := a.body["rejections"].([]any); len(l) != maxRejectionsListed {
				t.Errorf("%d rejections listed", len(l))
			}
			a = f.postBatch(t, tokenA, "["+strings.Join(elems, ",")+"]")
			if a.status != http.StatusBadRequest || a.num("rejected") != 150 || a.num("stored") != 0 {
				t.Fatalf("no valid event: %d %v", a.status, a.body)
			}
			diffFiles(t, store.files(), wantFiles(t, layout, good, more))
		})
	}
}

// TestReceiverGitLabS3OnS3 runs the receiver in the gitlab-s3 layout against
// the project's S3 emulator through the real S3 client: single events (the
// event-type header names the type a payload lacks), a batch of 500,
// redelivery; objects under the prefix in GitLab's key layout, exact bytes,
// application/json, marked as the receiver's.
func TestReceiverGitLabS3OnS3(t *testing.T) {
	t.Parallel()
	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	if err := emu.CreateBucket("gitlab-bucket"); err != nil {
		t.Fatal(err)
	}
	ak, sk := emu.CallerCredentials("111122223333")
	s3c := awsconf.NewS3(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""), BaseEndpoint: aws.String(emu.URL()),
		HTTPClient: awsconf.NewHTTPClient()})
	store := &archive.S3Store{Client: s3c, Bucket: "gitlab-bucket", Prefix: "gl"}
	f := newRecvFixtureWith(t, ReceiverOptions{Store: store, Layout: LayoutGitLabS3, MaxBody: 4 << 20})

	noType := `{"id":"77","author_id":1,"entity_id":9,"entity_type":"Gitlab::Audit::InstanceScope","created_at":"2025-01-31T23:59:59.999Z"}`
	withType := `{"id":"78","entity_type":"Namespaces::UserNamespace","created_at":"2025-02-01T00:00:00Z","event_type":"user_settings_updated"}`
	if a := f.post(t, tokenA, noType); a.status != http.StatusOK || a.num("stored") != 1 {
		t.Fatalf("single: %d %v", a.status, a.body) // the header says repository_git_operation
	}
	if a := f.post(t, tokenA, withType); a.status != http.StatusOK || a.num("stored") != 1 {
		t.Fatalf("single: %d %v", a.status, a.body)
	}
	evs := genBatch(t, 100, 500)
	if a := f.postBatch(t, tokenB, batchBody(evs)); a.status != http.StatusOK || a.num("stored") != 500 {
		t.Fatalf("batch: %d %v", a.status, a.body)
	}
	if a := f.postBatch(t, tokenB, batchBody(evs[:50])); a.status != http.StatusOK || a.num("duplicates") != 50 {
		t.Fatalf("redelivery: %d %v", a.status, a.body)
	}
	want := map[string]string{
		"instance/2025/01/repository_git_operation_77_1738367999999.json": noType,
		"user/2025/02/user_settings_updated_78_1738368000000.json":        withType,
	}
	for k, v := range wantFiles(t, LayoutGitLabS3, evs) {
		want[k] = v
	}
	keys := emu.S3Keys("gitlab-bucket", "")
	if len(keys) != len(want) {
		t.Errorf("bucket holds %d objects, want %d", len(keys), len(want))
	}
	for k, v := range want {
		got, ok := emu.S3Object("gitlab-bucket", "gl/"+k)
		if !ok || string(got) != v {
			t.Fatalf("gl/%s = %q (%v), want %q", k, got, ok, v)
		}
		info, _ := emu.S3ObjectInfo("gitlab-bucket", "gl/"+k)
		if info.ContentType != "application/json" || info.Metadata[MetaOrigin] != OriginStream {
			t.Fatalf("gl/%s: content type %q, metadata %v", k, info.ContentType, info.Metadata)
		}
	}
}
