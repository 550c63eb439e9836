package engine

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// PartitionProgress is what the engine knows of one partition's reading, for
// progress display: time covered and left, pages read, and the pages its
// answers so far say are left (a range: the density ahead is estimated from
// the density behind). Runs of the partition (successive invocations) update
// it; every field is read and written atomically.
type PartitionProgress struct {
	Account, Region string

	secondsLeft atomic.Int64 // event time still to read
	secondsRead atomic.Int64 // event time read completely
	pages       atomic.Int64 // answers
	pagesLow    atomicFloat  // pages left, low estimate
	pagesHigh   atomicFloat  // pages left, high estimate
	known       atomic.Bool  // an answer has shown the density
	done        atomic.Bool  // a run read everything it had to
	running     atomic.Int32 // runs in progress
	rate        atomicFloat  // requests/s the partition's limiter allows
	latency     atomicFloat  // seconds an answer takes
}

// PartitionSnapshot is a PartitionProgress at one moment.
type PartitionSnapshot struct {
	Account, Region string
	SecondsLeft     int64
	SecondsRead     int64
	Pages           int64
	// PagesLow and PagesHigh bound the pages left, when Known.
	PagesLow, PagesHigh float64
	// Known: an answer has shown the partition's density; before that,
	// nothing is known of the pages left (at least one).
	Known   bool
	Done    bool
	Running bool
	Rate    float64       // requests/s
	Latency time.Duration // of one answer
}

// Snapshot reads the counters.
func (p *PartitionProgress) Snapshot() PartitionSnapshot {
	return PartitionSnapshot{
		Account: p.Account, Region: p.Region,
		SecondsLeft: p.secondsLeft.Load(), SecondsRead: p.secondsRead.Load(), Pages: p.pages.Load(),
		PagesLow: p.pagesLow.Load(), PagesHigh: p.pagesHigh.Load(),
		Known: p.known.Load(), Done: p.done.Load(), Running: p.running.Load() > 0,
		Rate:    p.rate.Load(),
		Latency: time.Duration(p.latency.Load() * float64(time.Second)),
	}
}

// partitions is the registry of a Progress's partitions.
type partitions struct {
	mu sync.Mutex
	m  map[[2]string]*PartitionProgress
}

// Partition returns the progress of one partition, creating it.
func (p *Progress) Partition(account, region string) *PartitionProgress {
	p.parts.mu.Lock()
	defer p.parts.mu.Unlock()
	if p.parts.m == nil {
		p.parts.m = map[[2]string]*PartitionProgress{}
	}
	k := [2]string{account, region}
	pp := p.parts.m[k]
	if pp == nil {
		pp = &PartitionProgress{Account: account, Region: region}
		p.parts.m[k] = pp
	}
	return pp
}

// Partitions returns a snapshot of every partition a run has reported on,
// ordered by account and region.
func (p *Progress) Partitions() []PartitionSnapshot {
	p.parts.mu.Lock()
	out := make([]PartitionSnapshot, 0, len(p.parts.m))
	for _, pp := range p.parts.m {
		out = append(out, pp.Snapshot())
	}
	p.parts.mu.Unlock()
	sort.Slice(out, func(a, b int) bool {
		if out[a].Account != out[b].Account {
			return out[a].Account < out[b].Account
		}
		return out[a].Region < out[b].Region
	})
	return out
}

// atomicFloat is a float64 read and written atomically.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) Load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) Store(v float64) { f.bits.Store(math.Float64bits(v)) }

// progress is the run's partition progress.
func (r *run) progress() *PartitionProgress {
	if r.sched.pp == nil {
		r.sched.pp = r.cfg.Progress.Partition(r.job.Account, r.job.Region)
	}
	return r.sched.pp
}

// startProgress records what the run has to read, once its queue is built.
func (r *run) startProgress() {
	pp := r.progress()
	var secs int64
	for _, g := range r.queue {
		secs += int64(g.floor.Sub(g.lo) / time.Second)
	}
	pp.secondsLeft.Store(secs)
	pp.done.Store(secs == 0)
	pp.rate.Store(r.job.Limiter.Rate())
	if mean, _, ok := r.job.Limiter.Latency(); ok {
		pp.latency.Store(mean.Seconds())
	}
	// An earlier run of the partition (an earlier invocation) may have
	// measured its density: its estimate stands until this run's answers.
	pp.running.Add(1)
	r.sched.progressStarted = true
}

// stopProgress records that the run stopped reading; done: nothing is left.
// Called with r.mu held.
func (r *run) stopProgress(done bool) {
	if !r.sched.progressStarted || r.sched.progressStopped {
		return
	}
	r.sched.progressStopped = true
	pp := r.progress()
	if done {
		pp.secondsLeft.Store(0)
		pp.pagesLow.Store(0)
		pp.pagesHigh.Store(0)
		pp.done.Store(true)
	}
	pp.running.Add(-1)
}

// pageProgress records an answer that completed the reading of d of event
// time.
func (r *run) pageProgress(d time.Duration) {
	pp := r.progress()
	s := int64(d / time.Second)
	pp.secondsRead.Add(s)
	pp.secondsLeft.Add(-s)
	pp.pages.Add(1)
}

// reportProgress records the pages left, as a range: each range's unread time
// at the lower and the higher of its recent density and the density ahead of
// it as far as known (its density so far when nothing else is); ranges with
// no answer yet, and queued ones, between the lowest and the highest density
// seen. Called with r.mu held.
func (r *run) reportProgress(partition float64) {
	lo, hi := 0.0, 0.0
	rlo, rhi := partition, partition
	var unknown float64
	for rg := range r.active {
		span := rg.floor.Sub(rg.lo).Seconds()
		if !rg.answered {
			unknown += span
			continue
		}
		a, ok := rg.aheadDensity()
		if !ok {
			a = r.rangeDensity(rg, partition)
		}
		b := rg.recentDensity(partition)
		lo += min(a, b) * span
		hi += max(a, b) * span
		rlo, rhi = min(rlo, a, b), max(rhi, a, b)
	}
	for _, g := range r.queue {
		unknown += g.floor.Sub(g.lo).Seconds()
	}
	lo += rlo * unknown
	hi += rhi * unknown
	pp := r.progress()
	pp.pagesLow.Store(lo / PageSize)
	pp.pagesHigh.Store(hi / PageSize)
	pp.known.Store(true)
	pp.rate.Store(r.job.Limiter.Rate())
	if mean, _, ok := r.job.Limiter.Latency(); ok {
		pp.latency.Store(mean.Seconds())
	} else {
		pp.latency.Store(r.latency)
	}
}
