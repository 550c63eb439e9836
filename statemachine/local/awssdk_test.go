package local

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestSDKGetObject(t *testing.T) {
	t.Parallel()
	def := `{"QueryLanguage": "JSONata", "StartAt": "Read", "States": {
	  "Read": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
	    "Arguments": {"Bucket": "{% $states.input.bucket %}", "Key": "{% $states.input.key %}"},
	    "Catch": [{"ErrorEquals": ["S3.NoSuchKeyException"], "Next": "Missing"}],
	    "Output": "{% $merge([$states.result, {'parsed': $parse($states.result.Body)}]) %}", "End": true},
	  "Missing": {"Type": "Pass", "End": true}}}`
	exec := func(t *testing.T, input string, s3 S3) (*Result, *recorder) {
		t.Helper()
		rec := newRecorder()
		res, err := mustLoad(t, def).Execute(context.Background(), json.RawMessage(input), Options{Clock: NewFakeClock(epoch), Observer: rec, S3: s3})
		if err != nil {
			t.Fatal(err)
		}
		return res, rec
	}
	t.Run("object as Step Functions returns it", func(t *testing.T) {
		s3 := newMemS3("b")
		s3.put("b", "doc.json", `{"failed": 2}`)
		res, rec := exec(t, `{"bucket": "b", "key": "doc.json"}`, s3)
		wantStatus(t, res, StatusSucceeded)
		// The ETag of a single-part upload is the MD5 of the body.
		jsonEqual(t, res.Output, `{"AcceptRanges": "bytes", "Body": "{\"failed\": 2}", "ContentLength": 13,
			"ContentType": "binary/octet-stream", "ETag": "\"e88e299d7066e2fc9c27affcabd86d8c\"", "Metadata": {}, "parsed": {"failed": 2}}`)
		equalStrings(t, "history", rec.types(res.Execution.ID), []string{"ExecutionStarted", "TaskStateEntered",
			"TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"})
		if d := rec.details(res.Execution.ID, "TaskScheduled")[0]; d["resourceType"] != "aws-sdk:s3" || d["resource"] != "getObject" ||
			d["parameters"] != `{"Bucket":"b","Key":"doc.json"}` || d["region"] != "us-east-1" {
			t.Fatalf("TaskScheduled %v", d)
		}
		if res.Stats.TaskInvocations != 0 || res.Stats.StateTransitions != 1 {
			t.Fatalf("stats %+v", res.Stats)
		}
	})
	t.Run("metadata from the store", func(t *testing.T) {
		d := DirS3{Root: t.TempDir()}
		if err := d.PutObject(context.Background(), "b", "k", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		res, _ := exec(t, `{"bucket": "b", "key": "k"}`, d)
		wantStatus(t, res, StatusSucceeded)
		var out map[string]any
		_ = json.Unmarshal(res.Output, &out)
		if lm, _ := out["LastModified"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(lm) {
			t.Fatalf("LastModified %v", out["LastModified"])
		}
	})
	t.Run("missing key is S3.NoSuchKeyException", func(t *testing.T) {
		res, rec := exec(t, `{"bucket": "b", "key": "nope"}`, newMemS3("b"))
		wantStatus(t, res, StatusSucceeded)
		var out map[string]string
		_ = json.Unmarshal(res.Output, &out)
		if out["Error"] != "S3.NoSuchKeyException" ||
			!regexp.MustCompile(`^The specified key does not exist\. \(Service: S3, Status Code: 404, Request ID: [0-9a-f-]{36}\)$`).MatchString(out["Cause"]) {
			t.Fatalf("output %v", out)
		}
		if d := rec.details(res.Execution.ID, "TaskFailed")[0]; d["resourceType"] != "aws-sdk:s3" || d["error"] != "S3.NoSuchKeyException" {
			t.Fatalf("TaskFailed %v", d)
		}
	})
	t.Run("missing bucket is S3.NoSuchBucketException", func(t *testing.T) {
		res, _ := exec(t, `{"bucket": "none", "key": "k"}`, newMemS3())
		wantStatus(t, res, StatusFailed)
		if res.Error != "S3.NoSuchBucketException" || !strings.HasPrefix(res.Cause, "The specified bucket does not exist (Service: S3, Status Code: 404") {
			t.Fatalf("error %s: %s", res.Error, res.Cause)
		}
	})
}

// checkDef fans out over items; a child fails for negative numbers; the
// Map tolerates every failure, exports the results and a describeMapRun
// Task reads the Map Run's counts.
const checkDef = `{"QueryLanguage": "JSONata", "StartAt": "Fan out", "States": {
  "Fan out": {"Type": "Map", "Items": "{% $states.input.items %}", "Label": "Item", "MaxConcurrency": 3,
    "ToleratedFailurePercentage": 100,
    "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Arguments": {"Bucket": "results", "Prefix": "checks"}},
    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Sign", "States": {
      "Sign": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input < 0 %}", "Next": "Negative"}], "Default": "Positive"},
      "Negative": {"Type": "Fail", "Error": "Item.Negative"},
      "Positive": {"Type": "Succeed"}}},
    "Next": "Counts"},
  "Counts": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:describeMapRun",
    "Arguments": {"MapRunArn": "{% $states.input.MapRunArn %}"}, "End": true}}}`

func TestSDKDescribeMapRun(t *testing.T) {
	t.Parallel()
	t.Run("counts of a Map Run of this execution", func(t *testing.T) {
		rec := newRecorder()
		res, err := mustLoad(t, checkDef).Execute(context.Background(), json.RawMessage(`{"items": [1, -2, 3, -4, 5]}`),
			Options{Clock: NewFakeClock(epoch), Observer: rec, S3: newMemS3("results")})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, res, StatusSucceeded)
		mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
		counts := `{"Aborted": 0, "Failed": 2, "FailuresNotRedrivable": 0, "Pending": 0, "PendingRedrive": 0, "ResultsWritten": 5,
			"Running": 0, "Succeeded": 3, "TimedOut": 0, "Total": 5}`
		jsonEqual(t, res.Output, `{"MapRunArn": "`+mapRun+`", "ExecutionArn": "`+res.Execution.ID+`", "Status": "SUCCEEDED",
			"StartDate": "2025-04-17T15:00:00.000Z", "StopDate": "2025-04-17T15:00:00.000Z", "MaxConcurrency": 3,
			"ToleratedFailurePercentage": 100, "ToleratedFailureCount": 0, "RedriveCount": 0,
			"ItemCounts": `+counts+`, "ExecutionCounts": `+counts+`}`)
		if d := rec.details(res.Execution.ID, "TaskSucceeded")[0]; d["resourceType"] != "aws-sdk:sfn" || d["resource"] != "describeMapRun" {
			t.Fatalf("TaskSucceeded %v", d)
		}
	})
	for _, tc := range []struct{ name, arn, err, cause string }{
		{"unknown Map Run", "arn:aws:states:us-east-1:123456789012:mapRun:trailfill/Item:0000", "Sfn.ResourceNotFoundException",
			`^Resource not found: 'arn:aws:states:us-east-1:123456789012:mapRun:trailfill/Item:0000' \(Service: Sfn, Status Code: 400, Request ID: [0-9a-f-]{36}\)$`},
		{"not a Map Run ARN", "arn:aws:states:us-east-1:123456789012:execution:trailfill:x", "Sfn.InvalidArnException",
			`^Invalid Arn: 'Resource type not valid in this context: arn:aws:states:us-east-1:123456789012:execution:trailfill:x' \(Service: Sfn`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:describeMapRun", "Arguments": {"MapRunArn": "{% $states.input %}"}, "End": true}`)
			res, err := mustLoad(t, def).Execute(context.Background(), json.RawMessage(`"`+tc.arn+`"`), Options{Clock: NewFakeClock(epoch)})
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, res, StatusFailed)
			if res.Error != tc.err || !regexp.MustCompile(tc.cause).MatchString(res.Cause) {
				t.Fatalf("error %s: %s", res.Error, res.Cause)
			}
		})
	}
}

func TestStatsSizes(t *testing.T) {
	t.Parallel()
	def := `{"QueryLanguage": "JSONata", "StartAt": "Fan out", "States": {
	  "Fan out": {"Type": "Map", "Items": "{% $states.input.items %}",
	    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Call", "States": {
	      "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	        "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"}, "Output": "{% $states.result.Payload.n %}", "End": true}}},
	    "Output": "{% $sum($states.result) %}", "End": true}}}`
	// The function answers {"pad": <n x's>, "n": n}.
	inv := InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		var n int
		_ = json.Unmarshal(payload, &n)
		return json.Marshal(map[string]any{"pad": strings.Repeat("x", n), "n": n})
	})
	input := `{"items": [10, 1000, 100]}`
	res, err := mustLoad(t, def).Execute(context.Background(), json.RawMessage(input), Options{Invoker: inv, Clock: NewFakeClock(epoch), MaxConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `1110`)
	// The parent: its input, and the Map's output "1110".
	if s := res.Stats.Sizes; s.Input.Bytes != len(input) || s.StateOutput.Bytes != 4 || s.StateOutput.State != "Fan out" || s.TaskArguments.Bytes != 0 {
		t.Fatalf("parent sizes %+v", s)
	}
	// Over the tree: the child of item 1000 sent {"FunctionName":"f","Payload":1000}
	// (35 bytes) and received the result with its 1,000-character pad.
	result := len(`{"ExecutedVersion":"$LATEST","Payload":{"n":1000,"pad":""},"StatusCode":200}`) + 1000
	s := res.Stats.MaxSizes
	if s.TaskArguments.Bytes != 35 || s.TaskArguments.State != "Call" || s.TaskResult.Bytes != result || s.TaskResult.State != "Call" ||
		s.TaskResult.Execution == res.Execution.ID || s.Input.Bytes != len(input) || s.StateOutput.Bytes != 4 {
		t.Fatalf("tree sizes %+v (want a task result of %d)", s, result)
	}
	if s.TaskResult.Execution != s.TaskArguments.Execution {
		t.Fatalf("the largest request and result are from different children: %+v", s)
	}
}
