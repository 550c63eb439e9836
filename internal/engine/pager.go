package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/pace"
)

// rng is one pager's query: StartTime=qFrom, EndTime=qTo-1s (bound to its NextToken).
// Events in [floor, qTo) are all received; a split raises lo, where it stops.
type rng struct {
	qFrom, qTo time.Time
	lo, floor  time.Time
	received   int
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
// hands completed slices to the writers and considers splitting.
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
	if newFloor.Before(rg.floor) {
		complete = r.cover(newFloor, rg.floor)
		rg.floor = newFloor
	}
	if !last && !belowLo {
		r.split()
	}
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
