package pace_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/testkit"
)

// Every attempt the SDK makes, retries of 5xx and throttling included, passes
// through the limiter: the emulator counts exactly the attempts the limiter let out.
func TestEveryAttemptIsPaced(t *testing.T) {
	emu := testkit.StartEmulator(t, emulator.Config{Rate: 50, Burst: 1, FaultRate: 0.1, Seed: 3})
	emu.AddAccount("111111111111")
	cfg := testkit.AWSConfig(t, emu, "111111111111")
	clients := awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, 60) // above the bucket: throttling too
	client, lim, err := clients.LookupClient(context.Background(), "111111111111", "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 40 {
		if _, err := client.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{StartTime: aws.Time(start), EndTime: aws.Time(start.Add(time.Hour))}); err != nil && !pace.IsThrottle(err) {
			t.Fatal(err)
		}
	}
	st := emu.Stats("111111111111", "us-east-1")
	if st.Faults == 0 {
		t.Fatal("no faults injected: the SDK made no retries to pace")
	}
	if lim.Attempts() != int64(st.Requests) {
		t.Fatalf("limiter let out %d attempts, the emulator received %d", lim.Attempts(), st.Requests)
	}
	if lim.ThrottledCount() != int64(st.Throttled) {
		t.Fatalf("limiter saw %d throttles, the emulator answered %d", lim.ThrottledCount(), st.Throttled)
	}
}

func TestThrottlingSlowsAndSuccessRestores(t *testing.T) {
	l := pace.NewLimiter(2)
	l.Throttled()
	if r := l.Rate(); r != 1.6 {
		t.Fatalf("rate after a throttle %v, want 1.6", r)
	}
	l.Throttled() // within the same second: counted, not cut again
	if r := l.Rate(); r != 1.6 || l.ThrottledCount() != 2 {
		t.Fatalf("rate %v, throttled %d; want 1.6 and 2", l.Rate(), l.ThrottledCount())
	}
	for range 5 {
		l.Succeeded()
	}
	if r := l.Rate(); r != 2 {
		t.Fatalf("rate after 5 successes %v, want back at 2", r)
	}
	if pace.NewLimiter(0).Max() != pace.MaxRate {
		t.Fatal("a zero rate must mean the quota")
	}
}

func TestLatencyIsMeasuredAfterTheWait(t *testing.T) {
	t.Parallel()
	l := pace.NewLimiter(2)
	if _, _, ok := l.Latency(); ok {
		t.Fatal("a latency before any answer")
	}
	for _, tc := range []struct {
		name       string
		observe    []time.Duration
		mean, high time.Duration
	}{
		{"one answer: a tenth above it", []time.Duration{4 * time.Second}, 4 * time.Second, 4400 * time.Millisecond},
		{"steady answers narrow the spread", []time.Duration{4 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}, 4 * time.Second, 4100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := pace.NewLimiter(2)
			for _, d := range tc.observe {
				l.Observe(d)
			}
			mean, high, ok := l.Latency()
			if !ok || mean.Round(time.Millisecond) != tc.mean || high.Round(time.Millisecond) != tc.high {
				t.Fatalf("Latency() = %s, %s, %v; want %s, %s", mean, high, ok, tc.mean, tc.high)
			}
		})
	}
}

// fakeAPI answers every request after latency, with an empty page.
type fakeAPI struct{ latency time.Duration }

func (f fakeAPI) Do(req *http.Request) (*http.Response, error) {
	time.Sleep(f.latency)
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Request: req,
		Header: http.Header{"Content-Type": []string{"application/x-amz-json-1.1"}},
		Body:   io.NopCloser(strings.NewReader(`{"Events":[]}`)),
	}, nil
}

// The middleware measures each answered attempt from the moment the limiter
// let it out: the API's latency, not the wait for quota. (Virtual time: the
// waits and the latency are exact.)
func TestMiddlewareMeasuresTheRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := pace.NewLimiter(2)
		client := cloudtrail.New(cloudtrail.Options{
			Region:      "eu-west-1",
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
			HTTPClient:  fakeAPI{latency: 100 * time.Millisecond},
			Retryer:     aws.NopRetryer{},
			APIOptions:  []func(*middleware.Stack) error{pace.Middleware(lim)},
		})
		began := time.Now()
		for range 3 { // the 2nd and 3rd wait 0.4 s each for quota
			if _, err := client.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(began); took != 1100*time.Millisecond {
			t.Fatalf("three requests took %s, want 1.1 s (two waits for quota and the last answer)", took)
		}
		mean, _, ok := lim.Latency()
		if !ok || mean != 100*time.Millisecond {
			t.Fatalf("measured latency %s (ok %v), want the API's 100 ms, not the wait for quota", mean, ok)
		}
	})
}
