package backfill_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine/local"
)

var (
	rStart = time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	rEnd   = rStart.Add(2 * time.Hour)
)

// stub answers like the backfill function: a partition whose account ends
// in 1 fails with a Lambda error document, one ending in 2 times out (its
// cause is Step Functions' text, not a document), the others finish in two
// invocations.
var stub = local.InvokerFunc(func(ctx context.Context, _, fn string, payload json.RawMessage) (json.RawMessage, error) {
	var in contract.Invocation
	if err := json.Unmarshal(payload, &in); err != nil || fn != contract.LocalFunctionName {
		return nil, fmt.Errorf("bad call %s %s", fn, payload)
	}
	switch in.Account[11] {
	case '1':
		cause, _ := json.Marshal(contract.LambdaErrorCause{ErrorType: contract.ErrorPartition, ErrorMessage: "partition " + in.Account + "/" + in.Region + ": window 2025-11-22T10:30:00Z: access denied"})
		return nil, &local.TaskError{Name: contract.ErrorPartition, Cause: string(cause)}
	case '2':
		return nil, &local.TaskError{Name: "States.Timeout", Cause: "Task timed out after 960.00 seconds"}
	}
	in.Cursor.Invocations++
	in.Cursor.Events += 5
	in.Cursor.Files++
	in.Cursor.Windows += 2
	in.Cursor.WindowsTotal = 4
	in.Done = in.Cursor.Invocations == 2
	return json.Marshal(in)
})

func partitions(accounts ...string) []contract.Partition {
	var out []contract.Partition
	for _, a := range accounts {
		for _, r := range []string{"eu-west-1", "us-east-1"} {
			out = append(out, contract.Partition{Account: a, Region: r})
		}
	}
	return out
}

func execute(t *testing.T, staging local.S3, parts []contract.Partition, all bool) *backfill.LocalOutcome {
	t.Helper()
	out, err := backfill.LocalExecution{
		Name: "exec-1", Partitions: parts, Staging: staging, AllResults: all,
		Input:   contract.ExecutionInput{Start: rStart.Format(time.RFC3339), End: rEnd.Format(time.RFC3339), WindowMinutes: 30, RoleName: contract.DefaultRoleName, MaxConcurrency: 3},
		Options: local.Options{Invoker: stub, Clock: local.NewFakeClock(rEnd.Add(time.Hour))},
	}.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLocalExecutionResults runs the embedded definition: the partitions are
// read from the staging bucket, a partition that fails for good fails its
// child with a typed cause, the execution fails with a small typed cause
// that locates the results, and the results name every failure.
func TestLocalExecutionResults(t *testing.T) {
	t.Parallel()
	t.Run("failures", func(t *testing.T) {
		t.Parallel()
		staging := &local.MemS3{}
		out := execute(t, staging, partitions("100000000000", "100000000001", "100000000002"), false)
		if out.Status != local.StatusFailed || out.Error != contract.ErrorPartitionsFailed {
			t.Fatalf("execution %s %s: %s", out.Status, out.Error, out.Cause)
		}
		// The partitions object is where the input says.
		body, err := staging.GetObject(context.Background(), contract.LocalStagingBucket, "inputs/exec-1/partitions.json")
		if err != nil || out.PartitionsObject != len(body) || !strings.HasPrefix(string(body), `[{"account":"100000000000","region":"eu-west-1"},`) {
			t.Fatalf("partitions object %s (%v)", body, err)
		}
		cause, err := contract.DecodeFailureCause(out.Cause)
		if err != nil {
			t.Fatal(err)
		}
		manifest := cause.Results.Manifest
		if cause.Partitions != 6 || cause.Succeeded != 2 || cause.Failed != 4 || cause.Results.Bucket != contract.LocalStagingBucket ||
			!strings.HasPrefix(manifest, contract.ResultsPrefix("exec-1")+"/") || !strings.HasSuffix(manifest, "/manifest.json") {
			t.Fatalf("cause %+v", cause)
		}
		if want := "4 of 6 partition(s) failed; each failure (account, region, error, message) is in the FAILED files that s3://staging/" + manifest +
			" lists; re-run the same backfill to resume (archived windows are skipped)"; cause.Message != want {
			t.Errorf("message %q, want %q", cause.Message, want)
		}
		if out.Results.Succeeded != nil || out.Results.Pending != 0 {
			t.Errorf("results %+v: SUCCEEDED files read without AllResults", out.Results)
		}
		want := []contract.PartitionFailure{
			{Account: "100000000001", Region: "eu-west-1", Start: rStart.Format(time.RFC3339), End: rEnd.Format(time.RFC3339), Error: contract.ErrorPartition, Message: "partition 100000000001/eu-west-1: window 2025-11-22T10:30:00Z: access denied"},
			{Account: "100000000001", Region: "us-east-1", Start: rStart.Format(time.RFC3339), End: rEnd.Format(time.RFC3339), Error: contract.ErrorPartition, Message: "partition 100000000001/us-east-1: window 2025-11-22T10:30:00Z: access denied"},
			{Account: "100000000002", Region: "eu-west-1", Start: rStart.Format(time.RFC3339), End: rEnd.Format(time.RFC3339), Error: "States.Timeout", Message: "Task timed out after 960.00 seconds"},
			{Account: "100000000002", Region: "us-east-1", Start: rStart.Format(time.RFC3339), End: rEnd.Format(time.RFC3339), Error: "States.Timeout", Message: "Task timed out after 960.00 seconds"},
		}
		if !reflect.DeepEqual(out.Results.Failed, want) {
			t.Errorf("failures\n got %+v\nwant %+v", out.Results.Failed, want)
		}
		// Every state output and the cause stay small.
		if n := out.Stats.MaxSizes.StateOutput.Bytes; n > 1024 || len(out.Cause) > 1024 {
			t.Errorf("largest state output %d bytes, cause %d bytes", n, len(out.Cause))
		}
	})
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		out := execute(t, &local.MemS3{}, partitions("100000000000", "100000000003"), true)
		if out.Status != local.StatusSucceeded || out.Outcome.Partitions != 4 || out.Outcome.Succeeded != 4 || out.Outcome.Failed != 0 || len(out.Results.Failed) != 0 {
			t.Fatalf("outcome %s %+v %+v", out.Status, out.Outcome, out.Results)
		}
		for i, s := range out.Results.Succeeded {
			p := partitions("100000000000", "100000000003")[i]
			if (s != contract.PartitionSummary{Account: p.Account, Region: p.Region, Events: 10, Files: 2, Windows: 4, WindowsTotal: 4, Invocations: 2}) {
				t.Errorf("summary %d: %+v", i, s)
			}
		}
		if events, windows, skipped := backfill.Totals(out.Results.Succeeded); events != 40 || windows != 16 || skipped != 0 || len(out.Results.Succeeded) != 4 {
			t.Errorf("totals %d events, %d windows, %d skipped over %d", events, windows, skipped, len(out.Results.Succeeded))
		}
	})
}

// getter is an ObjectGetter over a map of keys.
type getter map[string]string

func (g getter) GetObject(_ context.Context, bucket, key string) ([]byte, error) {
	body, ok := g[bucket+"/"+key]
	if !ok {
		return nil, fmt.Errorf("s3://%s/%s: %w", bucket, key, local.ErrNoSuchKey)
	}
	return []byte(body), nil
}

// TestReadResults reads the ResultWriter's files as Step Functions writes
// them: several files per group, JSON or JSON Lines, failures the state
// machine did not type (a full history, an abort), pending children.
func TestReadResults(t *testing.T) {
	t.Parallel()
	loc := contract.ResultsLocation{Bucket: "b", Manifest: "results/x/m1/manifest.json"}
	typed, _ := json.Marshal(contract.PartitionFailure{Account: "111111111111", Region: "eu-west-1", Error: contract.ErrorPartition, Message: "denied", Events: 3, Windows: 1, WindowsTotal: 4, Invocations: 1})
	input := `{"account":"222222222222","region":"us-east-1","start":"2025-11-22T10:00:00Z","end":"2025-11-22T12:00:00Z","cursor":{"invocations":0}}`
	failed0, _ := json.Marshal([]map[string]any{
		{"Error": contract.ErrorPartitionFailed, "Cause": string(typed), "Input": `{"account":"111111111111","region":"eu-west-1"}`, "Status": "FAILED"},
		{"Error": "States.Runtime", "Cause": "The execution reached the maximum number of history events (25000).", "Input": input, "Status": "FAILED"},
	})
	failed1, _ := json.Marshal(map[string]any{"Input": input, "Status": "ABORTED", "Name": "c3"})
	pending, _ := json.Marshal([]map[string]any{{"Input": `{"account":"333333333333","region":"us-east-1"}`, "Status": "PENDING"}})
	g := getter{
		"b/" + loc.Manifest: `{"DestinationBucket":"b","MapRunArn":"arn:aws:states:us-east-1:111111111111:mapRun:m/Partition:m1","ResultFiles":{` +
			`"FAILED":[{"Key":"results/x/m1/FAILED_0.json","Size":1},{"Key":"results/x/m1/FAILED_1.json","Size":1}],` +
			`"PENDING":[{"Key":"results/x/m1/PENDING_0.json","Size":1}],` +
			`"SUCCEEDED":[{"Key":"results/x/m1/SUCCEEDED_0.json","Size":1},{"Key":"results/x/m1/SUCCEEDED_1.json","Size":1}]}}`,
		"b/results/x/m1/FAILED_0.json":    string(failed0),
		"b/results/x/m1/FAILED_1.json":    string(failed1) + "\n", // JSON Lines
		"b/results/x/m1/PENDING_0.json":   string(pending),
		"b/results/x/m1/SUCCEEDED_0.json": `[{"account":"444444444444","region":"eu-west-1","events":7,"windows":2,"windows_skipped":1}]`,
		"b/results/x/m1/SUCCEEDED_1.json": `[]`,
	}
	res, err := backfill.ReadResults(context.Background(), g, loc, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []contract.PartitionFailure{
		{Account: "111111111111", Region: "eu-west-1", Error: contract.ErrorPartition, Message: "denied", Events: 3, Windows: 1, WindowsTotal: 4, Invocations: 1},
		{Account: "222222222222", Region: "us-east-1", Start: "2025-11-22T10:00:00Z", End: "2025-11-22T12:00:00Z", Error: "States.Runtime", Message: "The execution reached the maximum number of history events (25000)."},
		{Account: "222222222222", Region: "us-east-1", Start: "2025-11-22T10:00:00Z", End: "2025-11-22T12:00:00Z", Error: "States.Aborted", Message: "child execution c3 ended ABORTED"},
	}
	if !reflect.DeepEqual(res.Failed, want) || res.Pending != 1 || len(res.Succeeded) != 1 || res.Succeeded[0].Events != 7 || res.Location != loc {
		t.Errorf("results %+v", res)
	}

	for _, tc := range []struct {
		name, key, body, want string
	}{
		{"no manifest", loc.Manifest, "", "read the results manifest s3://b/results/x/m1/manifest.json"},
		{"a file not JSON", "results/x/m1/FAILED_1.json", "{", "decode the results file s3://b/results/x/m1/FAILED_1.json"},
		{"trailing data", "results/x/m1/SUCCEEDED_1.json", "[] x", "decode the results file s3://b/results/x/m1/SUCCEEDED_1.json"},
		{"a file missing", "results/x/m1/PENDING_0.json", "", "read the results file s3://b/results/x/m1/PENDING_0.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := getter{}
			for k, v := range g {
				bad[k] = v
			}
			if tc.body == "" {
				delete(bad, "b/"+tc.key)
			} else {
				bad["b/"+tc.key] = tc.body
			}
			_, err := backfill.ReadResults(context.Background(), bad, loc, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.body == "" && !errors.Is(err, local.ErrNoSuchKey) {
				t.Errorf("error %v does not wrap the getter's", err)
			}
		})
	}
}
