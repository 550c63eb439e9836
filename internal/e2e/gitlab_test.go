//go:build lambdae2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/gitlab"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

const (
	glBucket      = "gitlab-archive"
	glPrefix      = "audit"
	glTokensParam = "/trailfill/gitlab/tokens"
	glToken       = "e2e-streaming-token-0001"
	// The stack deploys the receiver with these (stacks/gitlab.go).
	glTimeoutSeconds = 30
	glMemoryMB       = 256
)

// receiverEnv is the receiver's environment as the stack sets it
// (stacks/gitlab.go: bucket, source, tokens parameter, body limit, prefix)
// plus what Lambda provides.
func receiverEnv(emu *emulator.Server, timeoutSeconds int) map[string]string {
	env := lambdaEnv(emu, acctCentral, "trailfill-gitlab-receiver", timeoutSeconds, glMemoryMB)
	env[contract.EnvGitLabBucket] = glBucket
	env[contract.EnvGitLabPrefix] = glPrefix
	env[contract.EnvGitLabSource] = gitlab.DefaultSource
	env[contract.EnvGitLabTokensParam] = glTokensParam
	env[contract.EnvGitLabMaxBody] = strconv.FormatInt(gitlab.DefaultMaxBody, 10)
	return env
}

// newReceiverEmulator starts the emulators with the archive bucket and the
// tokens parameter.
func newReceiverEmulator(t *testing.T) (*emulator.Server, *fakeSSM) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{})
	emu.AddAccount(acctCentral)
	if err := emu.CreateBucket(glBucket); err != nil {
		t.Fatal(err)
	}
	ssm := attachSSM(emu, acctCentral, map[string]string{glTokensParam: "# GitLab destinations\n" + glToken + "\n"})
	return emu, ssm
}

// bodyPlaceholder stands for the body in an encoded event (see payload).
const bodyPlaceholder = "@@BODY@@"

// functionURLEvent is the event a Function URL passes on for a GitLab
// delivery of a contentLength-byte body (Lambda Developer Guide, "Invoking
// Lambda function URLs", request payload format 2.0): GitLab's headers,
// lower-cased, and the body (bodyPlaceholder here) as text or, for a binary
// content type, base64-encoded.
func functionURLEvent(token string, contentLength int, b64 bool) events.LambdaFunctionURLRequest {
	headers := map[string]string{
		"accept":                    "*/*",
		"accept-encoding":           "gzip;q=1.0,deflate;q=0.6,identity;q=0.3",
		"content-length":            strconv.Itoa(contentLength),
		"content-type":              "application/x-www-form-urlencoded",
		"host":                      "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
		"user-agent":                "GitLab/17.6.0-ee",
		"x-amzn-tls-cipher-suite":   "TLS_AES_128_GCM_SHA256",
		"x-amzn-tls-version":        "TLSv1.3",
		"x-amzn-trace-id":           "Root=1-674c8d2e-0123456789abcdef01234567",
		"x-forwarded-for":           "203.0.113.17",
		"x-forwarded-port":          "443",
		"x-forwarded-proto":         "https",
		"x-gitlab-audit-event-type": "repository_git_operation",
	}
	if token != "" {
		headers["x-gitlab-event-streaming-token"] = token
	}
	return events.LambdaFunctionURLRequest{
		Version:        "2.0",
		RawPath:        "/",
		RawQueryString: "",
		Headers:        headers,
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID:    acctCentral,
			RequestID:    "8e3ed4b4-0f7b-4a19-9d2c-6f0a3c2b1e55",
			APIID:        "abcdefghijklmnopqrstuvwxyz012345",
			DomainName:   "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
			DomainPrefix: "abcdefghijklmnopqrstuvwxyz012345",
			Time:         "01/Dec/2026:12:00:00 +0000",
			TimeEpoch:    1796126400000,
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: "POST", Path: "/", Protocol: "HTTP/1.1", SourceIP: "203.0.113.17", UserAgent: "GitLab/17.6.0-ee",
			},
		},
		Body:            bodyPlaceholder,
		IsBase64Encoded: b64,
	}
}

// jsonString is s as the contents of a JSON string (without the quotes).
// HTML characters stay as they are (Go would escape <, > and & as \u003c...),
// as a serializer other than Go's writes them.
func jsonString(t *testing.T, s []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(s)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[1 : buf.Len()-2] // "...."\n
}

// payload is the invocation payload of ev with the body field holding
// bodyField (the body JSON-escaped, or base64). Splicing it in gives the
// bytes encoding the whole event would, without encoding megabytes each time.
func payload(t *testing.T, ev events.LambdaFunctionURLRequest, bodyField []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	before, after, ok := bytes.Cut(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte(`"body":"`+bodyPlaceholder+`"`))
	if !ok {
		t.Fatal("no body field in the encoded event")
	}
	out := make([]byte, 0, len(before)+len(bodyField)+len(after)+9)
	out = append(append(append(out, before...), `"body":"`...), bodyField...)
	return append(append(out, '"'), after...)
}

// bodyField is body as the event's body field holds it.
func bodyField(t *testing.T, body []byte, b64 bool) []byte {
	if b64 {
		return []byte(base64.StdEncoding.EncodeToString(body))
	}
	return jsonString(t, body)
}

// invokeURL invokes the receiver with an invocation payload and returns its
// HTTP answer; a function error comes back as err.
func invokeURL(t *testing.T, inv *local.LambdaInvoker, p []byte) (events.LambdaFunctionURLResponse, error) {
	t.Helper()
	out, err := inv.Invoke(context.Background(), "", rieFunctionName, p)
	if err != nil {
		return events.LambdaFunctionURLResponse{}, err
	}
	var resp events.LambdaFunctionURLResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("the receiver's answer is not a Function URL response: %v: %.300s", err, out)
	}
	return resp, nil
}

// deliver sends body to the receiver through a Function URL event.
func deliver(t *testing.T, inv *local.LambdaInvoker, token string, body []byte, b64 bool) (events.LambdaFunctionURLResponse, error) {
	t.Helper()
	return invokeURL(t, inv, payload(t, functionURLEvent(token, len(body), b64), bodyField(t, body, b64)))
}

// sampleEvents are the GitLab streaming samples of the shared test data.
func sampleEvents(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testkit.SharedDir(t), "testdata", "gitlab", "streaming_examples_from_gitlab_docs.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatal("no GitLab samples")
	}
	return out
}

// batch builds GitLab batch bodies (a JSON array of events, as GitLab's
// batched delivery sends) from the samples, each event with its own id
// (from firstID on), a creation time, and pad bytes of text in its details
// (0: the samples as they are): body(n) is exactly n bytes, as many whole
// events as fit and spaces after the array.
type batch struct {
	events  [][]byte // compact JSON of each event
	escaped [][]byte // each as the contents of a JSON string
	ids     []string
	ends    []int // ends[i]: length of "[" + events[:i+1] joined by "," + "]"
	escEnds []int // the same, escaped
}

func newBatch(t *testing.T, firstID, pad, maxBytes int) *batch {
	t.Helper()
	// Each sample encoded once with placeholders for its id and time.
	const idMark, timeMark = 987654321987, "@@CREATED_AT@@"
	var templates [][]byte
	for _, sample := range sampleEvents(t) {
		var ev map[string]any
		if err := json.Unmarshal(sample, &ev); err != nil {
			t.Fatal(err)
		}
		ev["id"], ev["created_at"] = idMark, timeMark
		if pad > 0 {
			details, _ := ev["details"].(map[string]any)
			if details == nil {
				details = map[string]any{}
			}
			details["custom_message"] = strings.Repeat("settings changed; ", pad/18+1)[:pad]
			ev["details"] = details
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
		templates = append(templates, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	}
	b := &batch{}
	size, escSize := 1, 1 // "["
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for i := 0; size < maxBytes; i++ {
		id := strconv.Itoa(firstID + i)
		raw := bytes.Replace(templates[i%len(templates)], []byte(strconv.Itoa(idMark)), []byte(id), 1)
		raw = bytes.Replace(raw, []byte(timeMark), []byte(start.Add(time.Duration(i)*97*time.Millisecond).Format("2006-01-02T15:04:05.000Z")), 1)
		esc := jsonString(t, raw)
		if i > 0 {
			size++ // ","
			escSize++
		}
		size += len(raw)
		escSize += len(esc)
		b.events, b.escaped, b.ids = append(b.events, raw), append(b.escaped, esc), append(b.ids, id)
		b.ends, b.escEnds = append(b.ends, size+1), append(b.escEnds, escSize+1)
	}
	return b
}

// fieldLen is the length of field(n, b64), computed.
func (b *batch) fieldLen(n int, b64 bool) int {
	if b64 {
		return base64.StdEncoding.EncodedLen(n)
	}
	c := b.count(n)
	return b.escEnds[c-1] + n - b.ends[c-1]
}

// count is the number of whole events that fit in n bytes.
func (b *batch) count(n int) int {
	return sort.SearchInts(b.ends, n+1)
}

func (b *batch) join(t *testing.T, parts [][]byte, n int) []byte {
	t.Helper()
	c := b.count(n)
	if c == 0 {
		t.Fatalf("no whole event fits in %d bytes", n)
	}
	out := make([]byte, 0, n+n/8)
	out = append(out, '[')
	out = append(out, bytes.Join(parts[:c], []byte(","))...)
	out = append(out, ']')
	return append(out, bytes.Repeat([]byte(" "), n-b.ends[c-1])...)
}

// body is the n-byte body.
func (b *batch) body(t *testing.T, n int) []byte { return b.join(t, b.events, n) }

// field is the n-byte body as the event's body field holds it.
func (b *batch) field(t *testing.T, n int, b64 bool) []byte {
	if b64 {
		return bodyField(t, b.body(t, n), true)
	}
	return b.join(t, b.escaped, n) // brackets, commas and spaces need no escaping
}

// deliver sends the n-byte body.
func (b *batch) deliver(t *testing.T, inv *local.LambdaInvoker, token string, n int, b64 bool) (events.LambdaFunctionURLResponse, error) {
	t.Helper()
	return invokeURL(t, inv, payload(t, functionURLEvent(token, n, b64), b.field(t, n, b64)))
}

// checkStored verifies that the first c events of b are stored, each at its
// key with its exact bytes.
func checkStored(t *testing.T, emu *emulator.Server, b *batch, c int) {
	t.Helper()
	for i := 0; i < c; i++ {
		var hdr struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if err := json.Unmarshal(b.events[i], &hdr); err != nil {
			t.Fatal(err)
		}
		key := glPrefix + "/" + gitlab.EventKey(gitlab.DefaultSource, b.ids[i], hdr.CreatedAt)
		got, ok := emu.S3Object(glBucket, key)
		if !ok || !bytes.Equal(got, b.events[i]) {
			t.Fatalf("event %s: %s holds %.80q (%v)", b.ids[i], key, got, ok)
		}
	}
}

func TestGitLabReceiverUnderRIE(t *testing.T) {
	t.Parallel()
	binary(t, envRIE)
	bootstrap := binary(t, envGitLabBootstrap)
	samples := sampleEvents(t)

	t.Run("deliveries are stored, bad tokens are refused", func(t *testing.T) {
		t.Parallel()
		emu, ssm := newReceiverEmulator(t)
		inv := startRIE(t, bootstrap, receiverEnv(emu, glTimeoutSeconds)).Invoker()
		e1, e2, e3 := samples[0], samples[3], samples[5]
		ids := func(raw []byte) (string, time.Time) {
			var h struct {
				ID        json.Number `json:"id"`
				CreatedAt time.Time   `json:"created_at"`
			}
			if err := json.Unmarshal(raw, &h); err != nil {
				t.Fatal(err)
			}
			return h.ID.String(), h.CreatedAt
		}
		// The samples share ids: give each its own.
		e2 = bytes.Replace(e2, []byte(`"id": 1,`), []byte(`"id": 2,`), 1)
		e3 = bytes.Replace(e3, []byte(`"id": 1,`), []byte(`"id": 3,`), 1)
		for _, c := range []struct {
			name   string
			token  string
			body   []byte
			b64    bool
			status int
			answer string
		}{
			{"wrong token", "not-the-configured-token", e1, false, 401, `{"error":"wrong X-Gitlab-Event-Streaming-Token header"}` + "\n"},
			{"no token", "", e1, true, 401, `{"error":"missing X-Gitlab-Event-Streaming-Token header"}` + "\n"},
			{"one event, JSON body", glToken, e1, false, 200, `{"events":1,"stored":1,"duplicates":0}` + "\n"},
			{"batch, base64 body", glToken, []byte("[" + string(e2) + "," + string(e3) + "]"), true, 200, `{"events":2,"stored":2,"duplicates":0}` + "\n"},
			{"redelivery, base64 body", glToken, []byte("[" + string(e1) + "," + string(e3) + "]"), true, 200, `{"events":2,"stored":0,"duplicates":2}` + "\n"},
			{"not an event", glToken, []byte(`{"id":9}`), false, 400, ""},
		} {
			resp, err := deliver(t, inv, c.token, c.body, c.b64)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if resp.StatusCode != c.status || (c.answer != "" && resp.Body != c.answer) {
				t.Errorf("%s: %d %s, want %d %s", c.name, resp.StatusCode, resp.Body, c.status, c.answer)
			}
		}
		keys := emu.S3Keys(glBucket, "")
		if len(keys) != 3 {
			t.Errorf("bucket holds %v, want the 3 events", keys)
		}
		for _, raw := range [][]byte{e1, e2, e3} {
			id, at := ids(raw)
			key := glPrefix + "/" + gitlab.EventKey(gitlab.DefaultSource, id, at)
			if got, ok := emu.S3Object(glBucket, key); !ok || !bytes.Equal(got, raw) {
				t.Errorf("%s = %q (%v), want %q", key, got, ok, raw)
			}
		}
		if n := ssm.Calls(); n != 1 {
			t.Errorf("%d GetParameter calls, want 1 (tokens read once, at cold start)", n)
		}
	})

	t.Run("a store that hangs gets a 500 before the deadline", func(t *testing.T) {
		t.Parallel()
		emu, _ := newReceiverEmulator(t)
		// S3 requests go to a server that never answers; SSM to the emulator.
		var puts atomic.Int64
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			puts.Add(1)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(release) })
		env := receiverEnv(emu, 5)
		env["AWS_ENDPOINT_URL_S3"] = hang.URL
		r := startRIE(t, bootstrap, env)
		resp, err := deliver(t, r.Invoker(), glToken, samples[0], false)
		if err != nil {
			t.Fatalf("the function did not answer: %v", err)
		}
		if resp.StatusCode != 500 || resp.Body != `{"error":"storing the events failed; see the receiver's logs"}`+"\n" {
			t.Fatalf("answer %d %s, want 500", resp.StatusCode, resp.Body)
		}
		if puts.Load() == 0 {
			t.Fatal("the receiver never tried to store the event")
		}
		if n := r.Timeouts(); n != 0 {
			t.Fatalf("%d invocations ran into the function timeout", n)
		}
		if keys := emu.S3Keys(glBucket, ""); len(keys) != 0 {
			t.Fatalf("bucket holds %v", keys)
		}
	})

	t.Run("largest body a Function URL invocation carries", func(t *testing.T) {
		t.Parallel()
		emu, _ := newReceiverEmulator(t)
		r := startRIE(t, bootstrap, receiverEnv(emu, glTimeoutSeconds))
		inv := r.Invoker()
		const limit = 6*1024*1024 + 100 // aws-lambda-rie's MaxPayloadSize (interop/model.go)
		const wrongToken = "wrong-token-wrong-token"
		gen := newBatch(t, 1_000_000, 0, limit+1)
		// A probe with a wrong token: 401 when the event reached the
		// function whole, a function error when aws-lambda-rie cut the
		// payload (it reads at most MaxPayloadSize bytes of it).
		through := func(n int, b64 bool) bool {
			resp, err := gen.deliver(t, inv, wrongToken, n, b64)
			if err != nil {
				if _, ok := err.(*local.TaskError); ok {
					return false
				}
				t.Fatalf("body of %d bytes: %v", n, err)
			}
			if resp.StatusCode != 401 {
				t.Fatalf("body of %d bytes: %d %s, want 401", n, resp.StatusCode, resp.Body)
			}
			return true
		}
		// The search runs through aws-lambda-rie, between bounds a little
		// either side of where the encoded event would reach the limit.
		largest := func(b64 bool) int {
			guess := sort.Search(limit, func(n int) bool {
				return n >= 1<<20 && len(payload(t, functionURLEvent(wrongToken, n, b64), nil))+gen.fieldLen(n, b64) > limit
			}) - 1
			lo, hi := guess-16, guess+16 // through(lo), !through(hi)
			if !through(lo, b64) || through(hi, b64) {
				t.Fatalf("base64 %v: a body of %d bytes must get through and one of %d must not", b64, lo, hi)
			}
			for hi-lo > 1 {
				mid := lo + (hi-lo)/2
				if through(mid, b64) {
					lo = mid
				} else {
					hi = mid
				}
			}
			return lo
		}
		maxText, maxB64 := largest(false), largest(true)
		t.Logf("largest body through a %d-byte invocation payload: %d bytes as text (JSON-escaped GitLab events), %d bytes base64-encoded; default limit %d",
			limit, maxText, maxB64, gitlab.DefaultMaxBody)
		if gitlab.DefaultMaxBody > int64(min(maxText, maxB64)) {
			t.Fatalf("the default body limit %d does not get through a Function URL in both encodings (text %d, base64 %d)", gitlab.DefaultMaxBody, maxText, maxB64)
		}

		// A delivery of exactly the default limit is stored whole, in both
		// encodings; one byte more is refused by the receiver (413) where it
		// still gets through. (Events of 64 KiB keep the number of writes
		// small.)
		def := int(gitlab.DefaultMaxBody)
		stored := 0
		for _, b64 := range []bool{true, false} {
			firstID, largestBody := 2_000_000, maxText
			if b64 {
				firstID, largestBody = 3_000_000, maxB64
			}
			g := newBatch(t, firstID, 64<<10, def+1)
			resp, err := g.deliver(t, inv, glToken, def, b64)
			c := g.count(def)
			if err != nil || resp.StatusCode != 200 || resp.Body != fmt.Sprintf(`{"events":%d,"stored":%d,"duplicates":0}`+"\n", c, c) {
				t.Fatalf("base64 %v: body of %d bytes: %d %s, %v", b64, def, resp.StatusCode, resp.Body, err)
			}
			checkStored(t, emu, g, c)
			stored += c
			if over := def + 1; over <= largestBody {
				resp, err := g.deliver(t, inv, glToken, over, b64)
				if err != nil || resp.StatusCode != 413 {
					t.Fatalf("base64 %v: body of %d bytes: %d %s, %v; want 413", b64, over, resp.StatusCode, resp.Body, err)
				}
			}
		}
		if n := len(emu.S3Keys(glBucket, "")); n != stored {
			t.Errorf("bucket holds %d objects, want the %d events delivered", n, stored)
		}
		if strings.Contains(r.logs.String(), glToken) {
			t.Error("the logs show the token")
		}
	})
}
