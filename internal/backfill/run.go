package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/statemachine"
	"github.com/trailfill/trailfill/statemachine/local"
)

// LocalMachine is the embedded state machine definition with its Task bound
// to contract.LocalFunctionName and its staging bucket
// contract.LocalStagingBucket, ready for the local executor.
func LocalMachine() (*local.Machine, error) {
	return Machine(contract.LocalFunctionName)
}

// Machine is the embedded definition with its Task bound to functionName
// and its staging bucket contract.LocalStagingBucket.
func Machine(functionName string) (*local.Machine, error) {
	m, err := local.Load([]byte(statemachine.Render(functionName, contract.LocalStagingBucket)))
	if err != nil {
		return nil, fmt.Errorf("load the embedded state machine: %w", err)
	}
	return m, nil
}

// LocalExecution is one execution of the backfill state machine in the
// local executor, with its staging bucket (contract.LocalStagingBucket) in
// Staging: Execute writes the partitions there, as `trailfill start` writes
// them to the stack's staging bucket, and reads the child results back.
type LocalExecution struct {
	// Machine is the definition to execute (nil: LocalMachine()).
	Machine *local.Machine
	// Name is the execution name: the partitions are staged at
	// contract.PartitionsObjectKey(Name), the results under
	// contract.ResultsPrefix(Name).
	Name string
	// Input is the execution input; Execute sets PartitionsKey and
	// Partitions.
	Input      contract.ExecutionInput
	Partitions []contract.Partition
	// Staging holds the staging bucket: a local.DirS3 folder, local.MemS3,
	// or the emulator's S3.
	Staging local.S3
	// Options for the executor; Execute sets S3 and ExecutionName.
	Options local.Options
	// AllResults also reads the SUCCEEDED result files (the summaries);
	// the FAILED ones are always read.
	AllResults bool
}

// LocalOutcome is what a local execution ended with.
type LocalOutcome struct {
	*local.Result
	// Outcome is the execution's output when it succeeded, or the body of
	// its typed failure cause (contract.ErrorPartitionsFailed); nil when
	// it ended otherwise (its Error and Cause say how).
	Outcome *contract.ExecutionOutput
	// Results are the child results the Outcome locates (nil without an
	// Outcome).
	Results *Results
	// PartitionsObject is the size of the staged partitions object.
	PartitionsObject int
}

// Execute stages the partitions, runs the execution and reads its results.
// An error means it could not run or its results cannot be read; an
// execution that ran and failed is an outcome whose Status says so.
func (e LocalExecution) Execute(ctx context.Context) (*LocalOutcome, error) {
	machine := e.Machine
	if machine == nil {
		var err error
		if machine, err = LocalMachine(); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(e.Partitions)
	if err != nil {
		return nil, fmt.Errorf("encode the partitions: %w", err)
	}
	key := contract.PartitionsObjectKey(e.Name)
	if err := e.Staging.PutObject(ctx, contract.LocalStagingBucket, key, body); err != nil {
		return nil, fmt.Errorf("stage the partitions: %w", err)
	}
	in := e.Input
	in.PartitionsKey, in.Partitions = key, len(e.Partitions)
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode the execution input: %w", err)
	}
	opts := e.Options
	opts.S3, opts.ExecutionName = e.Staging, e.Name
	res, err := machine.Execute(ctx, input, opts)
	if err != nil {
		return nil, fmt.Errorf("execute the state machine locally: %w", err)
	}
	out := &LocalOutcome{Result: res, PartitionsObject: len(body)}
	switch {
	case res.Status == local.StatusSucceeded:
		var o contract.ExecutionOutput
		if err := json.Unmarshal(res.Output, &o); err != nil {
			return out, fmt.Errorf("decode the state machine output: %w", err)
		}
		out.Outcome = &o
	case res.Error == contract.ErrorPartitionsFailed:
		c, err := contract.DecodeFailureCause(res.Cause)
		if err != nil {
			return out, err
		}
		out.Outcome = &c.ExecutionOutput
	default:
		return out, nil
	}
	if out.Results, err = ReadResults(ctx, e.Staging, out.Outcome.Results, e.AllResults); err != nil {
		return out, err
	}
	return out, nil
}

// RunOptions say what RunLocal runs.
type RunOptions struct {
	// Name is the execution name (see LocalExecution).
	Name string
	// Input is the execution input, as `trailfill start` would send it
	// (without the partitions: RunLocal stages them); its Destination must
	// be Store's.
	Input      contract.ExecutionInput
	Partitions []contract.Partition
	// Staging holds the staging bucket (see LocalExecution).
	Staging  local.S3
	Store    archive.Store
	Clients  *awsconf.Clients
	OrgID    string
	Logger   *slog.Logger     // nil: discard
	Progress *engine.Progress // nil: not counted
	// Clock drives the executor's Retry waits; nil is the system clock.
	Clock local.Clock
}

// RunSummary is what a local execution did.
type RunSummary struct {
	// Status is the execution's (SUCCEEDED, FAILED, ...); Error and Cause
	// say why it did not succeed.
	Status, Error, Cause string
	// Outcome holds the Map Run's counts and the results location (nil
	// when the execution ended before its partitions were counted).
	Outcome *contract.ExecutionOutput
	// Partitions are the summaries of the partitions archived and Failures
	// the partitions that failed, read from the child results.
	Partitions []contract.PartitionSummary
	Failures   []contract.PartitionFailure
	// Events, Files, Windows and Skipped add up the child results (the
	// progress counters when the execution ended without results).
	Events    int64
	Files     int64 // trail files written by the partitions archived
	Windows   int   // windows archived by this run
	Skipped   int   // windows found archived already
	Requests  int64
	Throttled int64
	Wall      time.Duration
	Stats     local.Stats
}

// Succeeded reports whether the execution succeeded.
func (s *RunSummary) Succeeded() bool { return s.Status == local.StatusSucceeded }

// RunLocal executes the backfill state machine in-process, the same
// definition the stack deploys, with its Task bound to the backfill handler
// (LocalInvoker): the same code the deployed Lambda runs, and its staging
// bucket in o.Staging. An error means the execution could not run; an
// execution that ran and failed is a summary whose Status says so, with its
// failed partitions read from the child results.
func RunLocal(ctx context.Context, o RunOptions) (*RunSummary, error) {
	progress := o.Progress
	if progress == nil {
		progress = &engine.Progress{}
	}
	h := &Handler{Store: o.Store, OrgID: o.OrgID, Clients: o.Clients, Logger: o.Logger, Progress: progress}
	conc := len(o.Partitions) // every partition at once: each has its own quota
	began := time.Now()
	out, err := LocalExecution{
		Name: o.Name, Input: o.Input, Partitions: o.Partitions, Staging: o.Staging, AllResults: true,
		Options: local.Options{Invoker: LocalInvoker(h), Clock: o.Clock, MaxConcurrency: conc},
	}.Execute(ctx)
	if err != nil && (out == nil || out.Result == nil) {
		return nil, err
	}
	res := out.Result
	sum := &RunSummary{Status: res.Status, Error: res.Error, Cause: res.Cause, Wall: time.Since(began), Stats: res.Stats,
		Events: progress.Events.Load(), Files: progress.Files.Load(), Outcome: out.Outcome}
	for _, p := range o.Partitions {
		lim := o.Clients.Limiter(p.Account, p.Region)
		sum.Requests += lim.Attempts()
		sum.Throttled += lim.ThrottledCount()
	}
	if err != nil {
		return sum, err
	}
	if out.Results != nil {
		// The counts come from the child results: a failed partition counts
		// what its last successful invocation reported.
		sum.Partitions, sum.Failures = out.Results.Succeeded, out.Results.Failed
		sum.Events, sum.Windows, sum.Skipped = Totals(sum.Partitions)
		sum.Files = 0
		for _, p := range sum.Partitions {
			sum.Files += p.Files
		}
		for _, f := range sum.Failures {
			sum.Events += f.Events
			sum.Windows += f.Windows
		}
	}
	return sum, nil
}
