package local

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// failing returns an Invoker that fails n times with err, then echoes.
func failing(n int32, err error) (Invoker, *atomic.Int32) {
	var calls atomic.Int32
	return InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		if calls.Add(1) <= n {
			return nil, err
		}
		return payload, nil
	}), &calls
}

func TestRetryBackoff(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	  "Arguments": {"FunctionName": "f", "Payload": {"retry": "{% $states.context.State.RetryCount %}"}},
	  "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2}],
	  "Output": "{% $states.result.Payload %}",
	  "End": true}}}`
	inv, calls := failing(3, &TaskError{Name: "Lambda.ServiceException", Cause: "try again"})
	res, rec, clock := run(t, def, `{}`, inv)
	wantStatus(t, res, StatusSucceeded)
	// The fourth attempt sees RetryCount 3.
	jsonEqual(t, res.Output, `{"retry": 3}`)
	if calls.Load() != 4 {
		t.Fatalf("calls %d", calls.Load())
	}
	// IntervalSeconds * BackoffRate^(attempt-1): 2 s, 4 s, 8 s.
	if got, want := clock.Sleeps(), []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
	// Hand-counted: 1 ExecutionStarted, 2 TaskStateEntered, then per attempt
	// TaskScheduled, TaskStarted, TaskFailed (3 attempts: 3-11), the last
	// attempt TaskScheduled, TaskStarted, TaskSucceeded (12-14),
	// 15 TaskStateExited, 16 ExecutionSucceeded.
	want := []string{"ExecutionStarted", "TaskStateEntered"}
	for range 3 {
		want = append(want, "TaskScheduled", "TaskStarted", "TaskFailed")
	}
	want = append(want, "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded")
	equalStrings(t, "events", rec.types(res.Execution.ID), want)
	// One transition for entering the state, one per retry.
	if res.Stats.HistoryEvents != 16 || res.Stats.StateTransitions != 4 || res.Stats.TaskInvocations != 4 {
		t.Fatalf("stats %+v", res.Stats)
	}
}

func TestRetryMaxDelayAndDefaults(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"},
	  "Retry": [
	    {"ErrorEquals": ["Capped"], "IntervalSeconds": 3, "BackoffRate": 3, "MaxDelaySeconds": 10, "MaxAttempts": 4},
	    {"ErrorEquals": ["States.ALL"]}
	  ],
	  "End": true}}}`
	inv, _ := failing(4, &TaskError{Name: "Capped"})
	res, _, clock := run(t, def, `{}`, inv)
	wantStatus(t, res, StatusSucceeded)
	// 3, 9, 27 -> 10, 81 -> 10.
	if got, want := clock.Sleeps(), []time.Duration{3 * time.Second, 9 * time.Second, 10 * time.Second, 10 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
	// Defaults: IntervalSeconds 1, BackoffRate 2, MaxAttempts 3.
	inv, calls := failing(10, errors.New("always"))
	res, _, clock = run(t, def, `{}`, inv)
	wantStatus(t, res, StatusFailed)
	if calls.Load() != 4 || res.Error != "errorString" {
		t.Fatalf("calls %d error %q", calls.Load(), res.Error)
	}
	if got, want := clock.Sleeps(), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
}

func TestRetryFirstMatchingRetrierDecides(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "Call", "States": {"Call": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"},
	  "Retry": [
	    {"ErrorEquals": ["Flaky"], "MaxAttempts": 1, "IntervalSeconds": 5},
	    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5, "IntervalSeconds": 1}
	  ],
	  "End": true}}}`
	inv, calls := failing(10, &TaskError{Name: "Flaky"})
	res, _, clock := run(t, def, `{}`, inv)
	wantStatus(t, res, StatusFailed)
	// Flaky matches the first retrier; once its one attempt is used, the
	// error is not handed to the States.ALL retrier.
	if calls.Load() != 2 || len(clock.Sleeps()) != 1 || clock.Sleeps()[0] != 5*time.Second {
		t.Fatalf("calls %d sleeps %v", calls.Load(), clock.Sleeps())
	}
}

func TestRetryTaskFailedDoesNotMatchTimeout(t *testing.T) {
	if !errorMatches([]string{ErrorTaskFailed}, "Lambda.Unknown") || errorMatches([]string{ErrorTaskFailed}, ErrorTimeout) {
		t.Fatal("States.TaskFailed must match any error but States.Timeout")
	}
	if !errorMatches([]string{ErrorAll}, ErrorTimeout) || errorMatches([]string{"A", "B"}, "C") {
		t.Fatal("matching")
	}
}

func TestCatch(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Call",
	  "States": {
	    "Call": {
	      "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	      "Arguments": {"FunctionName": "f"},
	      "Retry": [{"ErrorEquals": ["Backfill.Throttled"], "MaxAttempts": 2, "IntervalSeconds": 1}],
	      "Catch": [
	        {"ErrorEquals": ["Other"], "Next": "Unused"},
	        {"ErrorEquals": ["States.ALL"], "Next": "Report",
	         "Assign": {"failure": "{% $states.errorOutput %}", "from": "{% $states.input.partition %}"},
	         "Output": {"caught": "{% $states.errorOutput.Error %}", "input": "{% $states.input %}"}}
	      ],
	      "Assign": {"neverSet": true},
	      "Next": "Unused"
	    },
	    "Unused": {"Type": "Succeed"},
	    "Report": {
	      "Type": "Pass",
	      "Output": {"out": "{% $states.input %}", "failure": "{% $failure %}", "from": "{% $from %}", "neverSet": "{% $exists($neverSet) %}"},
	      "End": true
	    }
	  }
	}`
	inv, calls := failing(99, &TaskError{Name: "Backfill.Throttled", Cause: "rate exceeded"})
	res, rec, clock := run(t, def, `{"partition": "p1"}`, inv)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{
	  "out": {"caught": "Backfill.Throttled", "input": {"partition": "p1"}},
	  "failure": {"Error": "Backfill.Throttled", "Cause": "rate exceeded"},
	  "from": "p1",
	  "neverSet": false
	}`)
	if calls.Load() != 3 || len(clock.Sleeps()) != 2 {
		t.Fatalf("calls %d sleeps %v", calls.Load(), clock.Sleeps())
	}
	// Retries exhausted, then caught: the Task still exits (carrying the
	// Catch output) before the handler is entered.
	want := []string{"ExecutionStarted", "TaskStateEntered"}
	for range 3 {
		want = append(want, "TaskScheduled", "TaskStarted", "TaskFailed")
	}
	want = append(want, "TaskStateExited", "PassStateEntered", "PassStateExited", "ExecutionSucceeded")
	equalStrings(t, "events", rec.types(res.Execution.ID), want)
	exited := rec.details(res.Execution.ID, "TaskStateExited")[0]
	jsonEqual(t, json.RawMessage(exited["output"].(string)), `{"caught": "Backfill.Throttled", "input": {"partition": "p1"}}`)
	// Transitions: Call + 2 retries + Report.
	if res.Stats.StateTransitions != 4 {
		t.Fatalf("transitions %d", res.Stats.StateTransitions)
	}
}

func TestCatchDefaultOutputIsErrorOutput(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "Call", "States": {
	  "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"},
	           "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Done"}], "End": true},
	  "Done": {"Type": "Succeed"}}}`
	inv, _ := failing(1, errors.New("bad window"))
	res, _, _ := run(t, def, `{}`, inv)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{"Error": "errorString", "Cause": "{\"errorMessage\":\"bad window\",\"errorType\":\"errorString\"}"}`)
}

func TestCatchQueryEvaluationErrorInOutput(t *testing.T) {
	// An Output that fails after the task succeeded is a state error that
	// Retry and Catch handle too.
	def := `{"QueryLanguage": "JSONata", "StartAt": "Call", "States": {
	  "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"},
	           "Output": "{% $states.result.Payload.missing %}",
	           "Retry": [{"ErrorEquals": ["States.QueryEvaluationError"], "MaxAttempts": 1}],
	           "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done", "Output": "{% $states.errorOutput.Error %}"}], "End": true},
	  "Done": {"Type": "Succeed"}}}`
	res, rec, _ := run(t, def, `{}`, echo)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `"States.QueryEvaluationError"`)
	if n := len(rec.details(res.Execution.ID, "EvaluationFailed")); n != 2 || res.Stats.TaskInvocations != 2 {
		t.Fatalf("EvaluationFailed %d invocations %d", n, res.Stats.TaskInvocations)
	}
}

func TestRuntimeErrorsAreNotCaught(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "Call", "States": {
	  "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": "{% {'Payload': 1} %}",
	           "Retry": [{"ErrorEquals": ["States.ALL"]}],
	           "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}], "End": true},
	  "Done": {"Type": "Succeed"}}}`
	res, _, clock := run(t, def, `{}`, echo)
	wantStatus(t, res, StatusFailed)
	if res.Error != ErrorRuntime || !strings.Contains(res.Cause, "FunctionName") || len(clock.Sleeps()) != 0 {
		t.Fatalf("error %q cause %q sleeps %v", res.Error, res.Cause, clock.Sleeps())
	}
}

func TestJitterFull(t *testing.T) {
	rt := &retrier{interval: 10 * time.Second, backoffRate: 2, jitterFull: true}
	for range 50 {
		if d := rt.delay(2); d < 0 || d > 20*time.Second {
			t.Fatalf("delay %v outside [0, 20s]", d)
		}
	}
}
