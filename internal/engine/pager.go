package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/clock"
	"github.com/trailfill/trailfill/internal/pace"
)

// rng is one pager's query: StartTime=qFrom, EndTime=qTo-1s (bound to its NextToken).
// Events in [floor, qTo) are all received; a cut raises lo, where it stops. A
// queued rng has no query yet: [lo, floor) is all it has to read.
type rng struct {
	qFrom, qTo time.Time
	lo, floor  time.Time
	received   int  // events received in [floor, qTo), whatever the trail keeps
	answered   bool // it has had an answer: its density is its own
	// Events and time read completely by its latest two pages: its recent
	// density.
	lastEvents [2]int
	lastSecs   [2]float64
	// Density probes (probe): a probe is queued to start at once (urgent)
	// and reports the density at its top to the range it was cut from
	// (donor), which then knows the density ahead of it (ahead, aheadKnown)
	// until it is cut again; probing: a probe of it has not answered yet.
	urgent, probing, aheadKnown bool
	donor                       *rng
	ahead                       float64
}

// scheduler is the run's scheduling state (schedule.go), guarded by run.mu.
type scheduler struct {
	answered  bool        // some range has had an answer
	spec      int         // ranges read at once until the first answer
	specTimer *time.Timer // releases the next blind piece
	want      int         // pagers to keep busy, once answered
	share     float64     // pages each of them should read
	cuts      int         // cuts made, blind ones included
	// What the answers showed, all ranges together: events received over
	// the time read completely (the partition's density), and pages.
	seenEvents int64
	seenSecs   float64
	pages      int64

	pp              *PartitionProgress // the partition's, in Config.Progress
	progressStarted bool
	progressStopped bool
}

// take hands the next queued range to a pager, or nil when there is nothing left
// to do (or the run is stopping). Queued ranges start only while fewer pagers
// are busy than the scheduler wants; the oldest first.
func (r *run) take() *rng {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startSpeculation()
	for !r.stop {
		if i := r.startable(); i >= 0 {
			rg := r.next(i)
			r.active[rg] = true
			return rg
		}
		if len(r.queue) == 0 && len(r.active) == 0 {
			break
		}
		r.cond.Wait()
	}
	if t := r.sched.specTimer; t != nil {
		t.Stop()
	}
	r.stopProgress(!r.stop)
	return nil
}

// startable is the index of the queued range to start now, or -1: the
// oldest while fewer ranges are read than allowed, else an urgent one (a
// probe). Called with r.mu held.
func (r *run) startable() int {
	if len(r.queue) == 0 {
		return -1
	}
	if len(r.active) < r.allowed() {
		return 0
	}
	for i, g := range r.queue {
		if g.urgent {
			return i
		}
	}
	return -1
}

// allowed is how many ranges may be read at once. Called with r.mu held.
func (r *run) allowed() int {
	if !r.sched.answered {
		return max(1, r.sched.spec)
	}
	return max(1, r.sched.want)
}

// next takes the i-th queued range off the queue; when it holds more than a
// pager's share, only its oldest part (it is cut in as many parts as it holds
// shares; the rest stays queued). A probe is taken whole. Called with r.mu
// held.
func (r *run) next(i int) *rng {
	g := r.queue[i]
	s := &r.sched
	if s.answered && !g.urgent {
		d := r.partitionDensity()
		events := d * g.floor.Sub(g.lo).Seconds()
		if n := parts(events, s.share); n > 1 {
			if c, ok := cutAbove(g.lo, g.floor, events/float64(n), d); ok {
				s.cuts++
				chunk := &rng{qFrom: g.lo, qTo: c, lo: g.lo, floor: c}
				g.qFrom, g.lo = c, c
				return chunk
			}
		}
	}
	r.queue = append(r.queue[:i], r.queue[i+1:]...)
	return g
}

// startSpeculation arms the timer that, while the first answer is late,
// starts blind pieces (up to specPieces ranges at once): at the quota's
// interval, a late answer would otherwise leave the quota idle for the whole
// first round trip. Called with r.mu held, by every take; arms once.
func (r *run) startSpeculation() {
	s := &r.sched
	if s.spec > 0 {
		return
	}
	s.spec = 1
	delay := specDelay(r.job.Limiter.Rate())
	s.specTimer = time.AfterFunc(delay, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if s.answered || r.stop || s.spec >= specPieces {
			return
		}
		s.spec++
		r.blindCut()
		r.cond.Broadcast()
		if s.spec < specPieces {
			s.specTimer.Reset(delay)
		}
	})
}

// blindCut cuts the longest range that has had no answer into pieces of equal
// time, so that specPieces ranges can be read before any density is known;
// the older pieces are queued (the oldest starts first), the range keeps the
// newest. Nothing is cut while ranges wait in the queue. Called with r.mu held.
func (r *run) blindCut() {
	if len(r.queue) > 0 {
		return
	}
	var best *rng
	for rg := range r.active {
		if !rg.answered && (best == nil || rg.floor.Sub(rg.lo) > best.floor.Sub(best.lo)) {
			best = rg
		}
	}
	if best == nil {
		return
	}
	cuts := blindCuts(best.lo, best.floor, specPieces-len(r.active)+1)
	lo := best.lo
	for _, c := range cuts {
		r.queue = append(r.queue, &rng{qFrom: lo, qTo: c, lo: lo, floor: c})
		lo = c
	}
	best.lo = lo
	r.sched.cuts += len(cuts)
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
			r.rebalance()
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
				if err := throttleBackoff.Wait(ctx, nil, throttles); err != nil {
					return nil
				}
				continue
			}
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "InvalidNextTokenException" && token != nil {
				// Ask again for what is still unread; duplicates are dropped by event ID.
				r.mu.Lock()
				rg.qFrom, rg.qTo, rg.received = rg.lo, rg.floor, 0
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
// hands completed slices to the writers and rebalances the pagers' ranges.
func (r *run) absorb(ctx context.Context, rg *rng, events []types.Event, last bool, took time.Duration) error {
	r.mu.Lock()
	r.res.Pages++
	r.cfg.Progress.Pages.Add(1)
	if !r.sched.answered {
		r.sched.answered = true
		if t := r.sched.specTimer; t != nil {
			t.Stop()
		}
	}
	firstPage := !rg.answered
	rg.answered = true
	received := rg.received
	sec := took.Seconds()
	if r.latency == 0 {
		r.latency = sec
	} else {
		r.latency = 0.8*r.latency + 0.2*sec
	}
	oldest := rg.floor
	belowLo := false
	for _, e := range events {
		id, t, rec, ok := eventRecord(e)
		if !ok {
			r.mu.Unlock()
			return fmt.Errorf("LookupEvents in %s/%s returned an event without EventId, EventTime or CloudTrailEvent (event %s)", r.job.Account, r.job.Region, aws.ToString(e.EventId))
		}
		if t.Before(rg.lo) {
			belowLo = true // another pager reads that part
			continue
		}
		if !t.Before(rg.qTo) {
			continue // at or after the range end: belongs to the next window
		}
		if t.Before(oldest) {
			oldest = t // every event of the page tells how far the range is read
		}
		rg.received++ // the range's density, whatever the trail keeps
		s := r.slices[t.Truncate(archive.SliceLength).Unix()]
		if s == nil || !s.wants(t) {
			continue
		}
		if sel := r.job.Selector; sel != nil {
			keep, err := sel.Keep([]byte(rec))
			if err != nil {
				r.mu.Unlock()
				return fmt.Errorf("select event %s of %s/%s: %w", id, r.job.Account, r.job.Region, err)
			}
			if !keep {
				continue // the trail does not log it
			}
		}
		if s.state != reading {
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
			if err := s.spool.add(t, id, rec); err != nil {
				r.mu.Unlock()
				return err
			}
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
	var complete []*slice
	n, read := rg.received-received, time.Duration(0)
	if newFloor.Before(rg.floor) {
		read = rg.floor.Sub(newFloor)
		complete = r.cover(newFloor, rg.floor)
		rg.floor = newFloor
	}
	r.sched.pages++
	r.sched.seenEvents += int64(n)
	r.sched.seenSecs += read.Seconds()
	rg.lastEvents = [2]int{rg.lastEvents[1], n}
	rg.lastSecs = [2]float64{rg.lastSecs[1], read.Seconds()}
	if d := rg.donor; firstPage && d != nil && r.active[d] {
		// A probe's first page: the density ahead of its donor.
		d.ahead, d.aheadKnown, d.probing = float64(n)/max(read.Seconds(), 1), true, false
		r.probe(d)
	}
	r.probe(rg)
	r.pageProgress(read)
	r.rebalance()
	r.mu.Unlock()
	for _, s := range complete {
		select {
		case r.writes <- s:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// cover marks [from, to) as completely read and returns the slices that became
// complete. Called with r.mu held.
func (r *run) cover(from, to time.Time) []*slice {
	var complete []*slice
	for ss := from.Truncate(archive.SliceLength); ss.Before(to); ss = ss.Add(archive.SliceLength) {
		s := r.slices[ss.Unix()]
		if s == nil || s.state != reading {
			continue
		}
		if s.cover(from, to) {
			s.state = ready
			complete = append(complete, s)
		}
	}
	return complete
}

// rebalance keeps enough pagers busy to hide the measured latency: while
// fewer ranges are read or queued than that, the donor (schedule.go) gives its
// oldest part to the next free pager. A range of a long backlog keeps one
// chunk and queues the rest, which is handed out oldest first. Called with
// r.mu held.
func (r *run) rebalance() {
	s := &r.sched
	if !s.answered {
		return
	}
	d := r.partitionDensity()
	ranges := make([]*rng, 0, len(r.active))
	for rg := range r.active {
		ranges = append(ranges, rg)
	}
	sort.Slice(ranges, func(a, b int) bool { return ranges[a].lo.Before(ranges[b].lo) })
	cs := make([]candidate, len(ranges))
	remaining := 0.0
	for i, rg := range ranges {
		cs[i] = candidate{lo: rg.lo, events: r.estimate(rg, d), answered: rg.answered}
		remaining += cs[i].events
	}
	for _, g := range r.queue {
		remaining += d * g.floor.Sub(g.lo).Seconds()
	}
	chains := maxChains(float64(s.pages) + remaining/PageSize)
	s.want = min(concurrency(r.job.Limiter.Rate(), r.latencyHigh(), r.cfg.MaxPagers), chains)
	s.share = chainPages(remaining/PageSize, s.want)
	cut := false
	give := func(i int, events float64) bool {
		rg := ranges[i]
		c, ok := cutAbove(rg.lo, rg.floor, events, r.rangeDensity(rg, d))
		if !ok {
			return false
		}
		r.queue = append(r.queue, &rng{qFrom: rg.lo, qTo: c, lo: rg.lo, floor: c})
		rg.lo = c
		cs[i].lo, cs[i].events = c, cs[i].events-events
		s.cuts++
		cut = true
		return true
	}
	// A long backlog: a range holding far more than a pager's chunk keeps
	// its chunk (newest first from where it is) and queues the rest, which
	// free pagers take oldest first. Ranges without an answer yet are
	// estimated at the partition's density: the order matters more than the
	// size of the chunks.
	for i, rg := range ranges {
		if cs[i].events > 2*maxChunkPages*PageSize {
			c, ok := cutAt(rg.lo, rg.floor, maxChunkPages*PageSize, r.rangeDensity(rg, d))
			if ok {
				r.queue = append(r.queue, &rng{qFrom: rg.lo, qTo: c, lo: rg.lo, floor: c})
				cs[i].events -= r.rangeDensity(rg, d) * c.Sub(rg.lo).Seconds()
				rg.lo, cs[i].lo = c, c
				s.cuts++
				cut = true
			}
		}
	}
	for len(r.active)+len(r.queue) < s.want && s.cuts < chains-1 {
		i := donor(cs, s.share)
		if i < 0 {
			break
		}
		if e := giveEvents(cs[i].events, s.share); e <= 0 || !give(i, e) {
			break
		}
	}
	if cut {
		sort.Slice(r.queue, func(a, b int) bool { return r.queue[a].lo.Before(r.queue[b].lo) })
	}
	r.reportProgress(d)
	// Idle pagers look again: the queue or the number wanted may have changed.
	r.cond.Broadcast()
}

// partitionDensity is the events per second the answers so far showed, all
// ranges together. Called with r.mu held.
func (r *run) partitionDensity() float64 {
	return float64(r.sched.seenEvents) / max(r.sched.seenSecs, 1)
}

// rangeDensity is a range's own density estimate. Called with r.mu held.
func (r *run) rangeDensity(rg *rng, partition float64) float64 {
	return density(rg.received, rg.qTo.Sub(rg.floor).Seconds(), partition)
}

// recentDensity is the density of a range's latest two pages (the
// partition's before it has any). Called with r.mu held.
func (rg *rng) recentDensity(partition float64) float64 {
	secs := rg.lastSecs[0] + rg.lastSecs[1]
	if secs <= 0 {
		return partition
	}
	return float64(rg.lastEvents[0]+rg.lastEvents[1]) / secs
}

// aheadDensity is what is known of the density ahead of a range (below its
// floor): what a probe showed at its lower bound, else the density of what it
// read before its latest two pages; ok is false when neither is known.
// Called with r.mu held.
func (rg *rng) aheadDensity() (float64, bool) {
	if rg.aheadKnown {
		return rg.ahead, true
	}
	events := rg.received - rg.lastEvents[0] - rg.lastEvents[1]
	secs := rg.qTo.Sub(rg.floor).Seconds() - rg.lastSecs[0] - rg.lastSecs[1]
	if events < PageSize || secs <= 0 {
		return 0, false
	}
	return float64(events) / secs, true
}

// probe cuts a range's unread part in half when the density ahead of it is
// uncertain: its latest pages are probeRatio times denser or sparser than
// what lies ahead, as far as known (isUncertain). The older half starts at
// once, and its first page shows the density there: repeated, this finds
// where the density changes within a few requests, and the estimate of the
// time left stays honest. Called with r.mu held.
func (r *run) probe(rg *rng) {
	if rg.probing || !r.active[rg] || rg.lastEvents[0]+rg.lastEvents[1] < PageSize {
		return
	}
	ahead, ok := rg.aheadDensity()
	if !ok {
		return
	}
	d := r.partitionDensity()
	remaining := 0.0
	for a := range r.active {
		remaining += r.estimate(a, d)
	}
	for _, g := range r.queue {
		remaining += d * g.floor.Sub(g.lo).Seconds()
	}
	if !isUncertain(rg.recentDensity(0), ahead, rg.floor.Sub(rg.lo).Seconds(), remaining/PageSize) {
		return
	}
	mid := rg.lo.Add(rg.floor.Sub(rg.lo) / 2).Truncate(time.Second)
	if mid.Sub(rg.lo) < minCutSpan || rg.floor.Sub(mid) < minCutSpan {
		return
	}
	// What lies below the range lies below the probe: it inherits what is
	// known of that.
	r.queue = append(r.queue, &rng{qFrom: rg.lo, qTo: mid, lo: rg.lo, floor: mid, urgent: true, donor: rg, ahead: rg.ahead, aheadKnown: rg.aheadKnown})
	sort.Slice(r.queue, func(a, b int) bool { return r.queue[a].lo.Before(r.queue[b].lo) })
	rg.lo, rg.probing, rg.aheadKnown = mid, true, false
	r.sched.cuts++
	r.cond.Broadcast()
}

// estimate is how many events a range still has to read. Called with r.mu held.
func (r *run) estimate(rg *rng, partition float64) float64 {
	return r.rangeDensity(rg, partition) * rg.floor.Sub(rg.lo).Seconds()
}

// latencyHigh is how long an answer takes at most, about: the limiter's
// measurement (the round trip after the wait for quota), else the pagers' own.
// Called with r.mu held.
func (r *run) latencyHigh() time.Duration {
	if _, high, ok := r.job.Limiter.Latency(); ok {
		return high
	}
	return time.Duration(r.latency * 1.1 * float64(time.Second))
}

// throttleBackoff spaces the retries of a page after ThrottlingExceptions
// that the SDK's own retries did not absorb (the limiter has slowed down
// already): full jitter from 0.5 s, capped at 10 s.
var throttleBackoff = clock.Backoff{Base: 500 * time.Millisecond, Max: 10 * time.Second}
