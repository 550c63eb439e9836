package receiverfn

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/gitlab"
	"github.com/trailfill/trailfill/internal/testkit"
)

const (
	tok1 = "lambda-token-1-abcdefgh"
	tok2 = "lambda-token-2-ijklmnop"
)

type fakeSSM struct {
	value string
	err   error
	calls []ssm.GetParameterInput
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.calls = append(f.calls, *in)
	if f.err != nil {
		return nil, f.err
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Name: in.Name, Value: aws.String(f.value)}}, nil
}

func TestConfigFromEnv(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := ConfigFromEnv(get(map[string]string{
		contract.EnvGitLabBucket: "archive-bucket", contract.EnvGitLabPrefix: "/audit/", contract.EnvGitLabTokensParam: "/trailfill/gitlab/tokens",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Bucket: "archive-bucket", Prefix: "audit", Source: "gitlab", TokensParam: "/trailfill/gitlab/tokens", MaxBody: gitlab.DefaultMaxBody, Layout: gitlab.LayoutDefault}
	if c != want {
		t.Fatalf("config %+v, want %+v", c, want)
	}
	c, err = ConfigFromEnv(get(map[string]string{
		contract.EnvGitLabBucket: "b-1", contract.EnvGitLabTokensParam: "p", contract.EnvGitLabSource: "gitlab.com", contract.EnvGitLabMaxBody: "65536",
		contract.EnvGitLabLayout: "gitlab-s3", contract.EnvKMSKeyArn: "arn:aws:kms:us-east-1:111111111111:key/k",
	}))
	if err != nil || c.Source != "gitlab.com" || c.MaxBody != 65536 || c.Layout != gitlab.LayoutGitLabS3 || c.KMSKeyArn != "arn:aws:kms:us-east-1:111111111111:key/k" {
		t.Fatalf("config %+v, %v", c, err)
	}
	for name, m := range map[string]map[string]string{
		"no bucket":  {contract.EnvGitLabTokensParam: "p"},
		"no param":   {contract.EnvGitLabBucket: "b-1"},
		"bad body":   {contract.EnvGitLabBucket: "b-1", contract.EnvGitLabTokensParam: "p", contract.EnvGitLabMaxBody: "1MiB"},
		"zero body":  {contract.EnvGitLabBucket: "b-1", contract.EnvGitLabTokensParam: "p", contract.EnvGitLabMaxBody: "0"},
		"bad source": {contract.EnvGitLabBucket: "b-1", contract.EnvGitLabTokensParam: "p", contract.EnvGitLabSource: "a/b"},
		"bad bucket": {contract.EnvGitLabBucket: "Bad_Bucket", contract.EnvGitLabTokensParam: "p"},
		"bad prefix": {contract.EnvGitLabBucket: "b-1", contract.EnvGitLabTokensParam: "p", contract.EnvGitLabPrefix: "a//b"},
		"bad layout": {contract.EnvGitLabBucket: "b-1", contract.EnvGitLabTokensParam: "p", contract.EnvGitLabLayout: "gitlab-http"},
	} {
		if _, err := ConfigFromEnv(get(m)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadTokens(t *testing.T) {
	f := &fakeSSM{value: "# one per destination\n" + tok1 + "\n" + tok2 + "\n"}
	tokens, err := LoadTokens(context.Background(), f, "/p")
	if err != nil || tokens.Len() != 2 {
		t.Fatalf("%v %v", tokens, err)
	}
	if len(f.calls) != 1 || !aws.ToBool(f.calls[0].WithDecryption) || aws.ToString(f.calls[0].Name) != "/p" {
		t.Fatalf("calls %+v", f.calls)
	}
	for _, bad := range []*fakeSSM{{value: "short"}, {value: ""}, {err: errors.New("AccessDenied")}} {
		_, err := LoadTokens(context.Background(), bad, "/p")
		if err == nil || !strings.Contains(err.Error(), "/p") {
			t.Errorf("%+v: %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "short") {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

func TestLogHandlerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewLogHandler(&buf, slog.LevelInfo)).With("component", "x")
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-123"})
	l.InfoContext(ctx, "hello")
	out := buf.String()
	for _, want := range []string{`"requestId":"req-123"`, `"message":"hello"`, `"component":"x"`, `"timestamp"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %s lacks %s", out, want)
		}
	}
}

// TestLambdaOnS3 runs the receiver Lambda's handler against the project's S3
// emulator through the real S3 client: tokens from SSM, single and array
// bodies, duplicates, concurrent deliveries, rejections; the bucket holds each
// event once under the prefix and nothing else.
func TestLambdaOnS3(t *testing.T) {
	emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	if err := emu.CreateBucket("gitlab-archive"); err != nil {
		t.Fatal(err)
	}
	ak, sk := emu.CallerCredentials("111122223333")
	s3c := awsconf.NewS3(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, ""),
		BaseEndpoint: aws.String(emu.URL()),
	})
	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{contract.EnvGitLabBucket: "gitlab-archive", contract.EnvGitLabPrefix: "audit", contract.EnvGitLabTokensParam: "/tok", contract.EnvGitLabMaxBody: "4096"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r, err := New(context.Background(), cfg, s3c, &fakeSSM{value: tok1 + "\n" + tok2}, slog.New(NewLogHandler(&logs, slog.LevelInfo)))
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(token, body string, b64 bool) events.LambdaFunctionURLResponse {
		if b64 {
			body = base64.StdEncoding.EncodeToString([]byte(body))
		}
		out, err := r.HandleFunctionURL(context.Background(), events.LambdaFunctionURLRequest{
			RawPath:         "/",
			Headers:         map[string]string{"x-gitlab-event-streaming-token": token, "content-type": "application/x-www-form-urlencoded"},
			Body:            body,
			IsBase64Encoded: b64,
			RequestContext:  events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	e1 := `{"id": 1, "author_id": 1, "entity_type": "Project", "created_at": "2022-02-23T06:21:05.283Z", "event_type": "repository_git_operation"}`
	e2 := "{\n  \"id\": \"2\",\n  \"created_at\": \"2022-02-24T00:00:00Z\"\n}"
	e3 := `{"id":3,"created_at":"2022-02-24T08:59:59+09:00"}`
	if out := invoke(tok1, e1, false); out.StatusCode != 200 {
		t.Fatalf("single: %d %s", out.StatusCode, out.Body)
	}
	if out := invoke(tok2, "[ "+e2+" , "+e3+" ]", true); out.StatusCode != 200 || !strings.Contains(out.Body, `"stored":2`) {
		t.Fatalf("array: %d %s", out.StatusCode, out.Body)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := 0
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := invoke(tok1, `[`+e1+`,`+e3+`]`, false)
			mu.Lock()
			defer mu.Unlock()
			if out.StatusCode != 200 || !strings.Contains(out.Body, `"stored":0`) {
				t.Errorf("redelivery: %d %s", out.StatusCode, out.Body)
			}
			stored++
		}()
	}
	e4 := `{"id":4,"created_at":"2022-03-01T00:00:00Z"}`
	answers := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := invoke(tok2, e4, false)
			answers <- out.Body
		}()
	}
	wg.Wait()
	close(answers)
	newCopies := 0
	for a := range answers {
		if strings.Contains(a, `"stored":1`) {
			newCopies++
		}
	}
	if newCopies != 1 {
		t.Errorf("concurrent first deliveries of event 4 stored it %d times", newCopies)
	}
	for _, c := range []struct {
		token, body string
		status      int
	}{
		{"", e1, 401}, {"not-the-token-at-all", e1, 401}, {tok1, `{"id":5}`, 400},
		{tok1, `[` + strings.Repeat(e1+",", 40) + e1 + `]`, 413},
	} {
		if out := invoke(c.token, c.body, false); out.StatusCode != c.status {
			t.Errorf("%.30s: %d, want %d", c.body, out.StatusCode, c.status)
		}
	}

	store := &archive.S3Store{Client: s3c, Bucket: "gitlab-archive"}
	keys, err := store.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"audit/GitLab/gitlab/2022/02/23/1.json": e1,
		"audit/GitLab/gitlab/2022/02/24/2.json": e2,
		"audit/GitLab/gitlab/2022/02/23/3.json": e3, // 08:59:59+09:00 is the 23rd in UTC
		"audit/GitLab/gitlab/2022/03/01/4.json": e4,
	}
	if len(keys) != len(want) {
		t.Errorf("bucket holds %v", keys)
	}
	for k, v := range want {
		got, ok := emu.S3Object("gitlab-archive", k)
		if !ok || string(got) != v {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, v)
		}
	}
	for _, tk := range []string{tok1, tok2} {
		if strings.Contains(logs.String(), tk) {
			t.Errorf("logs show a token")
		}
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testkit.SyncBuffer

func TestStoreTimeout(t *testing.T) {
	for _, c := range []struct {
		name                      string
		remaining, reserve, limit time.Duration
		want                      time.Duration
	}{
		{"deadline less the default reserve", 30 * time.Second, 0, 0, 28 * time.Second},
		{"own reserve", 10 * time.Second, 3 * time.Second, 0, 7 * time.Second},
		{"never beyond the receiver's limit", 15 * time.Minute, 0, 0, gitlab.DefaultStoreTimeout},
		{"a lower limit wins", 30 * time.Second, 0, 5 * time.Second, 5 * time.Second},
		{"too late: fail at once", time.Second, 0, 0, time.Millisecond},
		{"past the deadline", -time.Second, 0, 0, time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := StoreTimeout(c.remaining, c.reserve, c.limit); got != c.want {
				t.Fatalf("StoreTimeout(%v, %v, %v) = %v, want %v", c.remaining, c.reserve, c.limit, got, c.want)
			}
		})
	}
}

// deadlineStore records the deadline of every write and fails it as a store
// that never answers would once that deadline passed.
type deadlineStore struct {
	archive.Store
	mu        sync.Mutex
	deadlines []time.Time
}

func (s *deadlineStore) PutIfAbsent(ctx context.Context, _ string, _ []byte, _ archive.Metadata) (bool, error) {
	dl, ok := ctx.Deadline()
	s.mu.Lock()
	if ok {
		s.deadlines = append(s.deadlines, dl)
	}
	s.mu.Unlock()
	return false, context.DeadlineExceeded
}

func (s *deadlineStore) String() string { return "s3://hanging" }

// TestFunctionBoundsWritesByTheDeadline: the writes of a request end Reserve
// before the invocation's deadline and the answer is 500, whatever the
// receiver's own (longer) store timeout.
func TestFunctionBoundsWritesByTheDeadline(t *testing.T) {
	tokens, err := gitlab.ParseTokens(tok1)
	if err != nil {
		t.Fatal(err)
	}
	store := &deadlineStore{}
	r, err := gitlab.NewReceiver(store, tokens, "", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fn := Function{Receiver: r, Reserve: 3 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	out, err := fn.Handle(ctx, events.LambdaFunctionURLRequest{
		RawPath:        "/",
		Headers:        map[string]string{"x-gitlab-event-streaming-token": tok1},
		Body:           `[{"id":1,"created_at":"2022-02-23T06:21:05Z"},{"id":2,"created_at":"2022-02-23T06:21:06Z"}]`,
		RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST"}},
	})
	if err != nil || out.StatusCode != 500 {
		t.Fatalf("answer %d %s, %v; want 500", out.StatusCode, out.Body, err)
	}
	if len(store.deadlines) != 2 {
		t.Fatalf("%d writes had a deadline, want 2", len(store.deadlines))
	}
	// The receiver starts its timer a little after Handle read the clock:
	// allow a second of that drift inside the 3 s reserve.
	for _, dl := range store.deadlines {
		if dl.After(deadline.Add(-2 * time.Second)) {
			t.Errorf("write deadline %v is within the reserve before the invocation deadline %v", dl, deadline)
		}
	}
	if r.StoreTimeout != 0 {
		t.Errorf("the shared receiver was changed: StoreTimeout %v", r.StoreTimeout)
	}
}
