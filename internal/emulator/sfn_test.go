package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/trailfill/trailfill/statemachine/local"
)

const (
	testMachineArn = "arn:aws:states:us-east-1:111111111111:stateMachine:fan"
	// testDefinition fans out over items in a Distributed Map; each child
	// invokes "double" and fails the execution if any result is negative.
	testDefinition = `{
  "QueryLanguage": "JSONata",
  "StartAt": "Fan out",
  "States": {
    "Fan out": {
      "Type": "Map",
      "Items": "{% $states.input.items %}",
      "Label": "Item",
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Double",
        "States": {
          "Double": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"FunctionName": "double", "Payload": "{% $states.input %}"},
            "Output": "{% $states.result.Payload %}",
            "End": true
          }
        }
      },
      "Output": "{% {\"values\": $states.result} %}",
      "Next": "Any negative?"
    },
    "Any negative?": {
      "Type": "Choice",
      "Choices": [{"Condition": "{% $count($states.input.values[$ < 0]) > 0 %}", "Next": "Negative"}],
      "Default": "Done"
    },
    "Negative": {"Type": "Fail", "Error": "Test.Negative", "Cause": "{% 'negative values: ' & $join($string($states.input.values[$ < 0]), ',') %}"},
    "Done": {"Type": "Succeed"}
  }
}`
)

// doubler doubles numbers; it blocks on gate (if not nil) after reporting
// its entry on entered.
type doubler struct {
	entered chan struct{}
	gate    chan struct{}
}

func (d *doubler) Invoke(ctx context.Context, _, fn string, payload json.RawMessage) (json.RawMessage, error) {
	if fn != "double" {
		return nil, &local.TaskError{Name: "Lambda.ResourceNotFoundException", Cause: fn}
	}
	if d.entered != nil {
		d.entered <- struct{}{}
	}
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var n float64
	if err := json.Unmarshal(payload, &n); err != nil {
		return nil, err
	}
	return json.Marshal(2 * n)
}

func sfnSetup(t *testing.T, inv local.Invoker) (*Server, *StepFunctions, *sfn.Client) {
	t.Helper()
	s := start(t, fast())
	sf := NewStepFunctions(s)
	t.Cleanup(sf.Close)
	if err := sf.AddStateMachine(testMachineArn, testDefinition, StateMachineOptions{Invoker: inv, Clock: local.NewFakeClock(time.Date(2025, 11, 23, 20, 0, 0, 0, time.UTC))}); err != nil {
		t.Fatal(err)
	}
	return s, sf, sfn.NewFromConfig(awsConfig(s, acctA, "us-east-1"))
}

func mapRunCounts(mr *sfn.DescribeMapRunOutput) string {
	i, e := mr.ItemCounts, mr.ExecutionCounts
	return fmt.Sprintf("total %d pending %d running %d succeeded %d failed %d aborted %d / total %d pending %d running %d succeeded %d failed %d aborted %d",
		i.Total, i.Pending, i.Running, i.Succeeded, i.Failed, i.Aborted, e.Total, e.Pending, e.Running, e.Succeeded, e.Failed, e.Aborted)
}

func history(t *testing.T, c *sfn.Client, arn string, reverse bool) []sfntypes.HistoryEvent {
	t.Helper()
	var all []sfntypes.HistoryEvent
	p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 3, ReverseOrder: reverse})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, page.Events...)
	}
	if want := (len(all) + 2) / 3; pages != want {
		t.Errorf("%d history pages for %d events at 3 per page, want %d", pages, len(all), want)
	}
	return all
}

func TestStepFunctionsExecutionLifecycle(t *testing.T) {
	d := &doubler{entered: make(chan struct{}, 3), gate: make(chan struct{})}
	_, sf, c := sfnSetup(t, d)
	ctx := context.Background()
	input := `{"items":[1,2,3]}`
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn), Name: aws.String("run-1"), Input: aws.String(input)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.ExecutionArn)
	if want := "arn:aws:states:us-east-1:111111111111:execution:fan:run-1"; arn != want {
		t.Fatalf("execution ARN %s, want %s", arn, want)
	}
	for range 3 {
		<-d.entered
	}
	// All three children run: the API shows it.
	desc, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Status != sfntypes.ExecutionStatusRunning || aws.ToString(desc.Input) != input || aws.ToString(desc.Name) != "run-1" ||
		aws.ToString(desc.StateMachineArn) != testMachineArn || desc.StopDate != nil || desc.Output != nil {
		t.Fatalf("running execution described as %+v", desc)
	}
	runs, err := c.ListMapRuns(ctx, &sfn.ListMapRunsInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.MapRuns) != 1 {
		t.Fatalf("%d map runs, want 1", len(runs.MapRuns))
	}
	mrArn := aws.ToString(runs.MapRuns[0].MapRunArn)
	if !strings.HasPrefix(mrArn, "arn:aws:states:us-east-1:111111111111:mapRun:fan/Item:") || aws.ToString(runs.MapRuns[0].ExecutionArn) != arn {
		t.Fatalf("map run %+v", runs.MapRuns[0])
	}
	mr, err := c.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: aws.String(mrArn)})
	if err != nil {
		t.Fatal(err)
	}
	if got := mapRunCounts(mr); mr.Status != sfntypes.MapRunStatusRunning || got != "total 3 pending 0 running 3 succeeded 0 failed 0 aborted 0 / total 3 pending 0 running 3 succeeded 0 failed 0 aborted 0" {
		t.Fatalf("running map run: %s %s", mr.Status, got)
	}

	// StartExecution is idempotent for the same name and input while running.
	again, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn), Name: aws.String("run-1"), Input: aws.String(input)})
	if err != nil || aws.ToString(again.ExecutionArn) != arn || !again.StartDate.Equal(*out.StartDate) {
		t.Fatalf("repeated start: %v %v", again, err)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn), Name: aws.String("run-1"), Input: aws.String(`{"items":[]}`)})
	var exists *sfntypes.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		t.Fatalf("same name, other input: %v, want ExecutionAlreadyExists", err)
	}

	close(d.gate)
	if status, err := sf.Wait(ctx, arn); err != nil || status != "SUCCEEDED" {
		t.Fatalf("wait: %s %v", status, err)
	}
	desc, err = c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Status != sfntypes.ExecutionStatusSucceeded || aws.ToString(desc.Output) != `{"values":[2,4,6]}` || desc.StopDate == nil || desc.StopDate.Before(*desc.StartDate) {
		t.Fatalf("finished execution described as status %s output %s stop %v", desc.Status, aws.ToString(desc.Output), desc.StopDate)
	}
	mr, err = c.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: aws.String(mrArn)})
	if err != nil {
		t.Fatal(err)
	}
	if got := mapRunCounts(mr); mr.Status != sfntypes.MapRunStatusSucceeded || mr.StopDate == nil || got != "total 3 pending 0 running 0 succeeded 3 failed 0 aborted 0 / total 3 pending 0 running 0 succeeded 3 failed 0 aborted 0" {
		t.Fatalf("finished map run: %s %s", mr.Status, got)
	}
	// A closed execution's name cannot be reused.
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn), Name: aws.String("run-1"), Input: aws.String(input)})
	if !errors.As(err, &exists) {
		t.Fatalf("restart of a closed execution: %v, want ExecutionAlreadyExists", err)
	}

	events := history(t, c, arn, false)
	var types []string
	for i, e := range events {
		types = append(types, string(e.Type))
		if e.Id != int64(i+1) {
			t.Errorf("event %d has id %d", i, e.Id)
		}
	}
	want := "ExecutionStarted MapStateEntered MapStateStarted MapRunStarted MapRunSucceeded MapStateSucceeded MapStateExited ChoiceStateEntered ChoiceStateExited SucceedStateEntered SucceedStateExited ExecutionSucceeded"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("history:\n got %s\nwant %s", got, want)
	}
	if d := events[0].ExecutionStartedEventDetails; d == nil || aws.ToString(d.Input) != input {
		t.Errorf("ExecutionStarted details %+v", d)
	}
	if d := events[1].StateEnteredEventDetails; d == nil || aws.ToString(d.Name) != "Fan out" {
		t.Errorf("MapStateEntered details %+v", d)
	}
	if d := events[3].MapRunStartedEventDetails; d == nil || aws.ToString(d.MapRunArn) != mrArn {
		t.Errorf("MapRunStarted details %+v", d)
	}
	if d := events[11].ExecutionSucceededEventDetails; d == nil || aws.ToString(d.Output) != `{"values":[2,4,6]}` {
		t.Errorf("ExecutionSucceeded details %+v", d)
	}
	rev := history(t, c, arn, true)
	if len(rev) != len(events) || rev[0].Type != "ExecutionSucceeded" || rev[len(rev)-1].Type != "ExecutionStarted" {
		t.Errorf("reverse history: %d events, first %s", len(rev), rev[0].Type)
	}
	noData, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), IncludeExecutionData: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	if d := noData.Events[0].ExecutionStartedEventDetails; d == nil || d.Input != nil {
		t.Errorf("includeExecutionData=false still returns the input: %+v", d)
	}
	if got := sf.Executions(testMachineArn); len(got) != 1 || got[0] != arn {
		t.Errorf("executions %v", got)
	}
	if n := sf.Calls("StartExecution"); n != 4 {
		t.Errorf("%d StartExecution calls counted, want 4", n)
	}
}

func TestStepFunctionsFailedExecution(t *testing.T) {
	_, sf, c := sfnSetup(t, &doubler{})
	ctx := context.Background()
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn), Input: aws.String(`{"items":[1,-2,-3]}`)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.ExecutionArn)
	name := arn[strings.LastIndex(arn, ":")+1:]
	if len(name) != 36 || name[14] != '4' {
		t.Errorf("default execution name %q is not a UUID v4", name)
	}
	if status, err := sf.Wait(ctx, arn); err != nil || status != "FAILED" {
		t.Fatalf("wait: %s %v", status, err)
	}
	desc, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Status != sfntypes.ExecutionStatusFailed || aws.ToString(desc.Error) != "Test.Negative" || aws.ToString(desc.Cause) != "negative values: [-4,-6]" || desc.Output != nil {
		t.Fatalf("failed execution: %s %s %s", desc.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause))
	}
	events := history(t, c, arn, true)
	if events[0].Type != "ExecutionFailed" || aws.ToString(events[0].ExecutionFailedEventDetails.Cause) != "negative values: [-4,-6]" {
		t.Fatalf("last event %s %+v", events[0].Type, events[0].ExecutionFailedEventDetails)
	}
	if events[1].Type != "FailStateEntered" || !strings.Contains(aws.ToString(events[1].StateEnteredEventDetails.Input), `"values":[2,-4,-6]`) {
		t.Fatalf("event before last: %s %+v", events[1].Type, events[1].StateEnteredEventDetails)
	}
}

func TestStepFunctionsErrors(t *testing.T) {
	s, sf, c := sfnSetup(t, &doubler{})
	ctx := context.Background()
	code := func(err error) string {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		c, _ := apiCode(t, err)
		return c
	}
	start := func(arn, name, input string) error {
		in := &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(input)}
		if name != "" {
			in.Name = aws.String(name)
		}
		_, err := c.StartExecution(ctx, in)
		return err
	}
	for _, tc := range []struct {
		name, arn, exec, input, code string
	}{
		{"unknown machine", "arn:aws:states:us-east-1:111111111111:stateMachine:nope", "x", "{}", "StateMachineDoesNotExist"},
		{"malformed machine ARN", "arn:aws:states:us-east-1:111111111111:activity:nope", "x", "{}", "InvalidArn"},
		{"name with a space", testMachineArn, "a b", "{}", "InvalidName"},
		{"name with a colon", testMachineArn, "a:b", "{}", "InvalidName"},
		{"name of 81 characters", testMachineArn, strings.Repeat("n", 81), "{}", "InvalidName"},
		{"input not JSON", testMachineArn, "x", "{", "InvalidExecutionInput"},
		{"input too large", testMachineArn, "x", `{"a":"` + strings.Repeat("a", local.MaxPayloadBytes) + `"}`, "InvalidExecutionInput"},
	} {
		if got := code(start(tc.arn, tc.exec, tc.input)); got != tc.code {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.code)
		}
	}
	var notExist *sfntypes.StateMachineDoesNotExist
	if err := start("arn:aws:states:us-east-1:111111111111:stateMachine:nope", "x", "{}"); !errors.As(err, &notExist) {
		t.Errorf("unknown machine: %v is not a StateMachineDoesNotExist", err)
	}
	if err := start(testMachineArn, strings.Repeat("n", 80), `{"items":[]}`); err != nil {
		t.Errorf("name of 80 characters: %v", err)
	}

	missing := "arn:aws:states:us-east-1:111111111111:execution:fan:missing"
	_, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(missing)})
	var noExec *sfntypes.ExecutionDoesNotExist
	if !errors.As(err, &noExec) {
		t.Errorf("describe a missing execution: %v", err)
	}
	_, err = c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String("fan:missing")})
	if got := code(err); got != "InvalidArn" {
		t.Errorf("describe with a malformed ARN: %s", got)
	}
	_, err = c.ListMapRuns(ctx, &sfn.ListMapRunsInput{ExecutionArn: aws.String(missing)})
	if !errors.As(err, &noExec) {
		t.Errorf("list map runs of a missing execution: %v", err)
	}
	_, err = c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(missing)})
	if !errors.As(err, &noExec) {
		t.Errorf("history of a missing execution: %v", err)
	}
	_, err = c.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: aws.String("arn:aws:states:us-east-1:111111111111:mapRun:fan/Item:nope")})
	var notFound *sfntypes.ResourceNotFound
	if !errors.As(err, &notFound) {
		t.Errorf("describe a missing map run: %v", err)
	}
	arns := sf.Executions(testMachineArn)
	if len(arns) != 1 {
		t.Fatalf("executions %v", arns)
	}
	_, err = c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arns[0]), NextToken: aws.String("bogus")})
	if got := code(err); got != "InvalidToken" {
		t.Errorf("history with a bad token: %s", got)
	}
	// Unknown access keys are refused.
	bad := awsConfig(s, acctA, "us-east-1")
	bad.Credentials = credentials.NewStaticCredentialsProvider("AKIANOPE", "x", "")
	_, err = sfn.NewFromConfig(bad).DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arns[0])})
	if got := code(err); got != "UnrecognizedClientException" {
		t.Errorf("unknown key: %s", got)
	}
}

func TestStepFunctionsCloseAbortsRunning(t *testing.T) {
	d := &doubler{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	_, sf, c := sfnSetup(t, d)
	ctx := context.Background()
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn), Input: aws.String(`{"items":[1]}`)})
	if err != nil {
		t.Fatal(err)
	}
	<-d.entered
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sf.Close() }()
	status, err := sf.Wait(ctx, aws.ToString(out.ExecutionArn))
	wg.Wait()
	if err != nil || status != "ABORTED" {
		t.Fatalf("closed while running: %s %v", status, err)
	}
	if _, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(testMachineArn)}); err == nil {
		t.Fatal("start after close succeeded")
	}
}

func TestValidExecutionName(t *testing.T) {
	for name, want := range map[string]bool{
		"tf-111111111111-20250417T1500Z": true, "a_b-C.9": true, strings.Repeat("x", 80): true,
		"": false, strings.Repeat("x", 81): false, "a b": false, "a/b": false, "a\tb": false, "a\x7fb": false, "a{b": false,
	} {
		if got := validExecutionName(name); got != want {
			t.Errorf("validExecutionName(%q) = %v, want %v", name, got, want)
		}
	}
}
