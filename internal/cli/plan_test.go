package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/plan"
)

var fourteenAccounts = "100000000001,100000000002,100000000003,100000000004,100000000005,100000000006,100000000007," +
	"100000000008,100000000009,100000000010,100000000011,100000000012,100000000013,100000000014"

func runPlan(t *testing.T, args ...string) plan.Plan {
	t.Helper()
	var stdout, stderr bytes.Buffer
	now := time.Date(2025, 11, 23, 20, 0, 0, 0, time.UTC)
	code := Main(context.Background(), append([]string{"plan", "--json"}, args...), &Env{Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return now }})
	if code != ExitOK {
		t.Fatalf("plan: exit %d: %s", code, stderr.String())
	}
	var p plan.Plan
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatalf("plan --json: %v: %s", err, stdout.String())
	}
	return p
}

func TestPlanBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--start", "2025-11-23T00:00:00Z", "--end", "2025-11-22T00:00:00Z"},
		{"--start", "2025-11-22T00:00:00Z", "--end", "2025-11-23T00:00:00Z", "--events-per-hour", "-1"},
		{"--start", "2025-11-22T00:00:00Z", "--end", "2025-11-23T00:00:00Z", "--regions", "moon-1"},
		{"--start", "2025-11-22T00:00:00Z", "--end", "2025-11-23T00:00:00Z", "--max-concurrency", "0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"plan"}, args...), &Env{Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return time.Date(2025, 11, 23, 20, 0, 0, 0, time.UTC) }})
			if code != ExitUsage || stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
			}
		})
	}
}

// The text plan names the payload sizes against the quota, the history of
// the parent and of the largest execution, and the concurrency the
// duration assumes.
func TestPlanText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	now := time.Date(2025, 11, 23, 20, 0, 0, 0, time.UTC)
	args := []string{"plan", "--start", "2025-11-22T00:00:00Z", "--end", "2025-11-23T00:00:00Z", "--accounts", fourteenAccounts, "--max-concurrency", "100", "--events-per-hour", "100"}
	if code := Main(context.Background(), args, &Env{Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return now }}); code != ExitOK {
		t.Fatalf("plan: exit %d: %s", code, stderr.String())
	}
	p := runPlan(t, args[1:]...)
	out := stdout.String()
	for _, want := range []string{
		"  partitions            238 (14 accounts x 17 regions)\n",
		// 100 events/h for 24 h: 48 pages per partition at 2 requests/s; 238 partitions in 3 rounds of 100.
		"  minimum duration      1m12s at 2 requests/s per partition, 100 partitions at a time\n",
		fmt.Sprintf("  history events        %d in the parent execution, at most %d in any execution (limit 25000 each)\n", p.ParentHistoryEvents, p.MaxHistoryEvents),
		fmt.Sprintf("  execution input       %d bytes (limit 262144); partitions object %d bytes in the staging bucket\n", p.Sizes.ExecutionInput, p.Sizes.PartitionsObject),
		fmt.Sprintf("  largest state output  %d bytes (Archive windows)\n", p.Sizes.StateOutput.Bytes),
		fmt.Sprintf("  largest task payload  %d bytes request (Archive windows), %d bytes result (%s)\n", p.Sizes.TaskRequest.Bytes, p.Sizes.TaskResult.Bytes, p.Sizes.TaskResult.State),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if p.MaxConcurrency != 100 || p.ParentHistoryEvents == 0 || p.Sizes.PartitionsObject == 0 || p.Sizes.ExecutionInput == 0 {
		t.Errorf("plan %+v", p)
	}
}
