package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/statemachine/local"
)

// Prices used by plan (us-east-1, published list prices).
const (
	sfnPerTransition   = 0.025 / 1000     // Standard workflows, per state transition
	lambdaPerGBSecond  = 0.0000133334     // arm64
	lambdaPerRequest   = 0.20 / 1_000_000 // per invocation
	defaultInvocationS = 810              // a 900 s Lambda stops 90 s early
)

// defaultRegions are the 17 regions enabled by default in every account: plan's
// stand-in for --regions all, since plan calls no AWS API.
var defaultRegions = []string{
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
	"ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
	"sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
}

// Plan is what `trailfill plan --json` prints.
type Plan struct {
	Start                  string   `json:"start"`
	End                    string   `json:"end"`
	Accounts               int      `json:"accounts"`
	Regions                int      `json:"regions"`
	Partitions             int      `json:"partitions"`
	WindowsPerPartition    int      `json:"windows_per_partition"`
	Windows                int      `json:"windows"`
	MinimumRequests        int64    `json:"minimum_requests"`
	MinimumDurationSeconds float64  `json:"minimum_duration_seconds"`
	LambdaInvocations      int      `json:"lambda_invocations"`
	StateTransitions       int      `json:"state_transitions"`
	Executions             int      `json:"executions"`
	MaxHistoryEvents       int      `json:"max_execution_history_events"`
	HistoryLimit           int      `json:"execution_history_limit"`
	Cost                   PlanCost `json:"estimated_cost_usd"`
	Assumptions            PlanBase `json:"assumptions"`
}

// PlanCost is the estimated bill of one execution.
type PlanCost struct {
	StepFunctions float64 `json:"step_functions"`
	Lambda        float64 `json:"lambda"`
	Total         float64 `json:"total"`
}

// PlanBase records what the estimate assumed.
type PlanBase struct {
	EventsPerPartitionHour float64 `json:"events_per_partition_hour"`
	RequestsPerSecond      float64 `json:"requests_per_second"`
	InvocationSeconds      int     `json:"invocation_seconds"`
	LambdaMemoryMB         int     `json:"lambda_memory_mb"`
	RegionsAll             string  `json:"regions_all,omitempty"`
	AccountsDefault        string  `json:"accounts_default,omitempty"`
}

func cmdPlan(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "plan", "--start T --end T [--accounts A,B] [--regions R1,R2|all] [--json] ...")
	var f rangeFlags
	f.register(fs, "")
	asJSON := fs.Bool("json", false, "print the plan as JSON on stdout")
	perHour := fs.Float64("events-per-hour", 0, "assumed events per partition and hour (0: the minimum, one request per partition)")
	memory := fs.Int("lambda-memory", 1024, "backfill Lambda memory in MB, for the cost")
	if err := parse(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: plan takes flags only", fs.Arg(0))
	}
	spec, err := f.spec(env.Now(), false)
	if err != nil {
		return err
	}
	if *perHour < 0 || math.IsInf(*perHour, 0) || math.IsNaN(*perHour) {
		return usagef("--events-per-hour %g: give 0 or more", *perHour)
	}
	if *memory < 128 || *memory > 10240 {
		return usagef("--lambda-memory %d: give 128 to 10240 MB", *memory)
	}
	p, err := makePlan(ctx, spec, *perHour, *memory)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	printPlan(env, p)
	return nil
}

// makePlan executes the embedded definition in the local executor with a stub
// function that consumes time at the quota, and reads the counts off the run.
func makePlan(ctx context.Context, spec rangeSpec, perHour float64, memoryMB int) (*Plan, error) {
	accounts := spec.Accounts
	base := PlanBase{EventsPerPartitionHour: perHour, RequestsPerSecond: spec.Rate, InvocationSeconds: defaultInvocationS, LambdaMemoryMB: memoryMB}
	if len(accounts) == 0 {
		accounts = []string{"000000000000"}
		base.AccountsDefault = "the caller's account (plan calls no AWS API)"
	}
	regions := spec.Regions
	if len(regions) == 0 {
		regions = defaultRegions
		base.RegionsAll = "the 17 regions enabled by default (plan calls no AWS API)"
	}
	var parts []contract.Partition
	for _, a := range accounts {
		for _, r := range regions {
			parts = append(parts, contract.Partition{Account: a, Region: r})
		}
	}
	hours := spec.End.Sub(spec.Start).Hours()
	need := int64(max(1, math.Ceil(perHour*hours/engine.PageSize)))
	perInvocation := int64(float64(defaultInvocationS) * spec.Rate)

	machine, err := localMachine()
	if err != nil {
		return nil, err
	}
	// The stub is pure: each invocation consumes up to an invocation's worth of
	// requests at the quota and reports whether the partition is done.
	stub := local.InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
		var st contract.Invocation
		if err := json.Unmarshal(payload, &st); err != nil {
			return nil, fmt.Errorf("decode plan payload: %w", err)
		}
		n := min(perInvocation, need-st.Cursor.Pages)
		st.Cursor.Invocations++
		st.Cursor.Pages += n
		st.Done = st.Cursor.Pages >= need
		return json.Marshal(st)
	})
	input, err := json.Marshal(executionInput(spec, parts, "", 40))
	if err != nil {
		return nil, fmt.Errorf("encode plan input: %w", err)
	}
	res, err := machine.Execute(ctx, input, local.Options{Invoker: stub, Clock: local.NewFakeClock(spec.Start), MaxConcurrency: 40, HistoryLimit: -1})
	if err != nil {
		return nil, fmt.Errorf("execute the state machine for the plan: %w", err)
	}
	if res.Status != "SUCCEEDED" {
		return nil, fmt.Errorf("the plan's stub execution %s: %s: %s", res.Status, res.Error, res.Cause)
	}
	wpp := archive.CountWindows(spec.Start, spec.End, spec.Window)
	p := &Plan{
		Start: spec.Start.Format(time.RFC3339), End: spec.End.Format(time.RFC3339),
		Accounts: len(accounts), Regions: len(regions), Partitions: len(parts),
		WindowsPerPartition: wpp, Windows: wpp * len(parts),
		MinimumRequests:        need * int64(len(parts)),
		MinimumDurationSeconds: float64(need) / spec.Rate,
		LambdaInvocations:      res.Stats.TaskInvocations,
		StateTransitions:       res.Stats.TotalTransitions,
		Executions:             res.Stats.Executions,
		MaxHistoryEvents:       res.Stats.MaxHistoryEvents,
		HistoryLimit:           local.DefaultHistoryLimit,
		Assumptions:            base,
	}
	p.Cost.StepFunctions = float64(p.StateTransitions) * sfnPerTransition
	// Billed duration: the time spent at the quota, plus about a second of start-up
	// and manifest listing per invocation.
	lambdaSeconds := float64(p.MinimumRequests)/spec.Rate + float64(p.LambdaInvocations)
	p.Cost.Lambda = float64(p.LambdaInvocations)*lambdaPerRequest + lambdaSeconds*float64(memoryMB)/1024*lambdaPerGBSecond
	p.Cost.Total = p.Cost.StepFunctions + p.Cost.Lambda
	return p, nil
}

func printPlan(env *Env, p *Plan) {
	w := env.Stdout
	fmt.Fprintf(w, "Backfill %s .. %s\n", p.Start, p.End)
	fmt.Fprintf(w, "  partitions            %d (%d accounts x %d regions)\n", p.Partitions, p.Accounts, p.Regions)
	fmt.Fprintf(w, "  windows               %d (%d per partition)\n", p.Windows, p.WindowsPerPartition)
	fmt.Fprintf(w, "  minimum requests      %d (assuming %g events per partition-hour)\n", p.MinimumRequests, p.Assumptions.EventsPerPartitionHour)
	fmt.Fprintf(w, "  minimum duration      %s at %g requests/s per partition (partitions run in parallel)\n", (time.Duration(p.MinimumDurationSeconds * float64(time.Second))).Round(time.Second), p.Assumptions.RequestsPerSecond)
	fmt.Fprintf(w, "  Lambda invocations    %d\n", p.LambdaInvocations)
	fmt.Fprintf(w, "  state transitions     %d over %d executions\n", p.StateTransitions, p.Executions)
	fmt.Fprintf(w, "  max history events    %d per execution (limit %d)\n", p.MaxHistoryEvents, p.HistoryLimit)
	fmt.Fprintf(w, "  estimated cost        $%.4f (Step Functions $%.4f, Lambda $%.4f)\n", p.Cost.Total, p.Cost.StepFunctions, p.Cost.Lambda)
	if p.Assumptions.RegionsAll != "" {
		fmt.Fprintf(w, "  regions all           %s\n", p.Assumptions.RegionsAll)
	}
	if p.Assumptions.AccountsDefault != "" {
		fmt.Fprintf(w, "  accounts              %s\n", p.Assumptions.AccountsDefault)
	}
}
