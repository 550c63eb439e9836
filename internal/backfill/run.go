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
// to contract.LocalFunctionName, ready for the local executor.
func LocalMachine() (*local.Machine, error) {
	m, err := local.Load([]byte(statemachine.Render(contract.LocalFunctionName)))
	if err != nil {
		return nil, fmt.Errorf("load the embedded state machine: %w", err)
	}
	return m, nil
}

// RunOptions say what RunLocal runs.
type RunOptions struct {
	// Input is the execution input, as `trailfill start` would send it; its
	// Destination must be Store's.
	Input    contract.ExecutionInput
	Store    archive.Store
	Clients  *awsconf.Clients
	OrgID    string
	Logger   *slog.Logger     // nil: discard
	Progress *engine.Progress // nil: not counted
	// Clock drives the executor's Retry waits; nil is the system clock.
	Clock local.Clock
	// MaxConcurrency caps the partitions run at once in-process; 0: all.
	MaxConcurrency int
}

// RunSummary is what a local execution did.
type RunSummary struct {
	// Status is the execution's (SUCCEEDED, FAILED, ...); Error and Cause
	// say why it did not succeed.
	Status, Error, Cause string
	// Partitions are the state machine's per-partition summaries (only when
	// it succeeded).
	Partitions []contract.PartitionSummary
	Events     int64
	Files      int64
	Windows    int // windows archived by this run
	Skipped    int // windows found archived already
	Requests   int64
	Throttled  int64
	Wall       time.Duration
	Stats      local.Stats
}

// Succeeded reports whether the execution succeeded.
func (s *RunSummary) Succeeded() bool { return s.Status == "SUCCEEDED" }

// RunLocal executes the backfill state machine in-process, the same
// definition the stack deploys, with its Task bound to the backfill handler
// (LocalInvoker): the same code the deployed Lambda runs. An error means the
// execution could not run; an execution that ran and failed is a summary
// whose Status says so.
func RunLocal(ctx context.Context, o RunOptions) (*RunSummary, error) {
	machine, err := LocalMachine()
	if err != nil {
		return nil, err
	}
	progress := o.Progress
	if progress == nil {
		progress = &engine.Progress{}
	}
	h := &Handler{Store: o.Store, OrgID: o.OrgID, Clients: o.Clients, Logger: o.Logger, Progress: progress}
	input, err := json.Marshal(o.Input)
	if err != nil {
		return nil, fmt.Errorf("encode the execution input: %w", err)
	}
	conc := o.MaxConcurrency
	if conc <= 0 {
		conc = len(o.Input.Partitions)
	}
	began := time.Now()
	res, err := machine.Execute(ctx, input, local.Options{Invoker: LocalInvoker(h), Clock: o.Clock, MaxConcurrency: conc})
	if err != nil {
		return nil, fmt.Errorf("execute the state machine locally: %w", err)
	}
	sum := &RunSummary{Status: res.Status, Error: res.Error, Cause: res.Cause, Wall: time.Since(began), Stats: res.Stats,
		Events: progress.Events.Load(), Files: progress.Files.Load()}
	for _, p := range o.Input.Partitions {
		lim := o.Clients.Limiter(p.Account, p.Region)
		sum.Requests += lim.Attempts()
		sum.Throttled += lim.ThrottledCount()
	}
	if !sum.Succeeded() {
		return sum, nil
	}
	var out contract.ExecutionOutput
	if err := json.Unmarshal(res.Output, &out); err != nil {
		return sum, fmt.Errorf("decode the state machine output: %w", err)
	}
	sum.Partitions = out.Partitions
	for _, p := range out.Partitions {
		sum.Windows += p.Windows
		sum.Skipped += p.WindowsSkipped
	}
	return sum, nil
}
