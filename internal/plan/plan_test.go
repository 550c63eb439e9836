package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/trailfill/trailfill/statemachine/local"
)

// The seed design's shape (a loop over windows with an inline Map over the regions
// inside one execution) overflows the history limit long before 90 days.
func TestSeedShapeOverflowsTheHistoryLimit(t *testing.T) {
	const seed = `{
  "QueryLanguage": "JSONata",
  "StartAt": "Init",
  "States": {
    "Init": {"Type": "Pass", "Assign": {"i": 0}, "Next": "More windows?"},
    "More windows?": {"Type": "Choice", "Choices": [{"Condition": "{% $i < $states.input.windows %}", "Next": "Regions"}], "Default": "Done"},
    "Regions": {
      "Type": "Map",
      "Items": "{% $states.input.regions %}",
      "ItemProcessor": {"StartAt": "Lambda", "States": {"Lambda": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "seed", "Payload": "{% $states.input %}"}, "End": true}}},
      "Output": "{% $states.input %}",
      "Next": "Next window"
    },
    "Next window": {"Type": "Pass", "Assign": {"i": "{% $i + 1 %}"}, "Next": "More windows?"},
    "Done": {"Type": "Succeed"}
  }
}`
	m, err := local.Load([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	regions, _ := json.Marshal(DefaultRegions)
	ok := local.InvokerFunc(func(context.Context, string, string, json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{}`), nil
	})
	// One account's 90 days: 4,320 windows of 30 minutes.
	in := `{"windows": 4320, "regions": ` + string(regions) + `}`
	res, err := m.Execute(context.Background(), json.RawMessage(in), local.Options{Invoker: ok, Clock: local.NewFakeClock(time.Now()), HistoryLimit: -1})
	if err != nil || res.Status != "SUCCEEDED" {
		t.Fatalf("seed shape: %v %+v", err, res)
	}
	perWindow := float64(res.Stats.HistoryEvents) / 4320
	if res.Stats.HistoryEvents <= 25000 {
		t.Fatalf("seed shape history %d events: expected far above 25,000", res.Stats.HistoryEvents)
	}
	t.Logf("seed shape: %d history events for 90 days (%.0f per window, %.1fx the limit; the limit is reached after %.1f days)",
		res.Stats.HistoryEvents, perWindow, float64(res.Stats.HistoryEvents)/25000, 25000/perWindow/48)
}

func TestMake(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	p, err := Make(context.Background(), Input{Start: start, End: start.Add(24 * time.Hour), Window: 30 * time.Minute,
		Accounts: []string{"111111111111", "222222222222"}, Regions: []string{"us-east-1"}, Rate: 2, EventsPerHour: 5000, LambdaMemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	// 5,000 events/h for 24 h: 2,400 pages per partition, 1,620 per invocation: 2 invocations.
	if p.Partitions != 2 || p.Windows != 96 || p.MinimumRequests != 4800 || p.MinimumDurationSeconds != 1200 || p.LambdaInvocations != 4 || p.Executions != 3 {
		t.Errorf("plan %+v", p)
	}
	if p.Assumptions.RegionsAll != "" || p.Assumptions.AccountsDefault != "" || p.Assumptions.InvocationSeconds != 810 {
		t.Errorf("assumptions %+v", p.Assumptions)
	}
	if want := Price(p.StateTransitions, 4, 4800, 2, 1024); p.Cost != want {
		t.Errorf("cost %+v, want %+v", p.Cost, want)
	}
}

func TestPrice(t *testing.T) {
	t.Parallel()
	c := Price(1000, 10, 3240, 2, 2048)
	// 1,000 transitions: $0.025; 10 invocations of 2 GB for 1,620 + 10 s.
	want := Cost{StepFunctions: 0.025, Lambda: 10*LambdaPerRequest + 1630*2*LambdaPerGBSecond}
	want.Total = want.StepFunctions + want.Lambda
	if math.Abs(c.StepFunctions-want.StepFunctions) > 1e-12 || math.Abs(c.Lambda-want.Lambda) > 1e-12 || math.Abs(c.Total-want.Total) > 1e-12 {
		t.Errorf("Price = %+v, want %+v", c, want)
	}
}

func TestMapConcurrency(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                  string
		requested, unreserved int
		explicit              bool
		want                  int
		lowered               bool
		refused               bool
	}{
		{"default fits", 40, 1000, false, 40, false, false},
		{"explicit at the limit", 900, 1000, true, 900, false, false},
		{"explicit above the limit", 901, 1000, true, 0, false, true},
		{"default lowered", 40, 40, false, 36, true, false},
		{"small account", 40, 10, false, 9, true, false},
		{"explicit small fits", 5, 10, true, 5, false, false},
		{"nothing left", 1, 1, false, 0, false, true},
		{"no concurrency", 40, 0, false, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, lowered, err := MapConcurrency(tc.requested, tc.explicit, tc.unreserved)
			var ce *ConcurrencyError
			if tc.refused != (err != nil) || (err != nil && !errors.As(err, &ce)) {
				t.Fatalf("err %v, want refused %v", err, tc.refused)
			}
			if n != tc.want || lowered != tc.lowered {
				t.Errorf("MapConcurrency(%d, %v, %d) = %d, lowered %v; want %d, %v", tc.requested, tc.explicit, tc.unreserved, n, lowered, tc.want, tc.lowered)
			}
		})
	}
}

// An organization in one execution: the partitions are read from the
// staging bucket and the children's results written back to it, so the
// execution input, every state output and every task payload stay far under
// the 256 KiB quota, and every execution's history far under 25,000 events,
// at 17,000 and at 85,000 partitions. The plan executes every child (a pure
// stub each): about 9 s for 17,000 and 45 s for 85,000 on this kind of
// machine, several times that under the race detector.
func TestPlanShape(t *testing.T) {
	t.Parallel()
	// The organization shapes the scale issue names run in make e2e
	// (plan_scale_test.go): 1,000 and 5,000 accounts. This one keeps the
	// same checks in make test.
	checkPlanAtScale(t, 50, 90)
}

// checkPlanAtScale plans accounts x 17 regions x days and checks every size
// against its quota.
func checkPlanAtScale(t *testing.T, accounts, days int) {
	t.Helper()
	end := time.Date(2025, 11, 23, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range accounts {
		ids = append(ids, fmt.Sprintf("%012d", 100000000000+i))
	}
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	p, err := Make(context.Background(), Input{Start: start, End: end, Window: 30 * time.Minute, Accounts: ids, Rate: 2, LambdaMemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	parts := accounts * 17
	if p.Partitions != parts || p.Executions != parts+1 || p.LambdaInvocations != parts || p.WindowsPerPartition != days*48 {
		t.Fatalf("plan %+v", p)
	}
	sz := p.Sizes
	if !sz.Within() || sz.Limit != 256*1024 {
		t.Fatalf("sizes %+v: over the quota", sz)
	}
	// Small whatever the partition count: a few hundred bytes.
	for what, n := range map[string]int{"execution input": sz.ExecutionInput, "state output": sz.StateOutput.Bytes, "task request": sz.TaskRequest.Bytes, "task result": sz.TaskResult.Bytes} {
		if n == 0 || n > 2048 {
			t.Errorf("%s %d bytes", what, n)
		}
	}
	// The partitions object holds them all: about 50 bytes each.
	if sz.PartitionsObject < 45*parts || sz.PartitionsObject > 60*parts {
		t.Errorf("partitions object %d bytes for %d partitions", sz.PartitionsObject, parts)
	}
	if p.MaxHistoryEvents >= 25000 || p.ParentHistoryEvents > 30 || p.ParentHistoryEvents > p.MaxHistoryEvents || p.HistoryLimit != 25000 {
		t.Errorf("history: parent %d, largest %d events (limit %d)", p.ParentHistoryEvents, p.MaxHistoryEvents, p.HistoryLimit)
	}
	t.Logf("%d partitions: execution input %d bytes, partitions object %d bytes, largest state output %d bytes (%s), task request %d (%s), task result %d (%s); history %d events in the parent, at most %d; %d transitions, $%.2f",
		p.Partitions, sz.ExecutionInput, sz.PartitionsObject, sz.StateOutput.Bytes, sz.StateOutput.State, sz.TaskRequest.Bytes, sz.TaskRequest.State,
		sz.TaskResult.Bytes, sz.TaskResult.State, p.ParentHistoryEvents, p.MaxHistoryEvents, p.StateTransitions, p.Cost.Total)
}

// The duration counts rounds of MaxConcurrency partitions.
func TestMakeConcurrency(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	in := Input{Start: start, End: start.Add(24 * time.Hour), Window: 30 * time.Minute, Accounts: []string{"111111111111", "222222222222", "333333333333"},
		Regions: []string{"us-east-1"}, Rate: 2, EventsPerHour: 5000, LambdaMemoryMB: 1024}
	for _, tc := range []struct {
		conc    int
		seconds float64
	}{{1, 3 * 1200}, {2, 2 * 1200}, {3, 1200}, {0, 1200}} {
		in.MaxConcurrency = tc.conc
		p, err := Make(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if p.MinimumDurationSeconds != tc.seconds || (tc.conc > 0 && p.MaxConcurrency != tc.conc) {
			t.Errorf("max concurrency %d: %g s, concurrency %d; want %g s", tc.conc, p.MinimumDurationSeconds, p.MaxConcurrency, tc.seconds)
		}
	}
}
