package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/plan"
)

func (t *tree) plan() *ffcli.Command {
	var f rangeFlags
	var asJSON bool
	var perHour float64
	var memory int
	return t.add("trailfill", command{
		name:       "plan",
		shortUsage: "plan --start T --end T [--accounts A,B] [--regions R1,R2|all] [--events-per-hour N] [--json] [flags]",
		shortHelp:  "Predict a backfill: windows, requests and time at the quota, Lambda invocations, state transitions, history size, cost.",
		longHelp: `plan executes the deployed state machine definition in the local executor with a stub
task that spends time at the quota, and reads the counts off the run. It calls no AWS
API: without --accounts it assumes one account, with --regions all the 17 regions
enabled by default.

Examples:
  trailfill plan --start 2025-08-25T00:00:00Z --end 2025-11-23T00:00:00Z --accounts 111111111111,222222222222
  trailfill plan --start 2025-11-01T00:00:00Z --end 2025-11-02T00:00:00Z --events-per-hour 20000 --json`,
		flags: func(fs *flag.FlagSet) {
			f.register(fs, "")
			fs.BoolVar(&asJSON, "json", false, "print the plan as JSON on stdout")
			fs.Float64Var(&perHour, "events-per-hour", 0, "assumed events per partition and hour (0: the minimum, one request per partition)")
			fs.IntVar(&memory, "lambda-memory", 1024, "backfill Lambda memory in MB, for the cost")
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
			p, err := plan.Make(ctx, plan.Input{
				Start: spec.Start, End: spec.End, Window: spec.Window,
				Accounts: spec.Accounts, Regions: spec.Regions, Rate: spec.Rate,
				EventsPerHour: perHour, LambdaMemoryMB: memory,
			})
			if err != nil {
				return err
			}
			t.warnExpiry(spec, p.Partitions, contract.DefaultMaxConcurrency, perHour)
			if asJSON {
				enc := json.NewEncoder(t.env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(p)
			}
			printPlan(t.env, p)
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
