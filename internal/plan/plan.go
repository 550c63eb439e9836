// Package plan predicts what a backfill costs before it runs: partitions,
// windows, the least LookupEvents requests and the time they take at the
// quota, Lambda invocations, Step Functions state transitions, the history
// of each execution, the payload sizes against the Step Functions quota,
// and the bill. It executes the embedded state machine definition in the
// local executor, its partitions object in an in-memory staging bucket as
// `trailfill start` stages it, with a stub function that consumes time at
// the quota, and reads the counts off the run: the definition that will
// run is the one measured. It calls no AWS API.
package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/statemachine/local"
)

// Prices used by the estimate: us-east-1 list prices of Step Functions
// Standard workflows (https://aws.amazon.com/step-functions/pricing/) and of
// Lambda on arm64 (https://aws.amazon.com/lambda/pricing/).
const (
	SFNPerTransition  = 0.025 / 1000     // per state transition
	LambdaPerGBSecond = 0.0000133334     // arm64
	LambdaPerRequest  = 0.20 / 1_000_000 // per invocation
)

// InvocationSeconds is how long one invocation reads: a 900 s Lambda stops
// contract.DefaultStopMarginSeconds early.
const InvocationSeconds = 900 - contract.DefaultStopMarginSeconds

// DefaultRegions are the 17 regions enabled by default in every account:
// the stand-in for --regions all, since plan calls no AWS API.
var DefaultRegions = []string{
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
	"ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
	"sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
}

// placeholderAccount stands for the caller's account.
const placeholderAccount = "000000000000"

// Input is what a plan is made for.
type Input struct {
	Start, End time.Time
	Window     time.Duration
	Accounts   []string // empty: the caller's account
	Regions    []string // empty: DefaultRegions
	Rate       float64  // LookupEvents requests/s per partition
	// EventsPerHour is the assumed events per partition and hour; 0: the
	// minimum, one request per partition.
	EventsPerHour  float64
	LambdaMemoryMB int
	// MaxConcurrency is the Distributed Map's (0:
	// contract.DefaultMaxConcurrency): how many partitions run at once.
	MaxConcurrency int
}

// Plan is what `trailfill plan --json` prints.
type Plan struct {
	Start                  string  `json:"start"`
	End                    string  `json:"end"`
	Accounts               int     `json:"accounts"`
	Regions                int     `json:"regions"`
	Partitions             int     `json:"partitions"`
	WindowsPerPartition    int     `json:"windows_per_partition"`
	Windows                int     `json:"windows"`
	MinimumRequests        int64   `json:"minimum_requests"`
	MinimumDurationSeconds float64 `json:"minimum_duration_seconds"`
	// MaxConcurrency partitions run at once: the duration is that many
	// partitions' worth of time per round of them.
	MaxConcurrency    int `json:"max_concurrency"`
	LambdaInvocations int `json:"lambda_invocations"`
	StateTransitions  int `json:"state_transitions"`
	Executions        int `json:"executions"`
	// ParentHistoryEvents is the parent execution's history; the
	// MaxHistoryEvents the largest of any execution (a partition's child).
	ParentHistoryEvents int         `json:"parent_history_events"`
	MaxHistoryEvents    int         `json:"max_execution_history_events"`
	HistoryLimit        int         `json:"execution_history_limit"`
	Sizes               Sizes       `json:"payload_sizes"`
	Cost                Cost        `json:"estimated_cost_usd"`
	Assumptions         Assumptions `json:"assumptions"`
}

// Sizes are the payloads of the execution, in bytes of compact JSON,
// against the Step Functions quota of 256 KiB for an execution input, a
// state's output, a task's request and its result (Limit).
type Sizes struct {
	ExecutionInput int `json:"execution_input_bytes"`
	// PartitionsObject is the staged partitions object, which the
	// Distributed Map reads from S3: no payload quota applies to it.
	PartitionsObject int `json:"partitions_object_bytes"`
	// StateOutput, TaskRequest and TaskResult are the largest over the
	// parent and every child execution, with the state that produced them:
	// the task request and result are the backfill function's payload and
	// answer (the stub's; a real cursor adds its spans read).
	StateOutput Size `json:"max_state_output"`
	TaskRequest Size `json:"max_task_request"`
	TaskResult  Size `json:"max_task_result"`
	Limit       int  `json:"limit_bytes"`
}

// Size is one payload's size and the state that produced it.
type Size struct {
	Bytes int    `json:"bytes"`
	State string `json:"state"`
}

// Within reports whether every payload is under the quota.
func (s Sizes) Within() bool {
	return s.ExecutionInput <= s.Limit && s.StateOutput.Bytes <= s.Limit && s.TaskRequest.Bytes <= s.Limit && s.TaskResult.Bytes <= s.Limit
}

// Cost is the estimated bill of one execution.
type Cost struct {
	StepFunctions float64 `json:"step_functions"`
	Lambda        float64 `json:"lambda"`
	Total         float64 `json:"total"`
}

// Assumptions records what the estimate assumed.
type Assumptions struct {
	EventsPerPartitionHour float64 `json:"events_per_partition_hour"`
	RequestsPerSecond      float64 `json:"requests_per_second"`
	InvocationSeconds      int     `json:"invocation_seconds"`
	LambdaMemoryMB         int     `json:"lambda_memory_mb"`
	RegionsAll             string  `json:"regions_all,omitempty"`
	AccountsDefault        string  `json:"accounts_default,omitempty"`
}

// Make makes the plan.
func Make(ctx context.Context, in Input) (*Plan, error) {
	accounts := in.Accounts
	base := Assumptions{EventsPerPartitionHour: in.EventsPerHour, RequestsPerSecond: in.Rate, InvocationSeconds: InvocationSeconds, LambdaMemoryMB: in.LambdaMemoryMB}
	if len(accounts) == 0 {
		accounts = []string{placeholderAccount}
		base.AccountsDefault = "the caller's account (plan calls no AWS API)"
	}
	regions := in.Regions
	if len(regions) == 0 {
		regions = DefaultRegions
		base.RegionsAll = "the 17 regions enabled by default (plan calls no AWS API)"
	}
	parts := contract.Partitions(accounts, regions)
	conc := in.MaxConcurrency
	if conc <= 0 {
		conc = contract.DefaultMaxConcurrency
	}
	hours := in.End.Sub(in.Start).Hours()
	need := int64(max(1, math.Ceil(in.EventsPerHour*hours/engine.PageSize)))
	perInvocation := int64(float64(InvocationSeconds) * in.Rate)

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
	out, err := backfill.LocalExecution{
		Name:       "plan",
		Partitions: parts,
		Input: contract.ExecutionInput{
			Start:          in.Start.Format(time.RFC3339),
			End:            in.End.Format(time.RFC3339),
			WindowMinutes:  int(in.Window / time.Minute),
			RoleName:       contract.DefaultRoleName,
			MaxConcurrency: conc,
		},
		Staging: &local.MemS3{},
		Options: local.Options{Invoker: stub, Clock: local.NewFakeClock(in.Start), MaxConcurrency: contract.DefaultMaxConcurrency, HistoryLimit: -1},
	}.Execute(ctx)
	if err != nil {
		return nil, fmt.Errorf("execute the state machine for the plan: %w", err)
	}
	res := out.Result
	if res.Status != local.StatusSucceeded {
		return nil, fmt.Errorf("the plan's stub execution %s: %s: %s", res.Status, res.Error, res.Cause)
	}
	wpp := archive.CountWindows(in.Start, in.End, in.Window)
	ms := res.Stats.MaxSizes
	p := &Plan{
		Start: in.Start.Format(time.RFC3339), End: in.End.Format(time.RFC3339),
		Accounts: len(accounts), Regions: len(regions), Partitions: len(parts),
		WindowsPerPartition: wpp, Windows: wpp * len(parts),
		MinimumRequests: need * int64(len(parts)),
		// The same model as the 90-day warning's (ExpiryOf): waves of conc.
		MinimumDurationSeconds: ExpiryOf(in.Start, in.End, in.Start, len(parts), conc, in.Rate, in.EventsPerHour).Duration.Seconds(),
		MaxConcurrency:         conc,
		LambdaInvocations:      res.Stats.TaskInvocations,
		StateTransitions:       res.Stats.TotalTransitions,
		Executions:             res.Stats.Executions,
		ParentHistoryEvents:    res.Stats.HistoryEvents,
		MaxHistoryEvents:       res.Stats.MaxHistoryEvents,
		HistoryLimit:           local.DefaultHistoryLimit,
		Sizes: Sizes{
			ExecutionInput:   res.Stats.Sizes.Input.Bytes,
			PartitionsObject: out.PartitionsObject,
			StateOutput:      Size{ms.StateOutput.Bytes, ms.StateOutput.State},
			TaskRequest:      Size{ms.TaskArguments.Bytes, ms.TaskArguments.State},
			TaskResult:       Size{ms.TaskResult.Bytes, ms.TaskResult.State},
			Limit:            local.MaxPayloadBytes,
		},
		Assumptions: base,
	}
	p.Cost = Price(p.StateTransitions, p.LambdaInvocations, p.MinimumRequests, in.Rate, in.LambdaMemoryMB)
	return p, nil
}

// Price is the bill of an execution: its state transitions, and its Lambda
// invocations and billed duration, which is the time spent at the quota
// (requests / rate) plus about a second of start-up and manifest listing
// per invocation.
func Price(transitions, invocations int, requests int64, rate float64, memoryMB int) Cost {
	var c Cost
	c.StepFunctions = float64(transitions) * SFNPerTransition
	lambdaSeconds := float64(requests)/rate + float64(invocations)
	c.Lambda = float64(invocations)*LambdaPerRequest + lambdaSeconds*float64(memoryMB)/1024*LambdaPerGBSecond
	c.Total = c.StepFunctions + c.Lambda
	return c
}
