// Package engine backfills one partition (an account and a region) of CloudTrail
// management events for a half-open range [start, end) into the archive.
//
// How it reads LookupEvents:
//   - The windows that still need work (no manifest covering them) are merged into
//     as few contiguous time ranges as possible, and each range is one query: a
//     sparse or empty stretch of days costs a single request, not one per window.
//   - Bounds are inclusive and event times whole seconds, so a range [from, to) is
//     asked as StartTime=from, EndTime=to-1s, and anything at or after to is dropped.
//   - Pages come newest first. After each page every event at or after the oldest
//     event's next second is known, so 5-minute slices are written as soon as they
//     are fully covered, and memory holds only slices still being read.
//   - Latency is hidden by splitting: when a range proves dense (a full page and
//     more to come) and fewer pagers are busy than the quota can feed at the
//     measured latency, the unread part of the busiest range is cut in two at a
//     whole second; the running pager keeps its NextToken and stops at the cut, a new
//     pager reads the older half. All pagers share the partition's limiter.
//   - Nothing is truncated: a range is read until LookupEvents has no NextToken.
//
// A window's manifest is written after all its trail files, so its presence means
// the window is archived; re-runs skip such windows. A run may stop early at a soft
// deadline (a Lambda invocation's budget): it then writes the completely read parts
// of unfinished slices as trail files of their own and reports them as pieces (with
// counts and checksums), so the next invocation reads only the rest and builds the
// window's manifest without reading anything back.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/pace"
)

// PageSize is LookupEvents' maximum page size.
const PageSize = 50

// Config is what every partition of a backfill shares.
type Config struct {
	Store     archive.Store
	OrgID     string        // AWS Organizations ID for the organization-trail layout, or ""
	Window    time.Duration // window length; DefaultWindow if zero
	MaxPagers int           // concurrent pagers per partition; 16 if zero
	Writers   int           // concurrent archive writes per partition; 4 if zero
	SpoolDir  string        // where read records wait for their slice; os.TempDir() if empty
	Logger    *slog.Logger
	Progress  *Progress // optional shared counters
}

// Job is one partition's share of a backfill.
type Job struct {
	Account, Region string
	Start, End      time.Time
	Client          LookupAPI
	// Limiter is the partition's limiter, also installed in Client with
	// pace.Middleware; the engine reads its rate to size concurrency.
	Limiter *pace.Limiter
	// Done lists the pieces of slices that an earlier, interrupted invocation of
	// the same job wrote, in windows that have no manifest yet (Result.Done of that
	// invocation). Each piece is one trail file (none if it had no events).
	Done []Piece
	// StopAt is a soft deadline: when it passes, the run stops issuing requests,
	// finishes its writes and returns Complete=false. Zero means none.
	StopAt time.Time
}

// Result reports one run of a partition.
type Result struct {
	Complete       bool    `json:"complete"`
	Done           []Piece `json:"done,omitempty"` // when not complete: written pieces of unfinished windows
	Events         int64   `json:"events"`
	Files          int64   `json:"files"`
	Windows        int     `json:"windows"`         // windows completed by this run
	WindowsSkipped int     `json:"windows_skipped"` // windows already archived
	WindowsTotal   int     `json:"windows_total"`
	Pages          int64   `json:"pages"` // successful LookupEvents answers
}

// Piece is a part of a 5-minute slice that was read completely and written as
// one trail file (Events 0: no file); it travels in the invocation cursor.
type Piece = contract.Piece

// Progress holds counters shared by all partitions of a backfill, for progress
// display. All fields are updated atomically.
type Progress struct {
	Events       atomic.Int64
	Files        atomic.Int64
	WindowsDone  atomic.Int64
	WindowsTotal atomic.Int64
	Pages        atomic.Int64
}

// slice is one 5-minute slice of a pending window. Its interval is covered by
// pieces: parts read completely by this run (covered) and parts an interrupted
// earlier invocation already wrote (restored). Each piece is written as one trail
// file; a slice read in one go is a single piece, the whole slice.
type slice struct {
	start     time.Time // aligned 5-minute slice start
	from, to  time.Time // clip within the window
	win       *window
	uncovered time.Duration
	covered   []archive.Interval // read completely by this run
	pieces    []Piece            // written: by an earlier invocation, then by this run
	spool     *spool             // records read and not yet written (nil: none yet)
	flushed   bool               // fully covered, handed to a writer
	written   bool               // every piece is in the archive
	partial   bool               // covered pieces written at a soft stop
}

type window struct {
	archive.Window
	old        *archive.Manifest
	slicesLeft int
	objects    []archive.ManifestObject
	events     int
	done       bool
}

// rng is one pager's query: StartTime=qFrom, EndTime=qTo-1s (bound to its NextToken).
// Events in [floor, qTo) are all received; a split raises lo, where it stops.
type rng struct {
	qFrom, qTo time.Time
	lo, floor  time.Time
	received   int
}

type run struct {
	cfg    Config
	job    Job
	log    *slog.Logger
	cancel context.CancelFunc // stops everything, writes included, on failure

	mu      sync.Mutex
	cond    *sync.Cond
	slices  map[int64]*slice // by aligned slice start
	windows []*window
	queue   []*rng
	active  map[*rng]bool
	latency float64 // EWMA of LookupEvents latency, seconds
	stop    bool
	err     error
	res     Result

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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = &Progress{}
	}
	if job.Limiter == nil {
		job.Limiter = pace.NewLimiter(pace.MaxRate)
	}
	r := &run{
		cfg:    cfg,
		job:    job,
		log:    cfg.Logger.With("account", job.Account, "region", job.Region),
		slices: make(map[int64]*slice),
		active: make(map[*rng]bool),
		writes: make(chan *slice, 64),
	}
	r.cond = sync.NewCond(&r.mu)
	if err := r.plan(ctx); err != nil {
		return Result{}, err
	}
	return r.execute(ctx)
}

// plan reads the partition's manifests and sets up windows, slices and ranges.
func (r *run) plan(ctx context.Context) error {
	j := r.job
	all := archive.Windows(j.Start, j.End, r.cfg.Window)
	r.res.WindowsTotal = len(all)
	r.cfg.Progress.WindowsTotal.Add(int64(len(all)))
	if len(all) == 0 {
		return nil
	}
	manifests, err := archive.PartitionManifests(ctx, r.cfg.Store, j.Account, j.Region, all[0].Start, all[len(all)-1].Start.Add(time.Second))
	if err != nil {
		return fmt.Errorf("read manifests of %s/%s (check read access to the archive): %w", j.Account, j.Region, err)
	}
	var pending []archive.Interval
	for _, w := range all {
		m := manifests[w.Start.Unix()]
		if m != nil && m.Covers(w.From, w.To) {
			r.res.WindowsSkipped++
			r.cfg.Progress.WindowsDone.Add(1)
			continue
		}
		if m != nil {
			// An earlier run covered another part of this window: redo the hull of
			// both so the new manifest covers everything, and replace its files.
			if m.From.Before(w.From) {
				w.From = m.From
			}
			if m.To.After(w.To) {
				w.To = m.To
			}
		}
		win := &window{Window: w, old: m}
		r.windows = append(r.windows, win)
		for ss := w.From.Truncate(archive.SliceLength); ss.Before(w.To); ss = ss.Add(archive.SliceLength) {
			s := &slice{start: ss, from: maxTime(ss, w.From), to: minTime(ss.Add(archive.SliceLength), w.To), win: win}
			s.uncovered = s.to.Sub(s.from)
			r.slices[ss.Unix()] = s
			win.slicesLeft++
		}
		pending = append(pending, w.Interval())
	}
	var done []archive.Interval
	for _, p := range j.Done {
		done = append(done, archive.Interval{From: p.From, To: p.To})
	}
	done = archive.Coalesce(done)
	for _, iv := range archive.Coalesce(pending) {
		for _, part := range archive.Subtract(iv, done) {
			r.queue = append(r.queue, &rng{qFrom: part.From, qTo: part.To, lo: part.From, floor: part.To})
		}
	}
	// Newest first, like LookupEvents itself.
	sort.Slice(r.queue, func(a, b int) bool { return r.queue[a].qTo.After(r.queue[b].qTo) })
	return nil
}

// restore accounts for pieces an earlier invocation wrote (Job.Done), from the
// cursor alone: resuming reads nothing back. It runs before any pager starts.
func (r *run) restore(ctx context.Context) error {
	var ready []*slice
	for _, p := range r.job.Done {
		s := r.slices[p.From.Truncate(archive.SliceLength).Unix()]
		if s == nil || p.From.Before(s.from) || p.To.After(s.to) || !p.From.Before(p.To) {
			return fmt.Errorf("the cursor's written piece %s..%s does not belong to this job's pending windows: start the partition again without the cursor",
				p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
		}
		s.pieces = append(s.pieces, p)
		s.uncovered -= p.To.Sub(p.From)
		if s.uncovered <= 0 && !s.flushed {
			s.flushed = true
			ready = append(ready, s)
		}
	}
	for _, s := range ready {
		if err := r.write(ctx, s, true); err != nil {
			return err
		}
	}
	return nil
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
			if s.spool != nil {
				s.spool.close()
			}
		}
	}()
	r.cancel = cancel
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
				if err := r.write(ctx, s, true); err != nil {
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
		return r.res, err
	}
	complete := true
	for _, w := range r.windows {
		complete = complete && w.done
	}
	if complete {
		r.res.Complete = true
		return r.res, nil
	}
	// Stopped early: write what is completely read of unfinished slices, so the
	// next invocation reads only the rest, and report every written piece.
	var done []Piece
	for _, s := range r.slices {
		if s.win.done {
			continue
		}
		if !s.written && !s.partial && len(s.covered) > 0 {
			if err := r.write(ctx, s, false); err != nil {
				return r.res, err
			}
		}
		done = append(done, s.pieces...)
	}
	sort.Slice(done, func(a, b int) bool { return done[a].From.Before(done[b].From) })
	r.res.Done = done
	return r.res, nil
}

// newPieces are this run's covered intervals, merged where adjacent.
func (s *slice) newPieces() []archive.Interval {
	c := append([]archive.Interval(nil), s.covered...)
	sort.Slice(c, func(a, b int) bool { return c[a].From.Before(c[b].From) })
	return archive.Coalesce(c)
}

func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	r.stop = true
	r.cond.Broadcast()
	r.cancel()
}

// take hands the next queued range to a pager, or nil when there is nothing left
// to do (or the run is stopping).
func (r *run) take() *rng {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) == 0 && len(r.active) > 0 && !r.stop {
		r.cond.Wait()
	}
	if r.stop || len(r.queue) == 0 {
		return nil
	}
	rg := r.queue[0]
	r.queue = r.queue[1:]
	r.active[rg] = true
	return rg
}

// drain pages one range until it is read (or the run stops).
func (r *run) drain(ctx context.Context, rg *rng) error {
	var token *string
	throttles := 0
	for {
		r.mu.Lock()
		if r.stop {
			r.mu.Unlock()
			return nil
		}
		if !rg.lo.Before(rg.floor) {
			delete(r.active, rg)
			r.split()
			r.cond.Broadcast()
			r.mu.Unlock()
			return nil
		}
		in := &cloudtrail.LookupEventsInput{
			StartTime:  aws.Time(rg.qFrom),
			EndTime:    aws.Time(rg.qTo.Add(-time.Second)),
			MaxResults: aws.Int32(PageSize),
			NextToken:  token,
		}
		r.mu.Unlock()

		t0 := time.Now()
		out, err := r.job.Client.LookupEvents(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopping: the run reports why
			}
			if pace.IsThrottle(err) {
				// Never a failure by itself: the limiter has already slowed down.
				throttles++
				if err := sleep(ctx, backoff(throttles)); err != nil {
					return nil
				}
				continue
			}
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "InvalidNextTokenException" && token != nil {
				// Ask again for what is still unread; duplicates are dropped by event ID.
				r.mu.Lock()
				rg.qFrom, rg.qTo = rg.lo, rg.floor
				from, to := rg.qFrom, rg.qTo
				r.mu.Unlock()
				r.log.Warn("LookupEvents refused its NextToken; re-reading the unread part", "from", from, "to", to)
				token = nil
				continue
			}
			return fmt.Errorf("LookupEvents in %s/%s for %s..%s failed (re-run to resume): %w",
				r.job.Account, r.job.Region, in.StartTime.Format(time.RFC3339), in.EndTime.Format(time.RFC3339), err)
		}
		throttles = 0
		if err := r.absorb(ctx, rg, out.Events, out.NextToken == nil, time.Since(t0)); err != nil {
			return err
		}
		token = out.NextToken
	}
}

// absorb files one page's events into their slices, advances the range's floor,
// hands fully covered slices to the writers and considers splitting.
func (r *run) absorb(ctx context.Context, rg *rng, events []types.Event, last bool, took time.Duration) error {
	r.mu.Lock()
	r.res.Pages++
	r.cfg.Progress.Pages.Add(1)
	sec := took.Seconds()
	if r.latency == 0 {
		r.latency = sec
	} else {
		r.latency = 0.8*r.latency + 0.2*sec
	}
	oldest := rg.floor
	belowLo := false
	for _, e := range events {
		if e.EventTime == nil || e.CloudTrailEvent == nil {
			r.mu.Unlock()
			return fmt.Errorf("LookupEvents in %s/%s returned an event without EventTime or CloudTrailEvent (event %s)", r.job.Account, r.job.Region, aws.ToString(e.EventId))
		}
		t := e.EventTime.UTC()
		if t.Before(rg.lo) {
			belowLo = true // another pager reads that part
			continue
		}
		if !t.Before(rg.qTo) {
			continue // at or after the range end: belongs to the next window
		}
		s := r.slices[t.Truncate(archive.SliceLength).Unix()]
		if s == nil || t.Before(s.from) || !t.Before(s.to) {
			continue
		}
		id := aws.ToString(e.EventId)
		if s.flushed {
			if !t.Before(rg.floor) {
				// This range has already received everything at or after its floor
				// and re-reads only below it, so an event here means the answer was
				// not newest-first and the written slice is short.
				r.mu.Unlock()
				return fmt.Errorf("LookupEvents in %s/%s returned event %s at %s after its slice was complete; the answer was not in time order, re-run this range", r.job.Account, r.job.Region, id, t.Format(time.RFC3339))
			}
			continue
		}
		if s.spool == nil {
			s.spool = newSpool(r.cfg.SpoolDir)
		}
		if !s.spool.has(id) {
			if err := s.spool.add(t, id, *e.CloudTrailEvent); err != nil {
				r.mu.Unlock()
				return err
			}
			rg.received++
		}
		if t.Before(oldest) {
			oldest = t
		}
	}
	newFloor := rg.floor
	switch {
	case last || belowLo:
		newFloor = rg.lo
	case oldest.Before(rg.floor):
		// Events in the oldest second may continue on the next page.
		newFloor = maxTime(rg.lo, oldest.Truncate(time.Second).Add(time.Second))
	}
	var ready []*slice
	if newFloor.Before(rg.floor) {
		ready = r.cover(newFloor, rg.floor)
		rg.floor = newFloor
	}
	if !last && !belowLo {
		r.split()
	}
	r.mu.Unlock()
	for _, s := range ready {
		select {
		case r.writes <- s:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// cover marks [from, to) as completely read and returns the slices that became
// fully covered. Covered intervals never overlap, so subtraction is exact.
func (r *run) cover(from, to time.Time) []*slice {
	var ready []*slice
	for ss := from.Truncate(archive.SliceLength); ss.Before(to); ss = ss.Add(archive.SliceLength) {
		s := r.slices[ss.Unix()]
		if s == nil || s.flushed {
			continue
		}
		lo, hi := maxTime(from, s.from), minTime(to, s.to)
		if !lo.Before(hi) {
			continue
		}
		s.covered = append(s.covered, archive.Interval{From: lo, To: hi})
		s.uncovered -= hi.Sub(lo)
		if s.uncovered <= 0 {
			s.flushed = true
			ready = append(ready, s)
		}
	}
	return ready
}

// split cuts dense ranges while fewer pagers are busy than the quota can feed at
// the measured latency. Called with r.mu held.
func (r *run) split() {
	// Enough pagers to keep the quota busy at the measured latency, plus one to
	// cover its variance; each split costs about one partly filled page.
	want := int(math.Ceil(r.job.Limiter.Rate()*r.latency*1.5)) + 1
	want = min(want, r.cfg.MaxPagers)
	for len(r.active)+len(r.queue) < want {
		var best *rng
		bestEst := 0.0
		for rg := range r.active {
			span := rg.floor.Sub(rg.lo)
			read := rg.qTo.Sub(rg.floor)
			if span < 10*time.Second || read <= 0 || rg.received < PageSize {
				continue
			}
			est := float64(rg.received) * span.Seconds() / read.Seconds()
			if est > bestEst {
				best, bestEst = rg, est
			}
		}
		// A split costs about one page of quota (1/rate s) and saves about half the
		// range's serial time (pages/2 * latency): worth it when the second is larger.
		minEvents := PageSize * max(2, math.Ceil(2/(r.job.Limiter.Rate()*r.latency)))
		if best == nil || bestEst < minEvents {
			return
		}
		mid := best.lo.Add(best.floor.Sub(best.lo) / 2).Truncate(time.Second)
		nr := &rng{qFrom: best.lo, qTo: mid, lo: best.lo, floor: mid}
		best.lo = mid
		r.queue = append(r.queue, nr)
		r.cond.Signal()
	}
}

// write stores this run's pieces of a slice as trail files (pieces without events
// get none). final: the slice is fully covered and its window may complete;
// otherwise (a soft stop) only the completely read pieces are written.
func (r *run) write(ctx context.Context, s *slice, final bool) error {
	// The slice is fully covered (or the pagers have stopped): nothing appends to
	// its spool any more.
	r.mu.Lock()
	pieces, sp := s.newPieces(), s.spool
	r.mu.Unlock()
	written := make([]Piece, 0, len(pieces))
	for _, iv := range pieces {
		p := Piece{From: iv.From, To: iv.To}
		if sp != nil {
			recs, err := sp.records(iv.From, iv.To)
			if err != nil {
				return err
			}
			if len(recs) > 0 {
				obj, err := r.writeFile(ctx, s, iv, recs)
				if err != nil {
					return err
				}
				p.Events, p.Bytes, p.SHA256 = obj.Events, obj.Bytes, obj.SHA256
			}
		}
		written = append(written, p)
	}
	r.mu.Lock()
	s.pieces = append(s.pieces, written...)
	if sp != nil {
		sp.close()
		s.spool = nil
	}
	if !final {
		s.partial = true
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	return r.written(ctx, s)
}

// writeFile writes one piece's records (already in time order) as a trail file.
func (r *run) writeFile(ctx context.Context, s *slice, p archive.Interval, recs [][]byte) (archive.ManifestObject, error) {
	raw := make([]json.RawMessage, len(recs))
	for i, rec := range recs {
		raw[i] = rec
	}
	body, err := archive.EncodeTrailFile(raw)
	if err != nil {
		return archive.ManifestObject{}, fmt.Errorf("encode %s/%s slice %s: %w", r.job.Account, r.job.Region, s.start.Format(time.RFC3339), err)
	}
	key := archive.TrailFileKey(r.cfg.OrgID, r.job.Account, r.job.Region, s.start, p.From, p.To)
	if err := r.cfg.Store.Put(ctx, key, body); err != nil {
		return archive.ManifestObject{}, fmt.Errorf("archive %s/%s slice %s (re-run to resume): %w", r.job.Account, r.job.Region, s.start.Format(time.RFC3339), err)
	}
	r.cfg.Progress.Files.Add(1)
	r.cfg.Progress.Events.Add(int64(len(recs)))
	r.mu.Lock()
	r.res.Files++
	r.res.Events += int64(len(recs))
	r.mu.Unlock()
	return archive.ManifestObject{Key: key, Events: len(recs), Bytes: len(body), SHA256: archive.SHA256Hex(body)}, nil
}

// written records a fully archived slice and completes its window when it was
// the last one.
func (r *run) written(ctx context.Context, s *slice) error {
	r.mu.Lock()
	s.written = true
	w := s.win
	for _, p := range s.pieces {
		if p.Events == 0 {
			continue
		}
		key := archive.TrailFileKey(r.cfg.OrgID, r.job.Account, r.job.Region, s.start, p.From, p.To)
		w.objects = append(w.objects, archive.ManifestObject{Key: key, Events: p.Events, Bytes: p.Bytes, SHA256: p.SHA256})
		w.events += p.Events
	}
	w.slicesLeft--
	last := w.slicesLeft == 0
	r.mu.Unlock()
	if !last {
		return nil
	}
	return r.finish(ctx, w)
}

// finish writes a window's manifest after removing files an earlier, narrower run
// of the same window wrote under other names.
func (r *run) finish(ctx context.Context, w *window) error {
	sort.Slice(w.objects, func(a, b int) bool { return w.objects[a].Key < w.objects[b].Key })
	if w.old != nil {
		keep := make(map[string]bool, len(w.objects))
		for _, o := range w.objects {
			keep[o.Key] = true
		}
		for _, o := range w.old.Objects {
			if !keep[o.Key] {
				if err := r.cfg.Store.Delete(ctx, o.Key); err != nil {
					return fmt.Errorf("replace files of window %s in %s/%s: %w", w.Start.Format(time.RFC3339), r.job.Account, r.job.Region, err)
				}
			}
		}
	}
	m := &archive.Manifest{
		Version:     archive.ManifestVersion,
		Account:     r.job.Account,
		Region:      r.job.Region,
		OrgID:       r.cfg.OrgID,
		WindowStart: w.Start,
		From:        w.From,
		To:          w.To,
		Events:      w.events,
		Objects:     w.objects,
		Query: archive.ManifestQuery{
			API:        "cloudtrail:LookupEvents",
			StartTime:  w.From,
			EndTime:    w.To.Add(-time.Second),
			MaxResults: PageSize,
		},
		CompletedAt: time.Now().UTC().Truncate(time.Second),
	}
	if m.Objects == nil {
		m.Objects = []archive.ManifestObject{}
	}
	if err := archive.WriteManifest(ctx, r.cfg.Store, m); err != nil {
		return fmt.Errorf("write manifest of window %s in %s/%s (re-run to resume): %w", w.Start.Format(time.RFC3339), r.job.Account, r.job.Region, err)
	}
	r.mu.Lock()
	w.done = true
	r.res.Windows++
	r.mu.Unlock()
	r.cfg.Progress.WindowsDone.Add(1)
	return nil
}

// backoff is the wait after the n-th consecutive ThrottlingException that the
// SDK's own retries did not absorb: full jitter, capped at 10 s.
func backoff(n int) time.Duration {
	d := time.Duration(math.Min(10, 0.5*math.Pow(2, float64(min(n, 6)-1))) * float64(time.Second))
	return time.Duration(rand.Int64N(int64(d)) + int64(d)/4)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
