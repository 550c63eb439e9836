package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// partitionsCSV lists n partitions (account, region) as CSV with a header.
func partitionsCSV(n int) string {
	regions := []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1"}
	var b strings.Builder
	b.WriteString("account,region\n")
	for i := range n {
		fmt.Fprintf(&b, "%012d,%s\n", 100000000000+i/len(regions), regions[i%len(regions)])
	}
	return b.String()
}

// failingPartition says which partitions the stub backfill fails: every
// 40th, 50 of 2,000.
func failingPartition(account, region string) bool {
	var n int
	fmt.Sscanf(account, "%d", &n)
	i := (n-100000000000)*8 + map[string]int{"us-east-1": 0, "us-east-2": 1, "us-west-1": 2, "us-west-2": 3, "eu-west-1": 4, "eu-central-1": 5, "ap-south-1": 6, "ap-northeast-1": 7}[region]
	return i%40 == 7
}

// backfillStub answers like the backfill function: a summary, or an error
// naming the partition.
var backfillStub = InvokerFunc(func(_ context.Context, _, fn string, payload json.RawMessage) (json.RawMessage, error) {
	var p struct{ Account, Region string }
	if err := json.Unmarshal(payload, &p); err != nil || fn != "backfill" {
		return nil, fmt.Errorf("bad call %s %s", fn, payload)
	}
	if failingPartition(p.Account, p.Region) {
		return nil, &TaskError{Name: "Backfill.AccessDenied", Cause: fmt.Sprintf("partition %s/%s: not authorized to perform cloudtrail:LookupEvents", p.Account, p.Region)}
	}
	return json.Marshal(map[string]any{"account": p.Account, "region": p.Region, "events": 3, "done": true})
})

func TestDistributedMapAtScale(t *testing.T) {
	t.Parallel()
	def, err := os.ReadFile("testdata/partitions.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	m := mustLoad(t, string(def))
	const input = `{"staging_bucket": "staging", "partitions_key": "runs/r1/partitions.csv", "results_prefix": "runs/r1/results", "start": "2025-04-17T15:00:00Z"}`
	exec := func(t *testing.T, s3 *memS3) (*Result, *recorder) {
		t.Helper()
		rec := newRecorder()
		res, err := m.Execute(context.Background(), json.RawMessage(input), Options{
			Invoker: backfillStub, Clock: NewFakeClock(epoch), Observer: rec, S3: s3, MaxConcurrency: 200, ExecutionName: "scale",
		})
		if err != nil {
			t.Fatal(err)
		}
		return res, rec
	}

	t.Run("2,000 partitions, 50 failed", func(t *testing.T) {
		s3 := newMemS3("staging")
		s3.put("staging", "runs/r1/partitions.csv", partitionsCSV(2000))
		res, rec := exec(t, s3)
		wantStatus(t, res, StatusFailed)
		mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
		manifest := "runs/r1/results/" + mapRun[strings.LastIndex(mapRun, ":")+1:] + "/manifest.json"
		// The execution fails visibly with a small cause naming the results.
		wantCause := "50 of 2000 partitions failed; their errors are in s3://staging/" + manifest + " (FAILED files)"
		if res.Error != "trailfill.PartitionsFailed" || res.Cause != wantCause {
			t.Fatalf("error %s: %s\nwant cause %s", res.Error, res.Cause, wantCause)
		}

		// Every state output of every execution stays small.
		if s := res.Stats.MaxSizes; s.StateOutput.Bytes > 1024 || s.TaskResult.Bytes > 1024 || s.TaskArguments.Bytes > 1024 || s.Input.Bytes > 1024 {
			t.Fatalf("sizes %+v", s)
		}
		for _, d := range rec.details(res.Execution.ID, "MapStateExited") {
			if out := d["output"].(string); len(out) > 400 || !strings.Contains(out, manifest) {
				t.Fatalf("Map output %s", out)
			}
		}

		// The Map Run's counts, as describeMapRun answered them.
		checked := rec.details(res.Execution.ID, "TaskStateExited")[0]["output"].(string)
		jsonEqual(t, json.RawMessage(checked), `{"total": 2000, "succeeded": 1950, "failed": 50}`)
		counts := rec.mapRuns[mapRun]
		if last := counts[len(counts)-1]; last != (MapRunCounts{Total: 2000, Succeeded: 1950, Failed: 50, ResultsWritten: 2000}) {
			t.Fatalf("counts %v", last)
		}

		// The results in S3: FAILED holds exactly the 50 failures, each
		// cause a JSON document naming its partition.
		var man struct {
			DestinationBucket string
			ResultFiles       map[string][]struct {
				Key  string
				Size int
			}
		}
		if err := json.Unmarshal(s3.object(t, "staging", manifest), &man); err != nil {
			t.Fatal(err)
		}
		if man.DestinationBucket != "staging" || len(man.ResultFiles["FAILED"]) != 1 || len(man.ResultFiles["SUCCEEDED"]) != 1 || len(man.ResultFiles["PENDING"]) != 0 {
			t.Fatalf("manifest %+v", man)
		}
		failed := decodeList(t, s3.object(t, "staging", man.ResultFiles["FAILED"][0].Key))
		if len(failed) != 50 {
			t.Fatalf("%d failures in FAILED_0.json", len(failed))
		}
		seen := map[string]bool{}
		for _, f := range failed {
			var cause struct{ Account, Region, Error, Cause string }
			if err := json.Unmarshal([]byte(f["Cause"].(string)), &cause); err != nil {
				t.Fatalf("cause %v is not JSON: %v", f["Cause"], err)
			}
			if f["Error"] != "trailfill.PartitionFailed" || f["Status"] != "FAILED" || !failingPartition(cause.Account, cause.Region) ||
				cause.Error != "Backfill.AccessDenied" || cause.Cause != fmt.Sprintf("partition %s/%s: not authorized to perform cloudtrail:LookupEvents", cause.Account, cause.Region) {
				t.Fatalf("failure entry %v", f)
			}
			seen[cause.Account+"/"+cause.Region] = true
		}
		if len(seen) != 50 {
			t.Fatalf("%d distinct failed partitions", len(seen))
		}
		succeeded := decodeList(t, s3.object(t, "staging", man.ResultFiles["SUCCEEDED"][0].Key))
		if len(succeeded) != 1950 {
			t.Fatalf("%d results in SUCCEEDED_0.json", len(succeeded))
		}
		for _, s := range succeeded {
			var out struct {
				Account, Region string
				Events          int
			}
			if err := json.Unmarshal([]byte(s["Output"].(string)), &out); err != nil || failingPartition(out.Account, out.Region) || out.Events != 3 {
				t.Fatalf("success entry %v", s)
			}
		}

		// History: the parent's is 16 events whatever the partition count;
		// a child's at most 9.
		if res.Stats.HistoryEvents != 16 || res.Stats.MaxHistoryEvents != 16 || res.Stats.Executions != 2001 ||
			res.Stats.StateTransitions != 4 || res.Stats.TotalTransitions != 4+2000*2 || res.Stats.TaskInvocations != 2000 {
			t.Fatalf("stats %+v", res.Stats)
		}
		for _, c := range rec.children(res.Execution.ID)[:20] {
			if n := len(rec.types(c.ID)); n > 9 {
				t.Fatalf("child %s has %d events", c.ID, n)
			}
		}
	})

	t.Run("no partition failed", func(t *testing.T) {
		s3 := newMemS3("staging")
		// Partitions 0-6 of the CSV: none fails.
		s3.put("staging", "runs/r1/partitions.csv", partitionsCSV(7))
		res, _ := exec(t, s3)
		wantStatus(t, res, StatusSucceeded)
		var out struct {
			Total, Succeeded, Failed int
			Results                  struct{ Bucket, Key string }
		}
		if err := json.Unmarshal(res.Output, &out); err != nil || out.Total != 7 || out.Succeeded != 7 || out.Failed != 0 ||
			out.Results.Bucket != "staging" || !strings.HasSuffix(out.Results.Key, "/manifest.json") {
			t.Fatalf("output %s (%v)", res.Output, err)
		}
	})
}
