package gitlab

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/trailfill/trailfill/internal/archive"
)

const (
	tokenA = "tokenA-0123456789abcdef" // destination 1
	tokenB = "tokenB-fedcba9876543210" // destination 2
)

type recvFixture struct {
	root string
	recv *Receiver
	srv  *httptest.Server
	logs *syncBuffer
}

func newRecvFixture(t *testing.T, maxBody int64) *recvFixture {
	t.Helper()
	root := t.TempDir()
	store, err := archive.NewLocalStore(root)
	if err != nil {
		t.Fatal(err)
	}
	f := newRecvFixtureWith(t, ReceiverOptions{Store: store, MaxBody: maxBody})
	f.root = root
	return f
}

// newRecvFixtureWith serves a receiver with options o (tokens A and B, a
// test logger and /healthz added) on a local HTTP server.
func newRecvFixtureWith(t *testing.T, o ReceiverOptions) *recvFixture {
	t.Helper()
	tokens, err := ParseTokens(tokenA + "\n" + tokenB + "\n")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	o.Tokens, o.Logger, o.Health = tokens, testLogger(logs), true
	recv, err := NewReceiverFromOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(recv)
	f := &recvFixture{recv: recv, srv: srv, logs: logs}
	t.Cleanup(func() {
		srv.Close()
		for _, tok := range []string{tokenA, tokenB} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("logs contain a token:\n%s", logs.String())
			}
		}
	})
	return f
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// post sends body with token (none if empty) and GitLab's default content type.
func (f *recvFixture) post(t *testing.T, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Gitlab-Audit-Event-Type", "repository_git_operation")
	if token != "" {
		req.Header.Set(TokenHeader, token)
	}
	return f.do(t, req)
}

func (f *recvFixture) do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return a
}

func (a answer) num(k string) int {
	v, _ := a.body[k].(float64)
	return int(v)
}

func TestReceiverSingleEvent(t *testing.T) {
	f := newRecvFixture(t, 0)
	s := sampleLines(t)[0]
	a := f.post(t, tokenA, s)
	if a.status != http.StatusOK || a.num("stored") != 1 || a.num("duplicates") != 0 {
		t.Fatalf("answer %d %v", a.status, a.body)
	}
	checkArchive(t, f.root, map[string]string{"GitLab/gitlab/2022/02/23/1.json": s})
	if !strings.Contains(f.logs.String(), `"destination":1`) {
		t.Errorf("log does not name the destination:\n%s", f.logs)
	}
}

func TestReceiverArrayOfSamples(t *testing.T) {
	f := newRecvFixture(t, 0)
	want := map[string]string{}
	var elems []string
	for i, s := range sampleLines(t) {
		id := 100 + i
		e := withID(t, s, itoa(id))
		elems = append(elems, e)
		var ev struct {
			CreatedAt string `json:"created_at"`
		}
		if err := json.Unmarshal([]byte(e), &ev); err != nil {
			t.Fatal(err)
		}
		day := strings.ReplaceAll(ev.CreatedAt[:10], "-", "/")
		want["GitLab/gitlab/"+day+"/"+itoa(id)+".json"] = e
	}
	// The newer delivery path: one request, a JSON array, with GitLab's
	// default form content type.
	a := f.post(t, tokenB, "[\n"+strings.Join(elems, ",\n")+"\n]")
	if a.status != http.StatusOK || a.num("events") != len(elems) || a.num("stored") != len(elems) {
		t.Fatalf("answer %d %v", a.status, a.body)
	}
	checkArchive(t, f.root, want)
}

func TestReceiverAPIExampleArray(t *testing.T) {
	// The REST API's example response, pretty-printed: elements are stored
	// byte for byte, indentation included.
	b := sharedSample(t, "api_instance_audit_events_example.json")
	f := newRecvFixture(t, 0)
	a := f.post(t, tokenA, string(b))
	if a.status != http.StatusOK || a.num("stored") != 4 {
		t.Fatalf("answer %d %v", a.status, a.body)
	}
	got := archiveFiles(t, f.root)
	keys := sortedKeys(got)
	wantKeys := []string{
		"GitLab/gitlab/2019/08/22/3.json",
		"GitLab/gitlab/2019/08/27/2.json",
		"GitLab/gitlab/2019/08/30/1.json",
		"GitLab/gitlab/2023/08/01/4.json",
	}
	if strings.Join(keys, " ") != strings.Join(wantKeys, " ") {
		t.Fatalf("keys %v, want %v", keys, wantKeys)
	}
	// Every stored object is a verbatim substring of the body, and together
	// with the separators they rebuild it.
	rest := string(b)
	for _, k := range []string{wantKeys[2], wantKeys[1], wantKeys[0], wantKeys[3]} { // body order: ids 1,2,3,4
		i := strings.Index(rest, got[k])
		if i < 0 {
			t.Fatalf("%s is not a verbatim part of the body:\n%s", k, got[k])
		}
		if sep := strings.TrimSpace(rest[:i]); sep != "[" && sep != "," {
			t.Fatalf("unexpected bytes before %s: %q", k, sep)
		}
		rest = rest[i+len(got[k]):]
	}
	if strings.TrimSpace(rest) != "]" {
		t.Fatalf("unexpected tail %q", rest)
	}
}

func TestReceiverDuplicates(t *testing.T) {
	f := newRecvFixture(t, 0)
	lines := sampleLines(t)
	first := withID(t, lines[0], "42")
	if a := f.post(t, tokenA, first); a.status != http.StatusOK || a.num("stored") != 1 {
		t.Fatalf("first delivery: %d %v", a.status, a.body)
	}
	// The same delivery again, then the same id with other bytes (a
	// re-delivery through the other destination): nothing new is stored.
	if a := f.post(t, tokenA, first); a.status != http.StatusOK || a.num("stored") != 0 || a.num("duplicates") != 1 {
		t.Fatalf("second delivery: %d %v", a.status, a.body)
	}
	other := withID(t, lines[1], "42") // same day
	if a := f.post(t, tokenB, "["+other+"]"); a.status != http.StatusOK || a.num("duplicates") != 1 {
		t.Fatalf("third delivery: %d %v", a.status, a.body)
	}
	// An array repeating an id stores it once.
	e43 := withID(t, lines[0], "43")
	if a := f.post(t, tokenA, "["+e43+","+e43+"]"); a.status != http.StatusOK || a.num("stored") != 1 || a.num("duplicates") != 1 {
		t.Fatalf("repeating array: %d %v", a.status, a.body)
	}
	// String and number spellings of an id are the same event.
	e43s := strings.Replace(e43, `{"id": 43,`, `{"id": "43",`, 1)
	if a := f.post(t, tokenA, e43s); a.status != http.StatusOK || a.num("duplicates") != 1 {
		t.Fatalf("string id: %d %v", a.status, a.body)
	}
	checkArchive(t, f.root, map[string]string{
		"GitLab/gitlab/2022/02/23/42.json": first,
		"GitLab/gitlab/2022/02/23/43.json": e43,
	})
}

func TestReceiverRejects(t *testing.T) {
	f := newRecvFixture(t, 2048)
	ok := sampleLines(t)[0]
	cases := []struct {
		name   string
		token  string
		body   string
		status int
	}{
		{"missing token", "", ok, http.StatusUnauthorized},
		{"wrong token", "tokenC-0123456789abcdef", ok, http.StatusUnauthorized},
		{"token prefix", tokenA[:16], ok, http.StatusUnauthorized},
		{"token plus suffix", tokenA + "x", ok, http.StatusUnauthorized},
		{"wrong token, malformed body", "nope-nope-nope-nope", "{", http.StatusUnauthorized},
		{"malformed JSON", tokenA, `{"id": 1, "created_at": `, http.StatusBadRequest},
		{"form body", tokenA, "id=1&created_at=2022-02-23T06%3A21%3A05Z", http.StatusBadRequest},
		{"empty body", tokenA, "", http.StatusBadRequest},
		{"no id", tokenA, `{"created_at":"2022-02-23T06:21:05.283Z"}`, http.StatusBadRequest},
		{"bad id", tokenA, `{"id":"../../etc","created_at":"2022-02-23T06:21:05.283Z"}`, http.StatusBadRequest},
		{"bad created_at", tokenA, `{"id":5,"created_at":"yesterday"}`, http.StatusBadRequest},
		{"batch without a valid event", tokenA, `[{"id":8},{"id":"x/y","created_at":"2022-02-23T06:21:05.283Z"},null]`, http.StatusBadRequest},
		{"batch, broken JSON", tokenA, "[" + withID(t, ok, "7") + `,{"id":8}`, http.StatusBadRequest},
		{"oversize", tokenA, "[" + strings.Repeat(withID(t, ok, "9")+",", 5) + withID(t, ok, "9") + "]", http.StatusRequestEntityTooLarge},
		{"oversize, wrong token", "nope-nope-nope-nope", strings.Repeat(" ", 4096), http.StatusUnauthorized},
	}
	for _, c := range cases {
		a := f.post(t, c.token, c.body)
		if a.status != c.status {
			t.Errorf("%s: status %d (%v), want %d", c.name, a.status, a.body, c.status)
		}
		if _, ok := a.body["error"].(string); !ok {
			t.Errorf("%s: no error message in %v", c.name, a.body)
		}
	}
	checkArchive(t, f.root, map[string]string{})
}

func TestReceiverOversizeChunked(t *testing.T) {
	// Without Content-Length the limit is found while reading.
	f := newRecvFixture(t, 1024)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`[` + strings.Repeat(`{"id":1,"created_at":"2022-02-23T06:21:05Z"},`, 40)))
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(TokenHeader, tokenA)
	if a := f.do(t, req); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d %v, want 413", a.status, a.body)
	}
	checkArchive(t, f.root, map[string]string{})
}

func TestReceiverExactlyAtLimit(t *testing.T) {
	body := withID(t, sampleLines(t)[0], "5")
	f := newRecvFixture(t, int64(len(body)))
	if a := f.post(t, tokenA, body); a.status != http.StatusOK {
		t.Fatalf("status %d %v", a.status, a.body)
	}
	if a := f.post(t, tokenA, body+" "); a.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("one byte over: status %d %v", a.status, a.body)
	}
}

func TestReceiverMethods(t *testing.T) {
	f := newRecvFixture(t, 0)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, f.srv.URL+"/", strings.NewReader(sampleLines(t)[0]))
		req.Header.Set(TokenHeader, tokenA)
		a := f.do(t, req)
		if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: status %d, Allow %q", m, a.status, a.header.Get("Allow"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/healthz", nil)
	if a := f.do(t, req); a.status != http.StatusOK {
		t.Errorf("healthz: %d", a.status)
	}
	checkArchive(t, f.root, map[string]string{})
}

func TestReceiverConcurrentDeliveries(t *testing.T) {
	f := newRecvFixture(t, 0)
	lines := sampleLines(t)
	const n = 16
	ev := withID(t, lines[3], "777")
	batch := "[" + ev + "," + withID(t, lines[4], "778") + "]"
	var wg sync.WaitGroup
	answers := make([]answer, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := ev
			if i%2 == 1 {
				body = batch
			}
			answers[i] = f.post(t, []string{tokenA, tokenB}[i%2], body)
		}()
	}
	close(start)
	wg.Wait()
	stored, dups := 0, 0
	for i, a := range answers {
		if a.status != http.StatusOK {
			t.Fatalf("delivery %d: %d %v", i, a.status, a.body)
		}
		stored += a.num("stored")
		dups += a.num("duplicates")
	}
	// 16 deliveries of 777 and 8 of 778: each stored exactly once.
	if stored != 2 || dups != n+n/2-2 {
		t.Fatalf("stored %d, duplicates %d", stored, dups)
	}
	checkArchive(t, f.root, map[string]string{
		"GitLab/gitlab/2022/02/23/777.json": ev,
		"GitLab/gitlab/2022/02/23/778.json": withID(t, lines[4], "778"),
	})
}

func TestReceiverStoreFailure(t *testing.T) {
	logs := &syncBuffer{}
	tokens, _ := ParseTokens(tokenA)
	recv, err := NewReceiver(failingStore{}, tokens, "gitlab", 0, testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	resp := recv.Handle(context.Background(), Request{
		Method: http.MethodPost, Path: "/", Header: http.Header{TokenHeader: {tokenA}},
		Body: strings.NewReader(sampleLines(t)[0]), ContentLength: -1,
	})
	if resp.Status != http.StatusInternalServerError {
		t.Fatalf("status %d %s", resp.Status, resp.Body)
	}
	l := logs.String()
	if !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, "disk on fire") || !strings.Contains(l, `"ids":["1"]`) {
		t.Errorf("store failure not logged as it should be:\n%s", l)
	}
	if strings.Contains(l, tokenA) {
		t.Errorf("log contains the token:\n%s", l)
	}
}

func TestFunctionURL(t *testing.T) {
	root := t.TempDir()
	store, _ := archive.NewLocalStore(root)
	tokens, _ := ParseTokens(tokenA)
	logs := &syncBuffer{}
	recv, err := NewReceiver(store, tokens, "acme", 1024, testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	ev := withID(t, sampleLines(t)[0], "9001")
	invoke := func(method string, headers map[string]string, body string, b64 bool) events.LambdaFunctionURLResponse {
		t.Helper()
		in := events.LambdaFunctionURLRequest{
			RawPath: "/", Headers: headers, Body: body, IsBase64Encoded: b64,
			RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, SourceIP: "203.0.113.9"}},
		}
		out, err := recv.HandleFunctionURL(context.Background(), in)
		if err != nil {
			t.Fatalf("handler error: %v", err)
		}
		return out
	}
	// Function URLs pass header names in lower case.
	h := map[string]string{"x-gitlab-event-streaming-token": tokenA, "content-type": "application/x-www-form-urlencoded"}
	if out := invoke("POST", h, base64.StdEncoding.EncodeToString([]byte(ev)), true); out.StatusCode != 200 {
		t.Fatalf("base64 body: %d %s", out.StatusCode, out.Body)
	}
	if out := invoke("POST", h, "["+ev+"]", false); out.StatusCode != 200 || !strings.Contains(out.Body, `"duplicates":1`) {
		t.Fatalf("plain body: %d %s", out.StatusCode, out.Body)
	}
	if out := invoke("POST", map[string]string{"x-gitlab-event-streaming-token": "wrong-wrong-wrong-wrong"}, ev, false); out.StatusCode != 401 {
		t.Fatalf("wrong token: %d", out.StatusCode)
	}
	if out := invoke("POST", nil, ev, false); out.StatusCode != 401 {
		t.Fatalf("no headers: %d", out.StatusCode)
	}
	big := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", 2000)))
	if out := invoke("POST", h, big, true); out.StatusCode != 413 {
		t.Fatalf("oversize base64: %d", out.StatusCode)
	}
	if out := invoke("POST", h, strings.Repeat(" ", 1025), false); out.StatusCode != 413 {
		t.Fatalf("oversize: %d", out.StatusCode)
	}
	if out := invoke("POST", h, "%%%not base64", true); out.StatusCode != 400 {
		t.Fatalf("bad base64: %d", out.StatusCode)
	}
	if out := invoke("GET", h, "", false); out.StatusCode != 405 || out.Headers["Allow"] != "POST" {
		t.Fatalf("GET: %d %v", out.StatusCode, out.Headers)
	}
	if out := invoke("GET", h, "", false); out.StatusCode != 405 {
		t.Fatalf("GET /healthz on Lambda: %d", out.StatusCode)
	}
	checkArchive(t, root, map[string]string{"GitLab/acme/2022/02/23/9001.json": ev})
	if strings.Contains(logs.String(), tokenA) {
		t.Errorf("log contains the token")
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
