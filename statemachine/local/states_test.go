package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPassTaskSucceedHistory(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "Comment": "Pass -> Task -> Succeed",
	  "StartAt": "Prepare",
	  "States": {
	    "Prepare": {"Type": "Pass", "Output": {"n": "{% $states.input.n + 1 %}"}, "Next": "Call"},
	    "Call": {
	      "Type": "Task",
	      "Resource": "arn:aws:states:::lambda:invoke",
	      "Arguments": {"FunctionName": "backfill", "Payload": {"n": "{% $states.input.n %}"}},
	      "Output": "{% $states.result.Payload %}",
	      "Next": "Done"
	    },
	    "Done": {"Type": "Succeed"}
	  }
	}`
	var gotFunction string
	inv := InvokerFunc(func(_ context.Context, resource, fn string, payload json.RawMessage) (json.RawMessage, error) {
		gotFunction = resource + " " + fn
		var p struct{ N int }
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, err
		}
		return json.RawMessage(fmt.Sprintf(`{"doubled": %d}`, p.N*2)), nil
	})
	res, rec, _ := run(t, def, `{"n": 20}`, inv)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{"doubled": 42}`)
	if gotFunction != "arn:aws:states:::lambda:invoke backfill" {
		t.Fatalf("invoked %q", gotFunction)
	}
	// Hand-counted from the Step Functions history event types:
	//  1 ExecutionStarted
	//  2 PassStateEntered      3 PassStateExited
	//  4 TaskStateEntered      5 TaskScheduled   6 TaskStarted
	//  7 TaskSucceeded         8 TaskStateExited
	//  9 SucceedStateEntered  10 SucceedStateExited
	// 11 ExecutionSucceeded
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted",
		"PassStateEntered", "PassStateExited",
		"TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
		"SucceedStateEntered", "SucceedStateExited",
		"ExecutionSucceeded",
	})
	st := res.Stats
	if st.HistoryEvents != 11 || st.StateTransitions != 3 || st.TotalTransitions != 3 || st.TaskInvocations != 1 ||
		st.Executions != 1 || st.MaxHistoryEvents != 11 || st.MaxHistoryExecution != res.Execution.ID {
		t.Fatalf("stats = %+v", st)
	}
	// Event IDs are sequential and each names the one before it, except the
	// first state entered, which names none (as Step Functions records it).
	for i, ev := range rec.events[res.Execution.ID] {
		prev := int64(i)
		if i == 1 {
			prev = 0
		}
		if ev.ID != int64(i+1) || ev.PreviousEventID != prev {
			t.Fatalf("event %d: id %d previous %d", i, ev.ID, ev.PreviousEventID)
		}
	}
	// The TaskScheduled details carry the resolved Arguments, as the API does.
	sched := rec.details(res.Execution.ID, "TaskScheduled")[0]
	if sched["resourceType"] != "lambda" || sched["resource"] != "invoke" || sched["region"] != "us-east-1" {
		t.Fatalf("TaskScheduled details = %v", sched)
	}
	jsonEqual(t, json.RawMessage(sched["parameters"].(string)), `{"FunctionName":"backfill","Payload":{"n":21}}`)
	entered := rec.details(res.Execution.ID, "TaskStateEntered")[0]
	if entered["name"] != "Call" || entered["input"] != `{"n":21}` {
		t.Fatalf("TaskStateEntered details = %v", entered)
	}
}

func TestLambdaFunctionResource(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Call",
	  "States": {
	    "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:backfill", "End": true}
	  }
	}`
	var gotFunction string
	inv := InvokerFunc(func(_ context.Context, _, fn string, payload json.RawMessage) (json.RawMessage, error) {
		gotFunction = fn
		return payload, nil
	})
	res, rec, _ := run(t, def, `{"a": [1, null]}`, inv)
	wantStatus(t, res, StatusSucceeded)
	// A function ARN task returns the function output as is (no Payload
	// wrapper); with no Arguments the payload is the state input.
	jsonEqual(t, res.Output, `{"a": [1, null]}`)
	if gotFunction != "arn:aws:lambda:us-east-1:123456789012:function:backfill" {
		t.Fatalf("function = %q", gotFunction)
	}
	// 1 ExecutionStarted 2 TaskStateEntered 3 LambdaFunctionScheduled
	// 4 LambdaFunctionStarted 5 LambdaFunctionSucceeded 6 TaskStateExited
	// 7 ExecutionSucceeded
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
		"LambdaFunctionSucceeded", "TaskStateExited", "ExecutionSucceeded",
	})
}

func TestStatesBindings(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "First",
	  "States": {
	    "First": {
	      "Type": "Pass",
	      "Output": {
	        "input": "{% $states.input %}",
	        "executionName": "{% $states.context.Execution.Name %}",
	        "executionId": "{% $states.context.Execution.Id %}",
	        "executionInput": "{% $states.context.Execution.Input %}",
	        "startTime": "{% $states.context.Execution.StartTime %}",
	        "machine": "{% $states.context.StateMachine.Name %}",
	        "state": "{% $states.context.State.Name %}",
	        "entered": "{% $states.context.State.EnteredTime %}",
	        "retries": "{% $states.context.State.RetryCount %}",
	        "now": "{% $now() %}",
	        "literal": "not {% an expression %}",
	        "nested": ["{% 1 + 1 %}", {"deep": "{% $uppercase('x') %}"}],
	        "null": "{% $states.input.nothing %}"
	      },
	      "Next": "Call"
	    },
	    "Call": {
	      "Type": "Task",
	      "Resource": "arn:aws:states:::lambda:invoke",
	      "Arguments": {"FunctionName": "f", "Payload": "{% $states.input.input %}"},
	      "Output": {"result": "{% $states.result %}", "inputStill": "{% $states.input.state %}"},
	      "End": true
	    }
	  }
	}`
	res, _, _ := run(t, def, `{"x": 1, "nothing": null}`, echo)
	wantStatus(t, res, StatusSucceeded)
	id := "arn:aws:states:us-east-1:123456789012:execution:trailfill:test"
	if res.Execution.ID != id {
		t.Fatalf("execution id %q", res.Execution.ID)
	}
	jsonEqual(t, res.Output, `{
	  "result": {"ExecutedVersion": "$LATEST", "Payload": {"x": 1, "nothing": null}, "StatusCode": 200},
	  "inputStill": "First"
	}`)

}

func TestStatesContextValues(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Wait a bit",
	  "States": {
	    "Wait a bit": {"Type": "Wait", "Seconds": 5, "Next": "Show"},
	    "Show": {
	      "Type": "Pass",
	      "Output": {
	        "executionName": "{% $states.context.Execution.Name %}",
	        "executionId": "{% $states.context.Execution.Id %}",
	        "executionInput": "{% $states.context.Execution.Input %}",
	        "startTime": "{% $states.context.Execution.StartTime %}",
	        "machine": "{% $states.context.StateMachine.Name %}",
	        "machineId": "{% $states.context.StateMachine.Id %}",
	        "state": "{% $states.context.State.Name %}",
	        "entered": "{% $states.context.State.EnteredTime %}",
	        "retries": "{% $states.context.State.RetryCount %}",
	        "now": "{% $now() %}",
	        "millis": "{% $millis() %}",
	        "literal": "not {% an expression %}",
	        "nested": ["{% 1 + 1 %}", {"deep": "{% $uppercase('x') %}"}],
	        "null": "{% $states.input.nothing %}",
	        "nullIsNull": "{% $states.input.nothing = null %}"
	      },
	      "End": true
	    }
	  }
	}`
	res, _, _ := run(t, def, `{"x": 1, "nothing": null}`, nil)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{
	  "executionName": "test",
	  "executionId": "arn:aws:states:us-east-1:123456789012:execution:trailfill:test",
	  "executionInput": {"x": 1, "nothing": null},
	  "startTime": "2025-04-17T15:00:00.000Z",
	  "machine": "trailfill",
	  "machineId": "arn:aws:states:us-east-1:123456789012:stateMachine:trailfill",
	  "state": "Show",
	  "entered": "2025-04-17T15:00:05.000Z",
	  "retries": 0,
	  "now": "2025-04-17T15:00:05.000Z",
	  "millis": 1744902005000,
	  "literal": "not {% an expression %}",
	  "nested": [2, {"deep": "X"}],
	  "null": null,
	  "nullIsNull": true
	}`)
}

func TestQueryEvaluationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, output, causeHas string
	}{
		{"undefined", `"{% $states.input.missing %}"`, "The JSONata expression '$states.input.missing' specified for the field 'Output' returned nothing (undefined)."},
		{"nested undefined", `{"a": {"b": "{% $nope %}"}}`, "specified for the field 'Output/a/b' returned nothing (undefined)"},
		{"type error", `"{% $states.input.s + 1 %}"`, "specified for the field 'Output' threw an error"},
		{"eval is not available", `"{% $eval('1') %}"`, "threw an error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := `{"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": ` + tc.output + `, "End": true}}}`
			res, rec, _ := run(t, def, `{"s": "text"}`, nil)
			wantStatus(t, res, StatusFailed)
			if res.Error != ErrorQueryEvaluation || !strings.Contains(res.Cause, tc.causeHas) ||
				!strings.Contains(res.Cause, "An error occurred while executing the state 'P' (entered at the event id #2).") {
				t.Fatalf("error %q cause %q", res.Error, res.Cause)
			}
			// 1 ExecutionStarted 2 PassStateEntered 3 EvaluationFailed 4 ExecutionFailed
			equalStrings(t, "events", rec.types(res.Execution.ID),
				[]string{"ExecutionStarted", "PassStateEntered", "EvaluationFailed", "ExecutionFailed"})
		})
	}
}

func TestAssignEvaluatedTogether(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Init",
	  "States": {
	    "Init": {"Type": "Pass", "Assign": {"a": 1, "b": 10, "list": [1, "{% 1 + 1 %}"]}, "Next": "Step"},
	    "Step": {
	      "Type": "Pass",
	      "Assign": {"a": "{% $a + 1 %}", "b": "{% $a %}", "c": "{% $b * 2 %}"},
	      "Output": {"aSeenByOutput": "{% $a %}", "cBefore": "{% $exists($c) %}"},
	      "Next": "Show"
	    },
	    "Show": {
	      "Type": "Pass",
	      "Output": {"a": "{% $a %}", "b": "{% $b %}", "c": "{% $c %}", "list": "{% $list %}", "prev": "{% $states.input %}"},
	      "End": true
	    }
	  }
	}`
	res, _, _ := run(t, def, `{}`, nil)
	wantStatus(t, res, StatusSucceeded)
	// All Assign entries and Output saw a=1, b=10: b takes the old a and
	// Output does not see the new values.
	jsonEqual(t, res.Output, `{"a": 2, "b": 1, "c": 20, "list": [1, 2], "prev": {"aSeenByOutput": 1, "cBefore": false}}`)
}

func TestChoice(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Route",
	  "States": {
	    "Route": {
	      "Type": "Choice",
	      "Choices": [
	        {"Condition": "{% $states.input.n > 10 %}", "Next": "Big",
	         "Output": {"size": "big"}, "Assign": {"route": "rule"}},
	        {"Condition": "{% $states.input.n > 5 %}", "Next": "Big"}
	      ],
	      "Default": "Small",
	      "Output": {"size": "small"},
	      "Assign": {"route": "default"}
	    },
	    "Big": {"Type": "Pass", "Output": {"in": "{% $states.input %}", "route": "{% $exists($route) ? $route : 'none' %}"}, "End": true},
	    "Small": {"Type": "Pass", "Output": {"in": "{% $states.input %}", "route": "{% $route %}"}, "End": true}
	  }
	}`
	for _, tc := range []struct{ input, want string }{
		{`{"n": 11}`, `{"in": {"size": "big"}, "route": "rule"}`},
		// A matching rule without Output passes the input on, and the state's
		// Assign is not applied.
		{`{"n": 6}`, `{"in": {"n": 6}, "route": "none"}`},
		{`{"n": 1}`, `{"in": {"size": "small"}, "route": "default"}`},
	} {
		res, rec, _ := run(t, def, tc.input, nil)
		wantStatus(t, res, StatusSucceeded)
		jsonEqual(t, res.Output, tc.want)
		equalStrings(t, "events", rec.types(res.Execution.ID), []string{
			"ExecutionStarted", "ChoiceStateEntered", "ChoiceStateExited", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"})
	}

	noDefault := `{"QueryLanguage": "JSONata", "StartAt": "C", "States": {
	  "C": {"Type": "Choice", "Choices": [{"Condition": "{% false %}", "Next": "D"}]},
	  "D": {"Type": "Succeed"}}}`
	res, _, _ := run(t, noDefault, `{}`, nil)
	wantStatus(t, res, StatusFailed)
	if res.Error != ErrorNoChoiceMatched {
		t.Fatalf("error %q", res.Error)
	}
	notBool := strings.Replace(noDefault, `{% false %}`, `{% 'yes' %}`, 1)
	res, _, _ = run(t, notBool, `{}`, nil)
	if res.Error != ErrorQueryEvaluation || !strings.Contains(res.Cause, "expected a boolean") {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
}

func TestWait(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Pause",
	  "States": {
	    "Pause": {"Type": "Wait", "Seconds": "{% $states.input.delay %}", "Output": {"waited": "{% $states.input.delay %}"}, "Next": "Again"},
	    "Again": {"Type": "Wait", "Seconds": 3, "End": true}
	  }
	}`
	res, rec, clock := run(t, def, `{"delay": 90}`, nil)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{"waited": 90}`)
	sleeps := clock.Sleeps()
	if len(sleeps) != 2 || sleeps[0] != 90*time.Second || sleeps[1] != 3*time.Second {
		t.Fatalf("sleeps = %v", sleeps)
	}
	if got := res.StopTime.Sub(res.StartTime); got != 93*time.Second {
		t.Fatalf("duration %v", got)
	}
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "WaitStateEntered", "WaitStateExited", "WaitStateEntered", "WaitStateExited", "ExecutionSucceeded"})

	res, _, _ = run(t, def, `{"delay": -1}`, nil)
	if res.Error != ErrorQueryEvaluation || !strings.Contains(res.Cause, "non-negative integer") {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
}

func TestFailWithExpressions(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Check",
	  "States": {
	    "Check": {"Type": "Pass", "Assign": {"window": "{% $states.input.window %}"}, "Next": "Give up"},
	    "Give up": {
	      "Type": "Fail",
	      "Error": "{% 'Backfill.' & $states.input.kind %}",
	      "Cause": "{% 'partition ' & $states.input.partition & ' failed at window ' & $window %}"
	    }
	  }
	}`
	res, rec, _ := run(t, def, `{"kind": "Throttled", "partition": "111122223333/us-east-1", "window": "2025-04-17T15:00:00Z"}`, nil)
	wantStatus(t, res, StatusFailed)
	if res.Error != "Backfill.Throttled" || res.Cause != "partition 111122223333/us-east-1 failed at window 2025-04-17T15:00:00Z" {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
	// 1 ExecutionStarted 2 PassStateEntered 3 PassStateExited 4 FailStateEntered 5 ExecutionFailed
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "PassStateEntered", "PassStateExited", "FailStateEntered", "ExecutionFailed"})
	failed := rec.details(res.Execution.ID, "ExecutionFailed")[0]
	if failed["error"] != res.Error || failed["cause"] != res.Cause {
		t.Fatalf("ExecutionFailed details %v", failed)
	}

	literal := `{"QueryLanguage": "JSONata", "StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Static", "Cause": "plain text"}}}`
	res, _, _ = run(t, literal, `{}`, nil)
	if res.Error != "Static" || res.Cause != "plain text" {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
}

// TestLoop runs a Task and a Choice in a loop, the shape of the backfill
// child workflow: the Lambda returns a cursor until it is done.
func TestLoop(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Init",
	  "States": {
	    "Init": {"Type": "Pass", "Assign": {"cursor": 0, "calls": 0}, "Next": "Work"},
	    "Work": {
	      "Type": "Task",
	      "Resource": "arn:aws:states:::lambda:invoke",
	      "Arguments": {"FunctionName": "backfill", "Payload": {"cursor": "{% $cursor %}", "until": "{% $states.input.until %}"}},
	      "Assign": {"cursor": "{% $states.result.Payload.next %}", "calls": "{% $calls + 1 %}"},
	      "Output": "{% $states.input %}",
	      "Next": "Done?"
	    },
	    "Done?": {
	      "Type": "Choice",
	      "Choices": [{"Condition": "{% $cursor >= $states.input.until %}", "Next": "Done"}],
	      "Default": "Work"
	    },
	    "Done": {"Type": "Succeed", "Output": {"cursor": "{% $cursor %}", "calls": "{% $calls %}"}}
	  }
	}`
	var calls atomic.Int32
	inv := InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		calls.Add(1)
		var p struct{ Cursor, Until int }
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, err
		}
		return json.RawMessage(fmt.Sprintf(`{"next": %d}`, p.Cursor+10)), nil
	})
	res, _, _ := run(t, def, `{"until": 30}`, inv)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{"cursor": 30, "calls": 3}`)
	if calls.Load() != 3 {
		t.Fatalf("calls = %d", calls.Load())
	}
	// Events: 1 ExecutionStarted + 2 (Pass) + 3 x (5 Task + 2 Choice)
	// + 2 (Succeed) + 1 ExecutionSucceeded = 27.
	// Transitions: Init + 3 x (Work + Done?) + Done = 8.
	if res.Stats.HistoryEvents != 27 || res.Stats.StateTransitions != 8 || res.Stats.TaskInvocations != 3 {
		t.Fatalf("stats %+v", res.Stats)
	}
}

func TestErrorNaming(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "T", "States": {"T": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	  "Arguments": {"FunctionName": "f", "Payload": {}}, "End": true}}}`
	type customError struct{ error }
	for _, tc := range []struct {
		err          error
		name, cause  string
		failedDetail bool
	}{
		{errors.New("boom"), "errorString", `{"errorMessage":"boom","errorType":"errorString"}`, true},
		{fmt.Errorf("wrapped: %w", errors.New("inner")), "wrapError", `{"errorMessage":"wrapped: inner","errorType":"wrapError"}`, true},
		{&customError{errors.New("custom")}, "customError", `{"errorMessage":"custom","errorType":"customError"}`, true},
		{&TaskError{Name: "Lambda.ServiceException", Cause: "service down"}, "Lambda.ServiceException", "service down", true},
		{fmt.Errorf("adapter: %w", &TaskError{Name: "Backfill.Throttled", Cause: "slow down"}), "Backfill.Throttled", "slow down", true},
	} {
		inv := InvokerFunc(func(context.Context, string, string, json.RawMessage) (json.RawMessage, error) { return nil, tc.err })
		res, rec, _ := run(t, def, `{}`, inv)
		wantStatus(t, res, StatusFailed)
		if res.Error != tc.name || res.Cause != tc.cause {
			t.Fatalf("%v: error %q cause %q", tc.err, res.Error, res.Cause)
		}
		d := rec.details(res.Execution.ID, "TaskFailed")[0]
		if d["error"] != tc.name || d["cause"] != tc.cause || d["resource"] != "invoke" {
			t.Fatalf("TaskFailed details %v", d)
		}
		// An uncaught task failure: no TaskStateExited.
		equalStrings(t, "events", rec.types(res.Execution.ID), []string{
			"ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskFailed", "ExecutionFailed"})
	}
}

func TestTaskTimeout(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "T", "States": {"T": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": "{% $states.input.timeout %}",
	  "Arguments": {"FunctionName": "f"}, "End": true}}}`
	inv := InvokerFunc(func(ctx context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		if string(payload) != "{}" {
			return nil, fmt.Errorf("payload %s", payload)
		}
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	res, rec, _ := run(t, def, `{"timeout": 1}`, inv)
	wantStatus(t, res, StatusFailed)
	if res.Error != ErrorTimeout {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskTimedOut", "ExecutionFailed"})
	if d := rec.details(res.Execution.ID, "TaskScheduled")[0]; d["timeoutInSeconds"] != float64(1) {
		t.Fatalf("TaskScheduled details %v", d)
	}
}

func TestContextCancelAborts(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "T", "States": {"T": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	  "Arguments": {"FunctionName": "f"},
	  "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}], "End": true}}}`
	ctx, cancel := context.WithCancel(context.Background())
	inv := InvokerFunc(func(ctx context.Context, _, _ string, _ json.RawMessage) (json.RawMessage, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	m := mustLoad(t, def)
	rec := newRecorder()
	res, err := m.Execute(ctx, nil, Options{Invoker: inv, Clock: NewFakeClock(epoch), Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusAborted)
	if res.Error != ErrorAborted || res.Stats.TaskInvocations != 1 {
		t.Fatalf("error %q invocations %d", res.Error, res.Stats.TaskInvocations)
	}
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskStateAborted", "ExecutionAborted"})
}

func TestExecutionTimeout(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "TimeoutSeconds": 60, "StartAt": "W", "States": {
	  "W": {"Type": "Wait", "Seconds": 61, "Next": "P"},
	  "P": {"Type": "Pass", "End": true}}}`
	res, rec, _ := run(t, def, `{}`, nil)
	wantStatus(t, res, StatusTimedOut)
	if res.Error != ErrorTimeout {
		t.Fatalf("error %q", res.Error)
	}
	equalStrings(t, "events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "WaitStateEntered", "WaitStateExited", "ExecutionTimedOut"})
}

func TestHistoryLimit(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "A", "States": {
	  "A": {"Type": "Pass", "Next": "B"},
	  "B": {"Type": "Pass", "Next": "A"}}}`
	m := mustLoad(t, def)
	res, err := m.Execute(context.Background(), nil, Options{Clock: NewFakeClock(epoch), HistoryLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusFailed)
	if res.Error != ErrorRuntime || !strings.Contains(res.Cause, "maximum number of history events (100)") {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
	if res.Stats.HistoryEvents != 100 || res.Stats.MaxHistoryEvents != 100 {
		t.Fatalf("stats %+v", res.Stats)
	}
}

func TestExecuteMisuse(t *testing.T) {
	m := mustLoad(t, `{"QueryLanguage": "JSONata", "StartAt": "T", "States": {"T": {
	  "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "End": true}}}`)
	if _, err := m.Execute(context.Background(), nil, Options{}); err == nil || !strings.Contains(err.Error(), "Invoker") {
		t.Fatalf("err = %v", err)
	}
	if _, err := m.Execute(context.Background(), json.RawMessage(`{`), Options{Invoker: echo}); err == nil {
		t.Fatal("invalid input accepted")
	}
	if _, err := m.Execute(context.Background(), nil, Options{Invoker: echo, StateMachineArn: "nope"}); err == nil {
		t.Fatal("bad ARN accepted")
	}
}

func TestVariablesNamedLikeFunctions(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Init",
	  "States": {
	    "Init": {"Type": "Pass", "Output": {"n": "{% $count([1, 2]) %}", "t": "{% $now() %}", "max": "{% $max([1, 3]) %}"},
	             "Assign": {"count": 5, "now": "x"}, "Next": "Show"},
	    "Show": {"Type": "Pass", "Output": {"count": "{% $count %}", "now": "{% $now %}", "prev": "{% $states.input %}", "max": "{% $max([4, 2]) %}"}, "End": true}
	  }
	}`
	res, _, _ := run(t, def, `{}`, nil)
	wantStatus(t, res, StatusSucceeded)
	// Before the assignment $count and $now are the functions; after it,
	// the variables.
	jsonEqual(t, res.Output, `{"count": 5, "now": "x", "prev": {"n": 2, "t": "2025-04-17T15:00:00.000Z", "max": 3}, "max": 4}`)
}
