package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine/local"
)

// fakeExecution is a Step Functions execution that runs for a number of
// polls and then succeeds: an in-memory fake for the watch loop's schedule
// (the wire-level behaviour is TestStartWatchVerifyEndToEnd's).
type fakeExecution struct {
	StepFunctionsAPI
	input    string
	running  int // DescribeExecution answers RUNNING this many times
	mu       sync.Mutex
	describe int
}

func (f *fakeExecution) DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describe++
	status := sfntypes.ExecutionStatusRunning
	if f.describe > f.running {
		status = sfntypes.ExecutionStatusSucceeded
	}
	return &sfn.DescribeExecutionOutput{Name: aws.String("x"), Status: status, Input: aws.String(f.input), Output: aws.String(`{"partitions":[],"events":0,"failed":0}`)}, nil
}

func (f *fakeExecution) ListMapRuns(context.Context, *sfn.ListMapRunsInput, ...func(*sfn.Options)) (*sfn.ListMapRunsOutput, error) {
	return &sfn.ListMapRunsOutput{}, nil
}

// listCounter counts the archive listings.
type listCounter struct {
	archive.Store
	mu    sync.Mutex
	lists int
}

func (l *listCounter) List(ctx context.Context, prefix string) ([]string, error) {
	l.mu.Lock()
	l.lists++
	l.mu.Unlock()
	return l.Store.List(ctx, prefix)
}

// TestWatchScansManifestsLessOftenThanItPolls: the manifests are listed on
// the first poll, every --scan-interval worth of polls, and on the last.
func TestWatchScansManifestsLessOftenThanItPolls(t *testing.T) {
	t.Parallel()
	in, err := json.Marshal(contract.ExecutionInput{
		Partitions: []contract.Partition{{Account: acctCentral, Region: "us-east-1"}, {Account: acctCentral, Region: "eu-west-1"}},
		Start:      tfStart.Format(time.RFC3339), End: tfEnd.Format(time.RFC3339), WindowMinutes: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                   string
		interval, scanInterval time.Duration
		running                int
		scans                  int
	}{
		// Polls 0..30 (30 running, then the end): scans at 0, 12, 24 and 30.
		{"a minute at 5 s polls", 5 * time.Second, time.Minute, 30, 4},
		{"every poll", 5 * time.Second, 5 * time.Second, 30, 31},
		{"rounded up to whole polls", 25 * time.Second, time.Minute, 9, 4}, // every 3rd: 0, 3, 6, 9
		{"ended at once", 5 * time.Second, time.Minute, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, err := archive.NewLocalStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			store := &listCounter{Store: base}
			fake := &fakeExecution{input: string(in), running: tc.running}
			var stderr bytes.Buffer
			clock := local.NewFakeClock(tfNow)
			w := &watcher{env: &Env{Stderr: &stderr, ProgressEvery: time.Hour}, sfn: fake, store: store,
				interval: tc.interval, scanEvery: scanEvery(tc.interval, tc.scanInterval), clock: clock}
			if err := w.watch(context.Background(), "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:x"); err != nil {
				t.Fatal(err)
			}
			if fake.describe != tc.running+1 {
				t.Fatalf("%d polls, want %d", fake.describe, tc.running+1)
			}
			// One LIST per partition (neither complete) per scan.
			if store.lists != 2*tc.scans {
				t.Errorf("%d LIST requests, want %d (%d scans of 2 partitions)", store.lists, 2*tc.scans, tc.scans)
			}
			if got := len(clock.Sleeps()); got != tc.running {
				t.Errorf("%d waits, want %d", got, tc.running)
			}
			if !strings.Contains(stderr.String(), "progress: succeeded, starting the partitions; windows 0/12; 0 events archived") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
		})
	}
}
