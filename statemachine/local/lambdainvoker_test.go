package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/trailfill/trailfill/statemachine/local"
)

// invokeAnswer is how the fake Lambda endpoint answers one Invoke.
type invokeAnswer struct {
	status        int
	errorType     string // X-Amzn-ErrorType
	functionError string // X-Amz-Function-Error
	body          string
}

// fakeLambda speaks the Lambda Invoke API (restJson1,
// POST /2015-03-31/functions/{FunctionName}/invocations) with scripted
// answers, and records the requests.
type fakeLambda struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  []invokeAnswer // consumed in order; the last one repeats
	requests []recordedInvoke
}

type recordedInvoke struct {
	path, invocationType, body string
}

func newFakeLambda(t *testing.T, answers ...invokeAnswer) *fakeLambda {
	t.Helper()
	f := &fakeLambda{answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, recordedInvoke{path: r.URL.EscapedPath(), invocationType: r.Header.Get("X-Amz-Invocation-Type"), body: string(body)})
		a := f.answers[0]
		if len(f.answers) > 1 {
			f.answers = f.answers[1:]
		}
		f.mu.Unlock()
		w.Header().Set("X-Amzn-RequestId", "4c1c5a2e-0000-4000-8000-000000000001")
		if a.errorType != "" {
			w.Header().Set("X-Amzn-ErrorType", a.errorType)
			w.Header().Set("Content-Type", "application/json")
		}
		if a.functionError != "" {
			w.Header().Set("X-Amz-Function-Error", a.functionError)
		}
		if a.errorType == "" {
			w.Header().Set("X-Amz-Executed-Version", "$LATEST")
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLambda) client() *lambda.Client {
	return lambda.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(f.srv.URL),
	})
}

func (f *fakeLambda) recorded() []recordedInvoke {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedInvoke(nil), f.requests...)
}

const (
	partitionErrorDoc = `{"errorMessage":"partition 222222222222/us-east-1: assume arn:aws:iam::222222222222:role/trailfill-read: AccessDenied","errorType":"PartitionError"}`
	rieTimeoutText    = "Task timed out after 12.00 seconds"
)

func TestLambdaInvokerMapsResults(t *testing.T) {
	t.Parallel()
	payload := json.RawMessage(`{"account":"111111111111","cursor":{"invocations":0}}`)
	cases := []struct {
		name     string
		emulator bool
		answer   invokeAnswer
		result   string // when the call succeeds
		errName  string // else the TaskError's Name
		errCause string // and its Cause
	}{
		{name: "success returns the payload", answer: invokeAnswer{status: 200, body: `{"done":true}`}, result: `{"done":true}`},
		{name: "handled function error is its errorType", answer: invokeAnswer{status: 200, functionError: "Unhandled", body: partitionErrorDoc},
			errName: "PartitionError", errCause: partitionErrorDoc},
		{name: "function timeout is Sandbox.Timedout", answer: invokeAnswer{status: 200, functionError: "Unhandled",
			body: `{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: 1 Error: Task timed out after 12.00 seconds"}`},
			errName: "Sandbox.Timedout", errCause: `{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: 1 Error: Task timed out after 12.00 seconds"}`},
		{name: "function error without errorType is Lambda.Unknown", answer: invokeAnswer{status: 200, functionError: "Unhandled", body: `{"errorMessage":"out of memory"}`},
			errName: "Lambda.Unknown", errCause: `{"errorMessage":"out of memory"}`},
		{name: "throttled", answer: invokeAnswer{status: 429, errorType: "TooManyRequestsException",
			body: `{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`},
			errName:  "Lambda.TooManyRequestsException",
			errCause: "Rate Exceeded. (Service: Lambda; Status Code: 429; Error Code: TooManyRequestsException; Request ID: 4c1c5a2e-0000-4000-8000-000000000001)"},
		{name: "service exception", answer: invokeAnswer{status: 500, errorType: "ServiceException", body: `{"Type":"Service","message":"internal error"}`},
			errName:  "Lambda.ServiceException",
			errCause: "internal error (Service: Lambda; Status Code: 500; Error Code: ServiceException; Request ID: 4c1c5a2e-0000-4000-8000-000000000001)"},
		{name: "missing function", answer: invokeAnswer{status: 404, errorType: "ResourceNotFoundException", body: `{"Type":"User","message":"Function not found: trailfill-backfill"}`},
			errName:  "Lambda.ResourceNotFoundException",
			errCause: "Function not found: trailfill-backfill (Service: Lambda; Status Code: 404; Error Code: ResourceNotFoundException; Request ID: 4c1c5a2e-0000-4000-8000-000000000001)"},
		{name: "unmodelled service error", answer: invokeAnswer{status: 502, body: `bad gateway`},
			errName: "Lambda.AWSLambdaException"},
		{name: "emulator: error document without header", emulator: true, answer: invokeAnswer{status: 200, body: partitionErrorDoc},
			errName: "PartitionError", errCause: partitionErrorDoc},
		{name: "emulator: timeout text", emulator: true, answer: invokeAnswer{status: 200, body: rieTimeoutText},
			errName: "Sandbox.Timedout", errCause: `{"errorMessage":"Task timed out after 12.00 seconds","errorType":"Sandbox.Timedout"}`},
		{name: "emulator: an ordinary result stays a result", emulator: true, answer: invokeAnswer{status: 200, body: `{"errorType":"x","done":true}`},
			result: `{"errorType":"x","done":true}`},
		{name: "service: a payload shaped like an error is a result", answer: invokeAnswer{status: 200, body: partitionErrorDoc},
			result: partitionErrorDoc},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeLambda(t, c.answer)
			inv := &local.LambdaInvoker{Client: f.client(), Emulator: c.emulator}
			out, err := inv.Invoke(context.Background(), "arn:aws:states:::lambda:invoke", "trailfill-backfill", payload)
			reqs := f.recorded()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want exactly 1 (the SDK must not retry)", len(reqs))
			}
			if reqs[0].path != "/2015-03-31/functions/trailfill-backfill/invocations" || reqs[0].invocationType != "RequestResponse" || reqs[0].body != string(payload) {
				t.Fatalf("request %+v", reqs[0])
			}
			if c.errName == "" {
				if err != nil || string(out) != c.result {
					t.Fatalf("got %s, %v; want %s", out, err, c.result)
				}
				return
			}
			var te *local.TaskError
			if !errors.As(err, &te) {
				t.Fatalf("got %s, %v; want a TaskError %s", out, err, c.errName)
			}
			if te.Name != c.errName {
				t.Errorf("error name %q, want %q", te.Name, c.errName)
			}
			if c.errCause != "" && te.Cause != c.errCause {
				t.Errorf("cause %q, want %q", te.Cause, c.errCause)
			}
			if te.Cause == "" {
				t.Error("empty cause")
			}
		})
	}
}

func TestLambdaInvokerTransportFailures(t *testing.T) {
	t.Parallel()
	t.Run("connection refused is Lambda.SdkClientException", func(t *testing.T) {
		t.Parallel()
		f := newFakeLambda(t, invokeAnswer{status: 200, body: "{}"})
		client := f.client()
		f.srv.Close()
		_, err := (&local.LambdaInvoker{Client: client}).Invoke(context.Background(), "", "fn", json.RawMessage(`{}`))
		var te *local.TaskError
		if !errors.As(err, &te) || te.Name != "Lambda.SdkClientException" {
			t.Fatalf("got %v, want Lambda.SdkClientException", err)
		}
	})
	t.Run("an ended context ends the call", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		client := lambda.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := (&local.LambdaInvoker{Client: client}).Invoke(ctx, "", "fn", json.RawMessage(`{}`))
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

// TestLambdaInvokerDrivesRetryAndCatch: the names the invoker gives are the
// ones a definition's Retry and Catch match: two throttled calls are retried,
// then the function error is caught by its errorType.
func TestLambdaInvokerDrivesRetryAndCatch(t *testing.T) {
	t.Parallel()
	def := `{
  "QueryLanguage": "JSONata",
  "StartAt": "Invoke",
  "States": {
    "Invoke": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Arguments": {"FunctionName": "trailfill-backfill", "Payload": "{% $states.input %}"},
      "Output": "{% $states.result.Payload %}",
      "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 5, "MaxAttempts": 3, "BackoffRate": 2}],
      "Catch": [{"ErrorEquals": ["PartitionError"], "Next": "Failed", "Output": "{% $states.errorOutput %}"}],
      "End": true
    },
    "Failed": {"Type": "Pass", "End": true}
  }
}`
	m, err := local.Load([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	throttled := invokeAnswer{status: 429, errorType: "TooManyRequestsException", body: `{"Type":"User","message":"Rate Exceeded."}`}
	f := newFakeLambda(t, throttled, throttled, invokeAnswer{status: 200, functionError: "Unhandled", body: partitionErrorDoc})
	clock := local.NewFakeClock(time.Date(2025, 4, 19, 0, 0, 0, 0, time.UTC))
	res, err := m.Execute(context.Background(), json.RawMessage(`{"account":"222222222222"}`),
		local.Options{Invoker: &local.LambdaInvoker{Client: f.client()}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != local.StatusSucceeded {
		t.Fatalf("execution %s: %s %s", res.Status, res.Error, res.Cause)
	}
	var out struct{ Error, Cause string }
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out.Error != "PartitionError" || out.Cause != partitionErrorDoc {
		t.Fatalf("caught %+v", out)
	}
	if n := len(f.recorded()); n != 3 || res.Stats.TaskInvocations != 3 {
		t.Fatalf("%d requests, %d invocations; want 3 (two throttled, retried)", n, res.Stats.TaskInvocations)
	}
	if got := clock.Sleeps(); len(got) != 2 || got[0] != 5*time.Second || got[1] != 10*time.Second {
		t.Fatalf("retry waits %v, want [5s 10s]", got)
	}
	if !strings.Contains(res.Execution.ID, ":execution:") {
		t.Fatalf("execution %+v", res.Execution)
	}
}
