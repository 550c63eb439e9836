package local

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInlineMap(t *testing.T) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Init",
	  "States": {
	    "Init": {"Type": "Pass", "Assign": {"prefix": "r-"}, "Next": "Each region"},
	    "Each region": {
	      "Type": "Map",
	      "Items": "{% $states.input.regions %}",
	      "ItemSelector": {"region": "{% $states.context.Map.Item.Value %}", "index": "{% $states.context.Map.Item.Index %}", "account": "{% $states.input.account %}"},
	      "MaxConcurrency": 2,
	      "ItemProcessor": {
	        "StartAt": "Name",
	        "States": {
	          "Name": {"Type": "Pass", "Assign": {"mine": "{% $states.input.index %}"}, "Output": "{% $prefix & $states.input.account & '/' & $states.input.region & '#' & $string($states.input.index) %}", "End": true}
	        }
	      },
	      "Output": {"names": "{% $states.result %}", "mineLeaked": "{% $exists($mine) %}"},
	      "End": true
	    }
	  }
	}`
	res, rec, _ := run(t, def, `{"account": "111122223333", "regions": ["us-east-1", "eu-west-1"]}`, nil)
	wantStatus(t, res, StatusSucceeded)
	// Iterations read the outer variable $prefix; what they assign stays in
	// the iteration.
	jsonEqual(t, res.Output, `{"names": ["r-111122223333/us-east-1#0", "r-111122223333/eu-west-1#1"], "mineLeaked": false}`)
	// Hand-counted: 1 ExecutionStarted, 2-3 Pass, 4 MapStateEntered,
	// 5 MapStateStarted, per item MapIterationStarted, PassStateEntered,
	// PassStateExited, MapIterationSucceeded (8 events), MapStateSucceeded,
	// MapStateExited, ExecutionSucceeded = 16.
	types := rec.types(res.Execution.ID)
	if len(types) != 16 || res.Stats.HistoryEvents != 16 {
		t.Fatalf("events %v", types)
	}
	equalStrings(t, "sorted events", sortedCopy(types), sortedCopy([]string{
		"ExecutionStarted", "PassStateEntered", "PassStateExited", "MapStateEntered", "MapStateStarted",
		"MapIterationStarted", "PassStateEntered", "PassStateExited", "MapIterationSucceeded",
		"MapIterationStarted", "PassStateEntered", "PassStateExited", "MapIterationSucceeded",
		"MapStateSucceeded", "MapStateExited", "ExecutionSucceeded",
	}))
	equalStrings(t, "ends", types[len(types)-3:], []string{"MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"})
	// Transitions: Init + Map + 2 iteration states.
	if res.Stats.StateTransitions != 4 || res.Stats.Executions != 1 {
		t.Fatalf("stats %+v", res.Stats)
	}
	if d := rec.details(res.Execution.ID, "MapStateStarted")[0]; d["length"] != float64(2) {
		t.Fatalf("MapStateStarted %v", d)
	}
}

func TestInlineMapConcurrencyAndOrder(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
	  "Type": "Map", "MaxConcurrency": "{% $states.input.conc %}",
	  "Items": "{% $range(1, $states.input.n) %}",
	  "ItemProcessor": {"StartAt": "T", "States": {"T": {
	    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	    "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"},
	    "Output": "{% $states.result.Payload * 10 %}", "End": true}}},
	  "End": true}}}`
	for _, tc := range []struct{ n, conc, wantMax int32 }{{12, 3, 3}, {60, 0, 40}} {
		var running, peak atomic.Int32
		var mu sync.Mutex
		inv := InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
			n := running.Add(1)
			mu.Lock()
			if n > peak.Load() {
				peak.Store(n)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			running.Add(-1)
			return payload, nil
		})
		res, _, _ := run(t, def, fmt.Sprintf(`{"n": %d, "conc": %d}`, tc.n, tc.conc), inv)
		wantStatus(t, res, StatusSucceeded)
		var out []int
		if err := json.Unmarshal(res.Output, &out); err != nil || len(out) != int(tc.n) {
			t.Fatalf("output %s", res.Output)
		}
		for i, v := range out {
			if v != (i+1)*10 {
				t.Fatalf("output not in item order: %v", out)
			}
		}
		if peak.Load() > tc.wantMax || peak.Load() < 2 {
			t.Fatalf("n=%d conc=%d: peak concurrency %d, want at most %d", tc.n, tc.conc, peak.Load(), tc.wantMax)
		}
	}
}

func TestInlineMapFailure(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "M", "States": {
	  "M": {"Type": "Map", "MaxConcurrency": 1,
	    "ItemProcessor": {"StartAt": "Check", "States": {
	      "Check": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input = 2 %}", "Next": "Bad"}], "Default": "Good"},
	      "Good": {"Type": "Succeed"},
	      "Bad": {"Type": "Fail", "Error": "Item.Bad", "Cause": "{% 'item ' & $string($states.input) %}"}}},
	    "Catch": [{"ErrorEquals": ["Item.Bad"], "Next": "Handled", "Output": "{% $states.errorOutput %}"}],
	    "End": true},
	  "Handled": {"Type": "Succeed"}}}`
	res, rec, _ := run(t, def, `[1, 2, 3, 4]`, nil)
	wantStatus(t, res, StatusSucceeded)
	// The failing iteration's error is the Map's error.
	jsonEqual(t, res.Output, `{"Error": "Item.Bad", "Cause": "item 2"}`)
	types := rec.types(res.Execution.ID)
	// With MaxConcurrency 1 the order is fixed: item 0 succeeds, item 1
	// fails, items 2 and 3 never start.
	equalStrings(t, "events", types, []string{
		"ExecutionStarted", "MapStateEntered", "MapStateStarted",
		"MapIterationStarted", "ChoiceStateEntered", "ChoiceStateExited", "SucceedStateEntered", "SucceedStateExited", "MapIterationSucceeded",
		"MapIterationStarted", "ChoiceStateEntered", "ChoiceStateExited", "FailStateEntered", "MapIterationFailed",
		"MapStateFailed", "MapStateExited", "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded",
	})
}

func TestInlineMapAbortsRunningIterations(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "M", "States": {
	  "M": {"Type": "Map",
	    "ItemProcessor": {"StartAt": "T", "States": {"T": {
	      "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	      "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"}, "End": true}}},
	    "End": true}}}`
	started := make(chan struct{}, 3)
	inv := InvokerFunc(func(ctx context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		started <- struct{}{}
		if string(payload) == "0" {
			for range 3 {
				<-started // wait until all three run
			}
			return nil, &TaskError{Name: "Boom"}
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	res, rec, _ := run(t, def, `[0, 1, 2]`, inv)
	wantStatus(t, res, StatusFailed)
	if res.Error != "Boom" {
		t.Fatalf("error %q", res.Error)
	}
	var aborted, taskAborted int
	for _, ty := range rec.types(res.Execution.ID) {
		switch ty {
		case "MapIterationAborted":
			aborted++
		case "TaskStateAborted":
			taskAborted++
		}
	}
	if aborted != 2 || taskAborted != 2 {
		t.Fatalf("aborted iterations %d, aborted tasks %d: %v", aborted, taskAborted, rec.types(res.Execution.ID))
	}
}

func TestMapItemsMustBeArray(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {"Type": "Map", "Items": "{% $states.input.x %}",
	  "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}`
	res, _, _ := run(t, def, `{"x": "nope"}`, nil)
	if res.Error != ErrorQueryEvaluation || !strings.Contains(res.Cause, "expected an array") {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
	res, _, _ = run(t, def, `{"x": []}`, nil)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `[]`)
}

const distributedDef = `{
  "QueryLanguage": "JSONata",
  "StartAt": "Setup",
  "States": {
    "Setup": {"Type": "Pass", "Assign": {"secret": "parent-only"}, "Next": "Partitions"},
    "Partitions": {
      "Type": "Map",
      "Label": "partitions",
      "Items": "{% $states.input.partitions %}",
      "ItemSelector": {"partition": "{% $states.context.Map.Item.Value %}", "tag": "{% $secret %}"},
      "MaxConcurrency": 1000,
      "ToleratedFailurePercentage": "{% $states.input.tolerated %}",
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Backfill",
        "States": {
          "Backfill": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"FunctionName": "backfill", "Payload": "{% $states.input %}"},
            "Output": {"done": "{% $states.result.Payload.partition %}", "sawSecret": "{% $exists($secret) %}", "execution": "{% $states.context.Execution.Name %}"},
            "End": true
          }
        }
      },
      "End": true
    }
  }
}`

func TestDistributedMap(t *testing.T) {
	var inFlight, peak atomic.Int32
	inv := InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		inFlight.Add(-1)
		return payload, nil
	})
	m := mustLoad(t, distributedDef)
	rec := newRecorder()
	res, err := m.Execute(context.Background(), json.RawMessage(`{"partitions": ["a", "b", "c", "d", "e"], "tolerated": 0}`),
		Options{Invoker: inv, Clock: NewFakeClock(epoch), Observer: rec, MaxConcurrency: 2, ExecutionName: "parent"})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusSucceeded)
	var out []struct {
		Done      string
		SawSecret bool
		Execution string
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || len(out) != 5 {
		t.Fatalf("output %s", res.Output)
	}
	for i, o := range out {
		// Children get their ItemSelector input (evaluated in the parent,
		// with its variables) but cannot read the parent's variables.
		if o.Done != string(rune('a'+i)) || o.SawSecret {
			t.Fatalf("output %s", res.Output)
		}
	}
	if peak.Load() > 2 {
		t.Fatalf("peak concurrency %d above Options.MaxConcurrency", peak.Load())
	}
	// Parent, hand-counted: 1 ExecutionStarted, 2 PassStateEntered,
	// 3 PassStateExited, 4 MapStateEntered, 5 MapStateStarted,
	// 6 MapRunStarted, 7 MapRunSucceeded, 8 MapStateSucceeded,
	// 9 MapStateExited, 10 ExecutionSucceeded.
	equalStrings(t, "parent events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "PassStateEntered", "PassStateExited", "MapStateEntered", "MapStateStarted",
		"MapRunStarted", "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"})
	children := rec.children(res.Execution.ID)
	if len(children) != 5 {
		t.Fatalf("children %v", children)
	}
	mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
	if !strings.HasPrefix(mapRun, "arn:aws:states:us-east-1:123456789012:mapRun:trailfill/partitions:") {
		t.Fatalf("map run %q", mapRun)
	}
	for _, c := range children {
		if c.MapRunID != mapRun || !strings.HasPrefix(c.ID, "arn:aws:states:us-east-1:123456789012:execution:trailfill/partitions:") {
			t.Fatalf("child %+v", c)
		}
		// Each child, hand-counted: ExecutionStarted, TaskStateEntered,
		// TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited,
		// ExecutionSucceeded = 7 events of its own.
		equalStrings(t, "child events", rec.types(c.ID), []string{
			"ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"})
	}
	st := res.Stats
	// Parent: Setup + Partitions = 2 transitions, 10 events. Children: 1
	// transition and 7 events each.
	if st.StateTransitions != 2 || st.HistoryEvents != 10 || st.TotalTransitions != 7 || st.TaskInvocations != 5 ||
		st.Executions != 6 || st.MaxHistoryEvents != 10 || st.MaxHistoryExecution != res.Execution.ID {
		t.Fatalf("stats %+v", st)
	}
	counts := rec.mapRuns[mapRun]
	if first, last := counts[0], counts[len(counts)-1]; first != (MapRunCounts{Total: 5, Pending: 5}) ||
		last != (MapRunCounts{Total: 5, Succeeded: 5}) {
		t.Fatalf("map run counts %v", counts)
	}
}

func TestDistributedMapToleratedFailures(t *testing.T) {
	inv := InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		if strings.Contains(string(payload), `"b"`) {
			return nil, &TaskError{Name: "Backfill.Failed", Cause: "partition b window 2025-04-17T15:00:00Z"}
		}
		return payload, nil
	})
	m := mustLoad(t, distributedDef)
	rec := newRecorder()
	res, err := m.Execute(context.Background(), json.RawMessage(`{"partitions": ["a", "b", "c", "d"], "tolerated": 25}`),
		Options{Invoker: inv, Clock: NewFakeClock(epoch), Observer: rec, MaxConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusSucceeded)
	// A tolerated failure leaves the child's error at its index.
	var out []map[string]any
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out[1]["Error"] != "Backfill.Failed" || out[1]["Cause"] != "partition b window 2025-04-17T15:00:00Z" || out[2]["done"] != "c" {
		t.Fatalf("output %s", res.Output)
	}
	mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
	counts := rec.mapRuns[mapRun]
	if last := counts[len(counts)-1]; last != (MapRunCounts{Total: 4, Succeeded: 3, Failed: 1}) {
		t.Fatalf("counts %v", counts)
	}
}

func TestDistributedMapExceedsThreshold(t *testing.T) {
	release := make(chan struct{})
	inv := InvokerFunc(func(ctx context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		switch {
		case strings.Contains(string(payload), `"a"`):
			return payload, nil
		case strings.Contains(string(payload), `"b"`):
			<-release // fail once the slow children are running
			return nil, &TaskError{Name: "Backfill.Failed", Cause: "partition b: AccessDenied"}
		default:
			<-ctx.Done() // runs until aborted
			return nil, ctx.Err()
		}
	})
	m := mustLoad(t, distributedDef)
	rec := newRecorder()
	var once sync.Once
	obs := &releasingRecorder{recorder: rec, onRunning: func(c MapRunCounts) {
		if c.Running == 3 && c.Succeeded == 1 {
			once.Do(func() { close(release) })
		}
	}}
	res, err := m.Execute(context.Background(), json.RawMessage(`{"partitions": ["a", "b", "c", "d", "e", "f"], "tolerated": 0}`),
		Options{Invoker: inv, Clock: NewFakeClock(epoch), Observer: obs, MaxConcurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusFailed)
	if res.Error != ErrorExceedToleratedFailures ||
		!strings.Contains(res.Cause, "1 of 6 child executions failed") ||
		!strings.Contains(res.Cause, "failed with Backfill.Failed: partition b: AccessDenied") {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
	equalStrings(t, "parent events", rec.types(res.Execution.ID), []string{
		"ExecutionStarted", "PassStateEntered", "PassStateExited", "MapStateEntered", "MapStateStarted",
		"MapRunStarted", "MapRunFailed", "MapStateFailed", "ExecutionFailed"})
	mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
	counts := rec.mapRuns[mapRun]
	// a succeeded, b failed, the two running children were aborted, the last
	// two never started.
	if last := counts[len(counts)-1]; last != (MapRunCounts{Total: 6, Pending: 2, Succeeded: 1, Failed: 1, Aborted: 2}) {
		t.Fatalf("counts %v", counts)
	}
	var abortedChildren int
	for _, c := range rec.children(res.Execution.ID) {
		types := rec.types(c.ID)
		if types[len(types)-1] == "ExecutionAborted" {
			abortedChildren++
		}
	}
	if abortedChildren != 2 || res.Stats.Executions != 5 {
		t.Fatalf("aborted children %d, executions %d", abortedChildren, res.Stats.Executions)
	}
}

// releasingRecorder calls onRunning with every Map Run count.
type releasingRecorder struct {
	*recorder
	onRunning func(MapRunCounts)
}

func (r *releasingRecorder) MapRun(parent ExecutionRef, id string, c MapRunCounts) {
	r.recorder.MapRun(parent, id, c)
	r.onRunning(c)
}

func TestDistributedChildHistoryIsItsOwn(t *testing.T) {
	// A child that loops many times has a long history of its own; the
	// parent's stays short. MaxHistoryEvents names the child.
	def := `{"QueryLanguage": "JSONata", "StartAt": "Fan out", "States": {"Fan out": {
	  "Type": "Map",
	  "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
	    "StartAt": "Init", "States": {
	      "Init": {"Type": "Pass", "Assign": {"i": 0}, "Next": "Step"},
	      "Step": {"Type": "Pass", "Assign": {"i": "{% $i + 1 %}"}, "Next": "More?"},
	      "More?": {"Type": "Choice", "Choices": [{"Condition": "{% $i < $states.input %}", "Next": "Step"}], "Default": "End"},
	      "End": {"Type": "Succeed", "Output": "{% $i %}"}}},
	  "End": true}}}`
	m := mustLoad(t, def)
	rec := newRecorder()
	res, err := m.Execute(context.Background(), json.RawMessage(`[1, 50, 3]`), Options{Clock: NewFakeClock(epoch), Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `[1, 50, 3]`)
	// Child with 50 loops: ExecutionStarted, Init (2), 50 x (Step 2 + Choice 2),
	// End (2), ExecutionSucceeded = 206 events; transitions 1 + 100 + 1.
	var longest ExecutionRef
	for _, c := range rec.children(res.Execution.ID) {
		if len(rec.types(c.ID)) == 206 {
			longest = c
		}
	}
	if longest.ID == "" || res.Stats.MaxHistoryEvents != 206 || res.Stats.MaxHistoryExecution != longest.ID {
		t.Fatalf("stats %+v longest %+v", res.Stats, longest)
	}
	// Parent 1 transition; children 1+2*1+1=4, 102, 1+2*3+1=8.
	if res.Stats.StateTransitions != 1 || res.Stats.TotalTransitions != 1+4+102+8 || res.Stats.HistoryEvents != 8 {
		t.Fatalf("stats %+v", res.Stats)
	}
}

func TestMapRetryRecordsMapStateFailedOnce(t *testing.T) {
	def := `{"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {"Type": "Map",
	  "ItemProcessor": {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Item.Bad"}}},
	  "Retry": [{"ErrorEquals": ["Item.Bad"], "MaxAttempts": 1}], "End": true}}}`
	res, rec, clock := run(t, def, `[1]`, nil)
	wantStatus(t, res, StatusFailed)
	if res.Error != "Item.Bad" || len(clock.Sleeps()) != 1 {
		t.Fatalf("error %q sleeps %v", res.Error, clock.Sleeps())
	}
	attempt := []string{"MapStateStarted", "MapIterationStarted", "FailStateEntered", "MapIterationFailed"}
	want := append([]string{"ExecutionStarted", "MapStateEntered"}, attempt...)
	want = append(want, attempt...)
	want = append(want, "MapStateFailed", "ExecutionFailed")
	equalStrings(t, "events", rec.types(res.Execution.ID), want)
	// Map entered once, retried once, one iteration state per attempt.
	if res.Stats.StateTransitions != 4 {
		t.Fatalf("transitions %d", res.Stats.StateTransitions)
	}
}

func TestDistributedMapToleratedFailureCount(t *testing.T) {
	def := strings.Replace(distributedDef, `"ToleratedFailurePercentage": "{% $states.input.tolerated %}"`, `"ToleratedFailureCount": 1`, 1)
	inv := InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		if strings.Contains(string(payload), `"bad`) {
			return nil, &TaskError{Name: "Backfill.Failed", Cause: string(payload)}
		}
		return payload, nil
	})
	m := mustLoad(t, def)
	for _, tc := range []struct {
		partitions, status string
	}{
		{`["a", "bad1", "c"]`, StatusSucceeded},
		{`["a", "bad1", "bad2", "d"]`, StatusFailed},
	} {
		res, err := m.Execute(context.Background(), json.RawMessage(`{"partitions": `+tc.partitions+`}`),
			Options{Invoker: inv, Clock: NewFakeClock(epoch), MaxConcurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, res, tc.status)
		if tc.status == StatusFailed && (res.Error != ErrorExceedToleratedFailures || !strings.Contains(res.Cause, "2 of 4 child executions failed (tolerated: 1 failures)")) {
			t.Fatalf("error %q cause %q", res.Error, res.Cause)
		}
	}
}
