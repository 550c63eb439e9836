package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/plan"
	"github.com/trailfill/trailfill/internal/trail"
)

func (t *tree) plan() *ffcli.Command {
	var f rangeFlags
	var asJSON bool
	var perHour float64
	var memory, maxConc int
	return t.add("trailfill", command{
		name:       "plan",
		shortUsage: "plan [--trail NAME|ARN] --start T --end T [--accounts A,B] [--regions R1,R2|all] [--events-per-hour N] [--json] [flags]",
		shortHelp:  "Predict a backfill: windows, requests and time at the quota, Lambda invocations, state transitions, history size, cost.",
		longHelp: `plan executes the deployed state machine definition in the local executor with a stub
task that spends time at the quota, its partitions object in an in-memory staging
bucket, and reads the counts off the run: the history of the parent execution and of
the largest child, and the execution input, the largest state output and the largest
task request and result against the 256 KiB Step Functions quota. It calls no AWS
API (but reading the trail with --trail): without --accounts it assumes one account,
with --regions all the 17 regions enabled by default. With --trail it takes the
trail's accounts and regions, and says which of the trail's selectors log events that
LookupEvents cannot return (data and network activity events). The duration assumes
--max-concurrency partitions at a time.

Examples:
  trailfill plan --start 2025-08-25T00:00:00Z --end 2025-11-23T00:00:00Z --accounts 111111111111,222222222222
  trailfill plan --start 2025-11-01T00:00:00Z --end 2025-11-02T00:00:00Z --events-per-hour 20000 --json`,
		flags: func(fs *flag.FlagSet) {
			f.register(fs, "")
			fs.BoolVar(&asJSON, "json", false, "print the plan as JSON on stdout")
			fs.Float64Var(&perHour, "events-per-hour", 0, "assumed events per partition and hour (0: the minimum, one request per partition)")
			fs.IntVar(&memory, "lambda-memory", 1024, "backfill Lambda memory in MB, for the cost")
			fs.IntVar(&maxConc, "max-concurrency", contract.DefaultMaxConcurrency, "partitions run at once (as trailfill start --max-concurrency), for the duration")
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("plan", args); err != nil {
				return err
			}
			spec, err := f.spec(t.env.Now(), false)
			if err != nil {
				return err
			}
			if perHour < 0 || math.IsInf(perHour, 0) || math.IsNaN(perHour) {
				return usagef("--events-per-hour %g: give 0 or more", perHour)
			}
			if memory < 128 || memory > 10240 {
				return usagef("--lambda-memory %d: give 128 to 10240 MB", memory)
			}
			if maxConc < 1 || maxConc > 10000 {
				return usagef("--max-concurrency %d: give 1 to 10000 partitions at once", maxConc)
			}
			if err := t.resolveTrail(ctx, &f, &spec); err != nil {
				return err
			}
			p, err := plan.Make(ctx, plan.Input{
				Start: spec.Start, End: spec.End, Window: spec.Window,
				Accounts: spec.Accounts, Regions: spec.Regions, Rate: spec.Rate,
				EventsPerHour: perHour, LambdaMemoryMB: memory, MaxConcurrency: maxConc,
			})
			if err != nil {
				return err
			}
			t.warnExpiry(spec, p.Partitions, maxConc, perHour)
			if asJSON {
				enc := json.NewEncoder(t.env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(planWithTrail(p, spec.Trail))
			}
			printPlan(t.env, p)
			printPlanTrail(t.env.Stdout, spec.Trail)
			return nil
		},
	})
}

func printPlan(env *Env, p *plan.Plan) {
	w := env.Stdout
	fmt.Fprintf(w, "Backfill %s .. %s\n", p.Start, p.End)
	fmt.Fprintf(w, "  partitions            %d (%d accounts x %d regions)\n", p.Partitions, p.Accounts, p.Regions)
	fmt.Fprintf(w, "  windows               %d (%d per partition)\n", p.Windows, p.WindowsPerPartition)
	fmt.Fprintf(w, "  minimum requests      %d (assuming %g events per partition-hour)\n", p.MinimumRequests, p.Assumptions.EventsPerPartitionHour)
	fmt.Fprintf(w, "  minimum duration      %s at %g requests/s per partition, %d partitions at a time\n", (time.Duration(p.MinimumDurationSeconds * float64(time.Second))).Round(time.Second), p.Assumptions.RequestsPerSecond, p.MaxConcurrency)
	fmt.Fprintf(w, "  Lambda invocations    %d\n", p.LambdaInvocations)
	fmt.Fprintf(w, "  state transitions     %d over %d executions\n", p.StateTransitions, p.Executions)
	fmt.Fprintf(w, "  history events        %d in the parent execution, at most %d in any execution (limit %d each)\n", p.ParentHistoryEvents, p.MaxHistoryEvents, p.HistoryLimit)
	sz := p.Sizes
	fmt.Fprintf(w, "  execution input       %d bytes (limit %d); partitions object %d bytes in the staging bucket\n", sz.ExecutionInput, sz.Limit, sz.PartitionsObject)
	fmt.Fprintf(w, "  largest state output  %d bytes (%s)\n", sz.StateOutput.Bytes, sz.StateOutput.State)
	fmt.Fprintf(w, "  largest task payload  %d bytes request (%s), %d bytes result (%s)\n", sz.TaskRequest.Bytes, sz.TaskRequest.State, sz.TaskResult.Bytes, sz.TaskResult.State)
	fmt.Fprintf(w, "  estimated cost        $%.4f (Step Functions $%.4f, Lambda $%.4f)\n", p.Cost.Total, p.Cost.StepFunctions, p.Cost.Lambda)
	if p.Assumptions.RegionsAll != "" {
		fmt.Fprintf(w, "  regions all           %s\n", p.Assumptions.RegionsAll)
	}
	if p.Assumptions.AccountsDefault != "" {
		fmt.Fprintf(w, "  accounts              %s\n", p.Assumptions.AccountsDefault)
	}
}

// trailPlan is what --trail adds to the plan.
type trailPlan struct {
	ARN       string   `json:"arn"`
	Selection string   `json:"selection"`
	Notes     []string `json:"notes"`
	// Unrecoverable are the trail's selectors of events LookupEvents does
	// not return.
	Unrecoverable []string `json:"unrecoverable"`
}

// planWithTrail is the plan's JSON document, with a "trail" member under
// --trail.
func planWithTrail(p *plan.Plan, tg *trail.Target) any {
	if tg == nil {
		return p
	}
	return struct {
		*plan.Plan
		Trail trailPlan `json:"trail"`
	}{p, trailPlan{ARN: tg.Trail.ARN, Selection: tg.Selection.Name(), Notes: tg.Notes(), Unrecoverable: append([]string{}, tg.Trail.Unrecoverable...)}}
}

func printPlanTrail(w io.Writer, tg *trail.Target) {
	if tg == nil {
		return
	}
	fmt.Fprintf(w, "  trail                 %s\n", tg.Trail.ARN)
	for _, n := range tg.Notes()[1:] {
		fmt.Fprintf(w, "                        %s\n", n)
	}
}
