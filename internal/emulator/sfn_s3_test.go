package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/trailfill/trailfill/statemachine/local"
)

const scaleMachineArn = "arn:aws:states:us-east-1:111111111111:stateMachine:backfill"

var scaleRegions = []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1"}

// scalePartitions is a CSV of n partitions: accounts 100000000000 and up,
// eight regions each.
func scalePartitions(n int) string {
	var b strings.Builder
	b.WriteString("account,region\n")
	for i := range n {
		fmt.Fprintf(&b, "%012d,%s\n", 100000000000+i/len(scaleRegions), scaleRegions[i%len(scaleRegions)])
	}
	return b.String()
}

// scaleFails says which partitions the stub fails: ap-south-1 of every
// fifth account (50 of 2,000).
func scaleFails(account, region string) bool {
	var n int
	_, _ = fmt.Sscanf(account, "%d", &n)
	return region == "ap-south-1" && (n-100000000000)%5 == 0
}

var scaleBackfill = local.InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
	var p struct{ Account, Region string }
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, err
	}
	if scaleFails(p.Account, p.Region) {
		return nil, &local.TaskError{Name: "Backfill.AccessDenied", Cause: "partition " + p.Account + "/" + p.Region + ": AccessDenied"}
	}
	return json.Marshal(map[string]any{"account": p.Account, "region": p.Region, "events": 3})
})

// TestStepFunctionsDistributedMapS3 runs the scale shape through the
// emulated API with the real SDK clients: partitions uploaded with the S3
// client, read by the ItemReader from the emulator's S3, results written
// there by the ResultWriter and read back with the S3 client.
func TestStepFunctionsDistributedMapS3(t *testing.T) {
	t.Parallel()
	def, err := os.ReadFile("../../statemachine/local/testdata/partitions.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	setup := func(t *testing.T, partitions int) (*Server, *StepFunctions, *sfn.Client, *s3.Client) {
		t.Helper()
		s := start(t, fast())
		if err := s.CreateBucket("staging"); err != nil {
			t.Fatal(err)
		}
		cfg := awsConfig(s, acctA, "us-east-1")
		s3c := s3Client(cfg)
		if _, err := s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("staging"), Key: aws.String("runs/r1/partitions.csv"),
			Body: strings.NewReader(scalePartitions(partitions))}); err != nil {
			t.Fatal(err)
		}
		sf := NewStepFunctions(s)
		t.Cleanup(sf.Close)
		if err := sf.AddStateMachine(scaleMachineArn, string(def), StateMachineOptions{
			Invoker: scaleBackfill, Clock: local.NewFakeClock(time.Date(2025, 11, 23, 20, 0, 0, 0, time.UTC)), MaxConcurrency: 200,
		}); err != nil {
			t.Fatal(err)
		}
		return s, sf, sfn.NewFromConfig(cfg), s3c
	}
	startRun := func(t *testing.T, sf *StepFunctions, c *sfn.Client) (string, string) {
		t.Helper()
		out, err := c.StartExecution(context.Background(), &sfn.StartExecutionInput{StateMachineArn: aws.String(scaleMachineArn), Name: aws.String("r1"),
			Input: aws.String(`{"staging_bucket": "staging", "partitions_key": "runs/r1/partitions.csv", "results_prefix": "runs/r1/results", "start": "2025-04-17T15:00:00Z"}`)})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(out.ExecutionArn)
		status, err := sf.Wait(context.Background(), arn)
		if err != nil {
			t.Fatal(err)
		}
		return arn, status
	}
	getObject := func(t *testing.T, c *s3.Client, key string) []byte {
		t.Helper()
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("staging"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("2,000 partitions, 50 failed", func(t *testing.T) {
		_, sf, c, s3c := setup(t, 2000)
		ctx := context.Background()
		arn, status := startRun(t, sf, c)
		if status != "FAILED" {
			t.Fatalf("status %s", status)
		}
		runs, err := c.ListMapRuns(ctx, &sfn.ListMapRunsInput{ExecutionArn: aws.String(arn)})
		if err != nil || len(runs.MapRuns) != 1 {
			t.Fatalf("map runs %+v %v", runs, err)
		}
		mapRun := aws.ToString(runs.MapRuns[0].MapRunArn)
		manifestKey := "runs/r1/results/" + mapRun[strings.LastIndex(mapRun, ":")+1:] + "/manifest.json"

		desc, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if want := "50 of 2000 partitions failed; their errors are in s3://staging/" + manifestKey + " (FAILED files)"; desc.Status != sfntypes.ExecutionStatusFailed ||
			aws.ToString(desc.Error) != "trailfill.PartitionsFailed" || aws.ToString(desc.Cause) != want {
			t.Fatalf("execution %s %s: %s\nwant cause %s", desc.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause), want)
		}
		mr, err := c.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: aws.String(mapRun)})
		if err != nil {
			t.Fatal(err)
		}
		if e := mr.ExecutionCounts; mr.Status != sfntypes.MapRunStatusSucceeded || e.Total != 2000 || e.Succeeded != 1950 || e.Failed != 50 || e.ResultsWritten != 2000 || e.Pending != 0 {
			t.Fatalf("map run %s %+v", mr.Status, e)
		}

		// The parent's history stays at 16 events, each payload small.
		events := history(t, c, arn, false)
		if len(events) != 16 {
			t.Fatalf("%d parent events", len(events))
		}
		for _, e := range events {
			if d := e.StateExitedEventDetails; d != nil && len(aws.ToString(d.Output)) > 400 {
				t.Fatalf("state %s output of %d bytes", aws.ToString(d.Name), len(aws.ToString(d.Output)))
			}
		}

		var manifest struct {
			DestinationBucket, MapRunArn string
			ResultFiles                  map[string][]struct {
				Key  string
				Size int
			}
		}
		if err := json.Unmarshal(getObject(t, s3c, manifestKey), &manifest); err != nil {
			t.Fatal(err)
		}
		if manifest.MapRunArn != mapRun || len(manifest.ResultFiles["FAILED"]) != 1 || len(manifest.ResultFiles["SUCCEEDED"]) != 1 {
			t.Fatalf("manifest %+v", manifest)
		}
		var failed []struct{ Error, Cause, Status, ExecutionArn, StateMachineArn string }
		body := getObject(t, s3c, manifest.ResultFiles["FAILED"][0].Key)
		if err := json.Unmarshal(body, &failed); err != nil || len(failed) != 50 || len(body) != manifest.ResultFiles["FAILED"][0].Size {
			t.Fatalf("%d failures (%v), %d bytes", len(failed), err, len(body))
		}
		seen := map[string]bool{}
		for _, f := range failed {
			var cause struct{ Account, Region, Error, Cause string }
			if err := json.Unmarshal([]byte(f.Cause), &cause); err != nil || f.Error != "trailfill.PartitionFailed" || !scaleFails(cause.Account, cause.Region) ||
				cause.Cause != "partition "+cause.Account+"/"+cause.Region+": AccessDenied" {
				t.Fatalf("failure %+v (%v)", f, err)
			}
			// The child is described by the API too.
			if !seen[cause.Account] {
				d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(f.ExecutionArn)})
				if err != nil || d.Status != sfntypes.ExecutionStatusFailed || aws.ToString(d.Cause) != f.Cause ||
					aws.ToString(d.StateMachineArn) != scaleMachineArn+"/Partition" || f.StateMachineArn != scaleMachineArn+"/Partition" {
					t.Fatalf("child %s: %+v %v", f.ExecutionArn, d, err)
				}
			}
			seen[cause.Account] = true
		}
		if len(seen) != 50 {
			t.Fatalf("%d distinct failed partitions", len(seen))
		}
		var succeeded []json.RawMessage
		if err := json.Unmarshal(getObject(t, s3c, manifest.ResultFiles["SUCCEEDED"][0].Key), &succeeded); err != nil || len(succeeded) != 1950 {
			t.Fatalf("%d successes (%v)", len(succeeded), err)
		}
	})

	t.Run("results that cannot be written", func(t *testing.T) {
		s, sf, c, _ := setup(t, 8)
		s.FailS3Puts(func(bucket, key string) bool { return strings.HasSuffix(key, "/manifest.json") }, -1)
		arn, status := startRun(t, sf, c)
		desc, err := c.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if status != "FAILED" || aws.ToString(desc.Error) != "States.ResultWriterFailed" ||
			!strings.Contains(aws.ToString(desc.Cause), "Unable to write the Map Run results to s3://staging/runs/r1/results/") {
			t.Fatalf("execution %s %s: %s", status, aws.ToString(desc.Error), aws.ToString(desc.Cause))
		}
		if s.S3PutFailures() != 1 {
			t.Fatalf("%d failed writes", s.S3PutFailures())
		}
	})
}

func TestLocalS3(t *testing.T) {
	t.Parallel()
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := s.LocalS3()
	t.Run("written in-process, read over HTTP", func(t *testing.T) {
		if err := l.PutObject(ctx, "b", "dir/k.json", []byte(`{"a":1}`)); err != nil {
			t.Fatal(err)
		}
		out, err := s3Client(awsConfig(s, acctA, "us-east-1")).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("dir/k.json")})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(out.Body)
		out.Body.Close()
		obj, err := l.GetObjectInfo(ctx, "b", "dir/k.json")
		if err != nil || string(body) != `{"a":1}` || string(obj.Body) != `{"a":1}` || obj.ETag != aws.ToString(out.ETag) || obj.LastModified.IsZero() {
			t.Fatalf("object %q %+v (%v), HTTP ETag %s", body, obj, err, aws.ToString(out.ETag))
		}
	})
	t.Run("missing bucket and key", func(t *testing.T) {
		if _, err := l.GetObject(ctx, "b", "nope"); !errors.Is(err, local.ErrNoSuchKey) {
			t.Fatalf("missing key: %v", err)
		}
		if _, err := l.GetObject(ctx, "nope", "k"); !errors.Is(err, local.ErrNoSuchBucket) {
			t.Fatalf("missing bucket: %v", err)
		}
		if err := l.PutObject(ctx, "nope", "k", nil); !errors.Is(err, local.ErrNoSuchBucket) {
			t.Fatalf("put to a missing bucket: %v", err)
		}
	})
}
