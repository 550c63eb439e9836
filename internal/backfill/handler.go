// Package backfill is the unit of work the state machine loops over: one
// invocation archives as much of one partition (account, region) as its time allows
// and returns a cursor for the next. The deployed Lambda and `trailfill run` (which
// executes the same state machine locally) call the same Handler.
package backfill

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/trail"
	"github.com/trailfill/trailfill/internal/validate"
)

// Handler runs one invocation.
type Handler struct {
	Store   archive.Store
	OrgID   string
	Clients *awsconf.Clients
	// Margin is how long before the context deadline an invocation stops reading
	// to finish its writes and answer (a Lambda's deadline is hard).
	Margin    time.Duration
	MaxPagers int
	Logger    *slog.Logger
	Progress  *engine.Progress
	// Now is the clock that decides which windows are settled (time.Now if nil).
	Now func() time.Time
}

// Handle archives what it can of in's partition and returns the next state.
func (h *Handler) Handle(ctx context.Context, in contract.Invocation) (contract.Invocation, error) {
	out, err := h.handle(ctx, in)
	if err != nil {
		return in, &PartitionError{Account: in.Account, Region: in.Region, Err: err}
	}
	return out, nil
}

func (h *Handler) handle(ctx context.Context, in contract.Invocation) (contract.Invocation, error) {
	if err := validate.Account(in.Account); err != nil {
		return in, err
	}
	if err := validate.Region(in.Region); err != nil {
		return in, err
	}
	if !in.Start.Before(in.End) {
		return in, fmt.Errorf("start %s is not before end %s", in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339))
	}
	if in.RoleName != "" && in.RoleName != h.Clients.RoleName {
		return in, fmt.Errorf("this backfill function assumes role %q but the execution asked for %q: start the execution with --role-name %s, or redeploy with that role name", h.Clients.RoleName, in.RoleName, h.Clients.RoleName)
	}
	if in.Destination != "" && in.Destination != h.Store.String() {
		return in, fmt.Errorf("this backfill function writes to %s but the execution asked for %s: omit the destination or use the stack's", h.Store.String(), in.Destination)
	}
	if in.OrgID != "" && in.OrgID != h.OrgID {
		return in, fmt.Errorf("this backfill function writes the layout of organization %q but the execution asked for %q: redeploy with -c orgId=%s, or start the execution without --trail and --org-id", h.OrgID, in.OrgID, in.OrgID)
	}
	window := time.Duration(in.WindowMinutes) * time.Minute
	if in.WindowMinutes == 0 {
		window = engine.DefaultWindow
	}
	if err := engine.CheckWindow(window); err != nil {
		return in, err
	}
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sel, err := trail.ParseSelection(in.Selection)
	if err != nil {
		return in, err
	}
	client, lim, err := h.Clients.LookupClient(ctx, in.Account, in.Region)
	if err != nil {
		return in, err
	}
	job := engine.Job{
		Account: in.Account, Region: in.Region,
		Start: in.Start.UTC(), End: in.End.UTC(),
		Client: client, Limiter: lim,
		Read:     in.Cursor.Read,
		Selector: sel.Selector(in.Region),
	}
	if dl, ok := ctx.Deadline(); ok {
		job.StopAt = dl.Add(-h.Margin)
	}
	cfg := engine.Config{
		Store: h.Store, OrgID: h.OrgID, Window: window, MaxPagers: h.MaxPagers, Logger: log, Progress: h.Progress,
		IgnoreNative:    in.IgnoreNative,
		NativeLookahead: time.Duration(in.NativeLookaheadMinutes) * time.Minute,
		SettleMargin:    time.Duration(in.SettleMinutes) * time.Minute,
		Now:             h.Now,
	}
	began := time.Now()
	res, err := engine.Run(ctx, cfg, job)
	if err != nil {
		return in, err
	}
	out := in
	c := &out.Cursor
	c.Invocations++
	c.Events += res.Events
	c.Native += res.Native
	c.Present += res.Present
	c.Files += res.Files
	c.Pages += res.Pages
	c.Windows += res.Windows
	c.Provisional += res.Provisional
	if c.Invocations == 1 {
		c.WindowsSkipped = res.WindowsSkipped
		c.WindowsTotal = res.WindowsTotal
	}
	c.Read = res.Read
	out.Done = res.Complete
	switch {
	case res.Complete || res.Windows > 0 || spanTime(res.Read) > spanTime(in.Cursor.Read):
		c.Stalled = 0
	default:
		c.Stalled++
		if c.Stalled >= MaxStalled {
			return in, fmt.Errorf("no progress in %d invocations in a row (no window completed, no span of events archived): the function's time budget may be too short for its stop margin (%s), or LookupEvents is unreachable; check the function's logs", c.Stalled, h.Margin)
		}
	}
	log.InfoContext(ctx, "partition invocation finished",
		"account", in.Account, "region", in.Region, "complete", res.Complete,
		"events", res.Events, "native", res.Native, "present", res.Present, "files", res.Files, "pages", res.Pages,
		"windows", res.Windows, "windows_skipped", res.WindowsSkipped, "windows_total", res.WindowsTotal, "provisional", res.Provisional,
		"trail_files_read", res.TrailReads,
		"requests", lim.Attempts(), "throttled", lim.ThrottledCount(), "seconds", time.Since(began).Seconds())
	return out, nil
}

// spanTime is the total length of spans.
func spanTime(spans []contract.Span) time.Duration {
	var d time.Duration
	for _, sp := range spans {
		d += sp.To.Sub(sp.From)
	}
	return d
}

// MaxStalled is how many invocations in a row may make no progress before
// the partition fails instead of looping (the state machine would otherwise
// loop until its history is full).
const MaxStalled = 3

// PartitionError is a failed invocation. Function reports it to the Lambda
// runtime as contract.ErrorPartition, the Step Functions error name.
type PartitionError struct {
	Account, Region string
	Err             error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("partition %s/%s: %v", e.Account, e.Region, e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }
