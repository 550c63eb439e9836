// Package engine backfills one partition (an account and a region) of CloudTrail
// management events for a half-open range [start, end) into the archive, so
// that afterwards the archive holds every event of the range once, counting
// the trail files CloudTrail delivered itself.
//
// The work of one run, by file:
//   - plan.go: the partition's manifests (one LIST and the coverage index, a
//     GET only for manifests the index does not vouch for) decide which parts
//     of which windows still need reading; a cursor's Read spans (an earlier
//     invocation's work) are taken off.
//   - pager.go: LookupEvents pagers under the partition's limiter. Pending
//     windows are merged into as few ranges as possible, each one query, so a
//     sparse stretch of days costs one request. Bounds are inclusive and whole
//     seconds: [from, to) is asked as StartTime=from, EndTime=to-1s, and events
//     at or after to are dropped. Dense ranges are split between pagers to hide
//     latency; schedule.go decides how many pagers, where ranges are cut and
//     which part goes first (the oldest: LookupEvents forgets events older
//     than 90 days). Nothing is truncated.
//   - slices.go: which parts of each 5-minute slice are read (pure, table
//     tested); a slice is written as soon as everything pending in it is read.
//   - write.go: trail files are created, never replaced. Before a slice is
//     written, the trail files that can hold its events (native ones and
//     trailfill's, read concurrently with paging by archive.TrailScanner) say
//     which events are already archived; only the others are written, as the
//     slice's next piece, with If-None-Match. A 412 means another run wrote
//     that piece: its events are taken off and the rest goes to the piece
//     after. Concurrent runs therefore leave every event once without a lock.
//     A window's manifest is written after its slices.
//
// A run may stop early at a soft deadline (a Lambda invocation's budget): it
// then writes what it read completely of unfinished slices as pieces and
// reports the spans it read (Result.Read), so the next invocation reads only
// the rest.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/pace"
)

// PageSize is LookupEvents' maximum page size.
const PageSize = 50

// Defaults of Config.
const (
	// DefaultNativeLookahead: archive.DefaultNativeLookahead.
	DefaultNativeLookahead = archive.DefaultNativeLookahead
	// DefaultSettleMargin: LookupEvents fills in over minutes; a window that
	// ends less than this before the run is archived provisionally and read
	// again by a later run.
	DefaultSettleMargin = 20 * time.Minute
)

// Config is what every partition of a backfill shares.
type Config struct {
	Store     archive.Store
	OrgID     string        // AWS Organizations ID for the organization-trail layout, or ""
	Window    time.Duration // window length; DefaultWindow if zero
	MaxPagers int           // concurrent pagers per partition; 16 if zero
	Writers   int           // concurrent archive writes per partition; 4 if zero
	SpoolDir  string        // where read records wait for their slice; os.TempDir() if empty
	// IgnoreNative skips reading native trail files: only trailfill's own
	// trail files are taken into account (--ignore-native).
	IgnoreNative bool
	// NativeLookahead: DefaultNativeLookahead if zero; negative: none (the
	// slice's own day folder only).
	NativeLookahead time.Duration
	// SettleMargin: DefaultSettleMargin if zero; negative for none.
	SettleMargin time.Duration
	// Now is the clock that decides what is settled; time.Now if nil.
	Now      func() time.Time
	Logger   *slog.Logger
	Progress *Progress // optional shared counters
}

// Job is one partition's share of a backfill.
type Job struct {
	Account, Region string
	Start, End      time.Time
	Client          LookupAPI
	// Limiter is the partition's limiter, also installed in Client with
	// pace.Middleware; the engine reads its rate to size concurrency.
	Limiter *pace.Limiter
	// Read are the spans an earlier, interrupted invocation of the same job
	// read completely and wrote (Result.Read of that invocation).
	Read []contract.Span
	// StopAt is a soft deadline: when it passes, the run stops issuing requests,
	// finishes its writes and returns Complete=false. Zero means none.
	StopAt time.Time
	// Selector keeps the events the trail being recovered logs; nil keeps
	// every management event.
	Selector Selector
}

// Selector chooses the management events a trail logs (its event
// selectors): only those are archived.
type Selector interface {
	// Name identifies the selection in manifests and the coverage index; ""
	// is every management event. Windows archived under another selection
	// are read again.
	Name() string
	// Keep reports whether the trail logs the event (its CloudTrailEvent JSON).
	Keep(record []byte) (bool, error)
}

// Result reports one run of a partition.
type Result struct {
	Complete bool
	// Read: when not complete, the spans of unfinished windows read completely
	// (this run's and the job's), for the next invocation.
	Read           []contract.Span
	Events         int64 // events written
	Native         int64 // events native trail files already held
	Present        int64 // events trailfill's own trail files already held (another run's)
	Files          int64 // trail files written
	Windows        int   // windows completed by this run
	WindowsSkipped int   // windows already archived
	WindowsTotal   int
	Provisional    int   // of Windows, archived provisionally (too near the present)
	Pages          int64 // successful LookupEvents answers
	TrailReads     int   // existing trail files read to deduplicate
}

// Progress holds counters shared by all partitions of a backfill, for progress
// display, and what the engine knows of each partition (Partition,
// Partitions: time covered and left, pages read and estimated left). All
// fields are updated atomically.
type Progress struct {
	Events       atomic.Int64
	Files        atomic.Int64
	WindowsDone  atomic.Int64
	WindowsTotal atomic.Int64
	Pages        atomic.Int64

	parts partitions
}

type run struct {
	cfg     Config
	job     Job
	log     *slog.Logger
	now     time.Time
	cancel  context.CancelFunc // stops everything, writes included, on failure
	scanner *archive.TrailScanner
	filter  string             // the selector's name ("": every management event)
	planned *archive.Planned   // what the plan's LIST and coverage index said
	learned []archive.Interval // settled coverage the index does not have yet

	mu      sync.Mutex
	cond    *sync.Cond
	slices  map[int64]*slice // by aligned slice start
	windows []*window
	queue   []*rng
	active  map[*rng]bool
	sched   scheduler
	latency float64 // EWMA of LookupEvents latency, seconds
	stop    bool
	err     error
	res     Result
	warned  map[string]bool
	// softStopped: the soft deadline passed. Writes cut short by the hard
	// deadline after it are not failures: what they did not confirm is not
	// reported as read, and the next invocation reads it again (trail files
	// are created with deterministic names, so a write that did land is found).
	softStopped bool

	writes chan *slice
}

// Run backfills one partition. It returns an error only when the job failed; a
// run stopped at its soft deadline returns Complete=false and no error.
func Run(ctx context.Context, cfg Config, job Job) (Result, error) {
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if err := CheckWindow(cfg.Window); err != nil {
		return Result{}, err
	}
	if job.Start.Nanosecond() != 0 || job.End.Nanosecond() != 0 {
		// LookupEvents bounds are inclusive whole seconds: a fractional end would
		// silently skip its last second.
		return Result{}, fmt.Errorf("range %s..%s of %s/%s: start and end must be whole seconds", job.Start.Format(time.RFC3339Nano), job.End.Format(time.RFC3339Nano), job.Account, job.Region)
	}
	if cfg.MaxPagers <= 0 {
		cfg.MaxPagers = 16
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 4
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	cfg.NativeLookahead = archive.NativeLookahead(cfg.NativeLookahead)
	if cfg.SettleMargin == 0 {
		cfg.SettleMargin = DefaultSettleMargin
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = &Progress{}
	}
	if job.Limiter == nil {
		job.Limiter = pace.NewLimiter(pace.MaxRate)
	}
	job.Start, job.End = job.Start.UTC(), job.End.UTC()
	r := &run{
		cfg:    cfg,
		job:    job,
		log:    cfg.Logger.With("account", job.Account, "region", job.Region),
		now:    cfg.Now().UTC(),
		slices: make(map[int64]*slice),
		active: make(map[*rng]bool),
		writes: make(chan *slice, 64),
	}
	if job.Selector != nil {
		r.filter = job.Selector.Name()
	}
	r.cond = sync.NewCond(&r.mu)
	if err := r.plan(ctx); err != nil {
		return Result{}, err
	}
	return r.execute(ctx)
}

// settled reports whether an interval ending at t, read now, is settled.
func (r *run) settled(t time.Time) bool {
	return r.cfg.SettleMargin < 0 || !t.Add(r.cfg.SettleMargin).After(r.now)
}

func (r *run) execute(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// However the run ends (failure, cancellation by the caller), idle pagers
	// waiting for work must wake up and leave.
	defer context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.stop = true
		r.cond.Broadcast()
		r.mu.Unlock()
	})()
	defer func() {
		for _, s := range r.slices {
			s.closeSpool()
		}
	}()
	r.cancel = cancel
	if len(r.windows) > 0 {
		// Existing trail files are read while the pagers work.
		go r.scanner.Prefetch(ctx, r.prefetchOrder())
	}
	if err := r.restore(ctx); err != nil {
		return Result{}, err
	}
	// Requests get their own context so a soft stop can abandon them while the
	// writes of already-read slices complete.
	reqCtx, cancelReq := context.WithCancel(ctx)
	defer cancelReq()
	if !r.job.StopAt.IsZero() {
		t := time.AfterFunc(time.Until(r.job.StopAt), func() {
			r.mu.Lock()
			r.stop = true
			r.softStopped = true
			r.cond.Broadcast()
			r.mu.Unlock()
			cancelReq()
		})
		defer t.Stop()
	}

	var writers sync.WaitGroup
	for range r.cfg.Writers {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for s := range r.writes {
				if err := r.writeSlice(ctx, s, true); err != nil {
					r.fail(err)
				}
			}
		}()
	}
	var pagers sync.WaitGroup
	for range r.cfg.MaxPagers {
		pagers.Add(1)
		go func() {
			defer pagers.Done()
			for {
				rg := r.take()
				if rg == nil {
					return
				}
				if err := r.drain(reqCtx, rg); err != nil {
					r.fail(err)
					return
				}
			}
		}()
	}
	pagers.Wait()
	close(r.writes)
	writers.Wait()

	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return r.res, err
	}
	if err := ctx.Err(); err != nil {
		if r.cutShort(err) {
			return r.partialResult(), nil
		}
		return r.res, err
	}
	if r.scanner != nil {
		r.res.TrailReads = r.scanner.Reads()
	}
	complete := true
	for _, w := range r.windows {
		complete = complete && w.done
	}
	if complete {
		r.res.Complete = true
		return r.res, r.recordCoverage(ctx)
	}
	// Stopped early: write what is completely read of unfinished slices, so the
	// next invocation reads only the rest, and report every span read.
	for _, s := range r.slices {
		if s.win.done || s.state != reading || len(s.covered) == 0 {
			continue
		}
		if err := r.writeSlice(ctx, s, false); err != nil {
			if r.cutShort(err) {
				break
			}
			return r.res, err
		}
	}
	res := r.partialResult()
	if err := r.recordCoverage(ctx); err != nil && !r.cutShort(err) {
		return res, err
	}
	return res, nil
}

// partialResult is the result of a run that stopped early.
func (r *run) partialResult() Result {
	r.res.Read = r.readSpans()
	if r.scanner != nil {
		r.res.TrailReads = r.scanner.Reads()
	}
	return r.res
}

// cutShort reports whether err is the hard deadline after the soft one.
func (r *run) cutShort(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.softStopped && errors.Is(err, context.DeadlineExceeded)
}

// warnOnce logs a warning once per key.
func (r *run) warnOnce(key, msg string, args ...any) {
	r.mu.Lock()
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	seen := r.warned[key]
	r.warned[key] = true
	r.mu.Unlock()
	if !seen {
		r.log.Warn(msg, args...)
	}
}

func (r *run) fail(err error) {
	if r.cutShort(err) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	r.stop = true
	r.cond.Broadcast()
	r.cancel()
}

// eventRecord is what the pagers hand to a slice.
func eventRecord(e types.Event) (id string, t time.Time, rec string, ok bool) {
	if e.EventTime == nil || e.CloudTrailEvent == nil || e.EventId == nil {
		return "", time.Time{}, "", false
	}
	return *e.EventId, e.EventTime.UTC(), *e.CloudTrailEvent, true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
