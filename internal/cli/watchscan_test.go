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
	"github.com/trailfill/trailfill/internal/backfill"
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
	return &sfn.DescribeExecutionOutput{Name: aws.String("x"), Status: status, Input: aws.String(f.input), Output: aws.String(`{"partitions":2,"succeeded":2,"failed":0}`)}, nil
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
		PartitionsKey: contract.PartitionsObjectKey("x"), Partitions: 2,
		Start: tfStart.Format(time.RFC3339), End: tfEnd.Format(time.RFC3339), WindowMinutes: 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	staging := &local.MemS3{}
	if err := staging.PutObject(context.Background(), "staging", contract.PartitionsObjectKey("x"),
		[]byte(`[{"account":"`+acctCentral+`","region":"us-east-1"},{"account":"`+acctCentral+`","region":"eu-west-1"}]`)); err != nil {
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
			w := &watcher{env: &Env{Stderr: &stderr, ProgressEvery: time.Hour}, sfn: fake, store: store, staging: staging, bucket: "staging",
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

// endedExecution is an execution that has ended with a status, error, cause
// and output.
type endedExecution struct {
	StepFunctionsAPI
	out sfn.DescribeExecutionOutput
}

func (e *endedExecution) DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	out := e.out
	return &out, nil
}

func (e *endedExecution) ListMapRuns(context.Context, *sfn.ListMapRunsInput, ...func(*sfn.Options)) (*sfn.ListMapRunsOutput, error) {
	return &sfn.ListMapRunsOutput{}, nil
}

// TestWatchOutcomeFromTheResults: the outcome is read from the results in
// the staging bucket; when they cannot be read, watch says where they are
// and still exits with the execution's outcome.
func TestWatchOutcomeFromTheResults(t *testing.T) {
	t.Parallel()
	loc := contract.ResultsLocation{Bucket: "staging", Manifest: "results/x/m1/manifest.json"}
	cause, _ := json.Marshal(contract.FailureCause{Message: "1 of 2 partition(s) failed; see the FAILED files", ExecutionOutput: contract.ExecutionOutput{Partitions: 2, Succeeded: 1, Failed: 1, Results: loc}})
	output, _ := json.Marshal(contract.ExecutionOutput{Partitions: 2, Succeeded: 2, Results: loc})
	typed, _ := json.Marshal(contract.PartitionFailure{Account: acctNoRole, Region: "eu-west-1", Error: contract.ErrorPartition, Message: "assume denied"})
	failed, _ := json.Marshal([]map[string]string{{"Error": contract.ErrorPartitionFailed, "Cause": string(typed), "Status": "FAILED"}})
	results := &local.MemS3{}
	for k, v := range map[string]string{
		loc.Manifest:                    `{"DestinationBucket":"staging","ResultFiles":{"FAILED":[{"Key":"results/x/m1/FAILED_0.json"}],"SUCCEEDED":[{"Key":"results/x/m1/SUCCEEDED_0.json"}]}}`,
		"results/x/m1/FAILED_0.json":    string(failed),
		"results/x/m1/SUCCEEDED_0.json": `[{"account":"` + acctCentral + `","region":"eu-west-1","events":5,"windows":2,"windows_skipped":1},{"account":"` + acctCentral + `","region":"us-east-1","events":7,"windows":3}]`,
	} {
		if err := results.PutObject(context.Background(), "staging", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	ended := func(status sfntypes.ExecutionStatus, errName, cause, output string) *endedExecution {
		return &endedExecution{out: sfn.DescribeExecutionOutput{Name: aws.String("x"), Status: status, Error: aws.String(errName), Cause: aws.String(cause), Output: aws.String(output), Input: aws.String("{}")}}
	}
	for _, tc := range []struct {
		name     string
		exec     *endedExecution
		staging  backfill.ObjectGetter
		code     int
		wantLast []string
	}{
		{"failed, results read", ended(sfntypes.ExecutionStatusFailed, contract.ErrorPartitionsFailed, string(cause), ""), results, ExitFailed, []string{
			"trailfill: execution x failed: trailfill.PartitionsFailed",
			"  failed 333333333333/eu-west-1: PartitionError: assume denied",
			"trailfill: execution x failed: 1 partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)"}},
		{"failed, results unreadable", ended(sfntypes.ExecutionStatusFailed, contract.ErrorPartitionsFailed, string(cause), ""), &local.MemS3{}, ExitFailed, []string{
			"trailfill: execution x failed: trailfill.PartitionsFailed",
			"  1 of 2 partition(s) failed; see the FAILED files",
			"  the partitions' results could not be read (grant s3:GetObject on the staging bucket's results/*): read the results manifest s3://staging/results/x/m1/manifest.json: read s3://staging/results/x/m1/manifest.json: the specified bucket does not exist",
			"trailfill: execution x failed: 1 partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)"}},
		{"failed, no stack", ended(sfntypes.ExecutionStatusFailed, contract.ErrorPartitionsFailed, string(cause), ""), nil, ExitFailed, []string{
			"  1 of 2 partition(s) failed; see the FAILED files",
			"  the partitions' results are in s3://staging/results/x/m1/manifest.json (FAILED files): pass the --stack that started the execution to read them",
			"trailfill: execution x failed: 1 partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)"}},
		{"failed otherwise", ended(sfntypes.ExecutionStatusFailed, "States.ItemReaderFailed", "Attempting to map over\nnon-iterable node.", ""), results, ExitFailed, []string{
			"trailfill: execution x failed: States.ItemReaderFailed",
			"  Attempting to map over non-iterable node.",
			"trailfill: execution x failed: fix the cause above and start the same backfill again (archived windows are skipped)"}},
		{"succeeded", ended(sfntypes.ExecutionStatusSucceeded, "", "", string(output)), results, ExitOK, []string{
			"trailfill: execution x succeeded: 2 partition(s), 5 window(s) archived, 1 already archived, 12 events"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			env := &Env{Stderr: &stderr}
			w := &watcher{env: env, sfn: tc.exec, staging: tc.staging, bucket: "staging", interval: time.Second, scanEvery: 1, clock: local.NewFakeClock(tfNow)}
			code := report(env, w.watch(context.Background(), "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:x"))
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if code != tc.code || len(lines) < len(tc.wantLast) {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, stderr.String())
			}
			tail := lines[len(lines)-len(tc.wantLast):]
			if strings.Join(tail, "\n") != strings.Join(tc.wantLast, "\n") {
				t.Errorf("stderr ends\n%s\nwant\n%s", strings.Join(tail, "\n"), strings.Join(tc.wantLast, "\n"))
			}
		})
	}
}
