package pace_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/sts"

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
