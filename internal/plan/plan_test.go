package plan

import (
	"context"
	"encoding/json"
	"errors"
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
