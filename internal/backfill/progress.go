package backfill

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/pace"
)

// ArchiveProgress counts the windows and events of a backfill that the
// archive's manifests show, for `trailfill watch`. Each Scan lists the
// manifests of the partitions that are not complete yet (one LIST per 1,000
// manifests: archive.ManifestKeys) and reads each manifest it has not
// counted once (archive.ReadManifests): over a whole watch every manifest is
// read once, and a complete partition costs nothing more.
type ArchiveProgress struct {
	store   archive.Store
	parts   []contract.Partition
	windows map[int64]archive.Window // by aligned start
	from    time.Time
	to      time.Time

	mu    sync.Mutex
	state map[contract.Partition]*partitionProgress
}

type partitionProgress struct {
	counted map[string]bool // manifests counted
	windows int64
	events  int64
	seconds int64 // event time the counted windows cover
	done    bool
}

// scanParallel is how many partitions a Scan lists at once.
const scanParallel = 8

// NewArchiveProgress follows the windows of [start, end) of parts in store.
func NewArchiveProgress(store archive.Store, parts []contract.Partition, start, end time.Time, window time.Duration) *ArchiveProgress {
	a := &ArchiveProgress{store: store, parts: parts, windows: map[int64]archive.Window{}, state: map[contract.Partition]*partitionProgress{}}
	ws := archive.Windows(start, end, window)
	for _, w := range ws {
		a.windows[w.Start.Unix()] = w
	}
	if len(ws) > 0 {
		a.from, a.to = ws[0].Start, ws[len(ws)-1].Start
	}
	for _, p := range parts {
		a.state[p] = &partitionProgress{counted: map[string]bool{}}
	}
	return a
}

// Scan returns the windows archived and the events they hold, over all
// partitions.
func (a *ArchiveProgress) Scan(ctx context.Context) (windows, events int64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(scanParallel)
	for _, p := range a.parts {
		a.mu.Lock()
		st := a.state[p]
		done := st.done
		a.mu.Unlock()
		if done {
			continue
		}
		g.Go(func() error { return a.scanPartition(gctx, p, st) })
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.state {
		windows += st.windows
		events += st.events
	}
	return windows, events, nil
}

func (a *ArchiveProgress) scanPartition(ctx context.Context, p contract.Partition, st *partitionProgress) error {
	keys, err := archive.ManifestKeys(ctx, a.store, archive.ManifestPrefix(p.Account, p.Region), a.from, a.to.Add(time.Second))
	if err != nil {
		return err
	}
	a.mu.Lock()
	for ws, k := range keys {
		if _, ok := a.windows[ws]; !ok || st.counted[k] {
			delete(keys, ws)
		}
	}
	a.mu.Unlock()
	ms, err := archive.ReadManifests(ctx, a.store, keys, archive.DecodeCloudTrailManifest)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ws, m := range ms {
		w := a.windows[ws]
		if !m.Covers(w.From, w.To) {
			continue // a narrower earlier run: read it again when it is rewritten
		}
		st.counted[keys[ws]] = true
		st.windows++
		st.events += int64(m.Events)
		st.seconds += int64(w.To.Sub(w.From) / time.Second)
	}
	st.done = st.windows == int64(len(a.windows))
	return nil
}

// PartitionArchived is what the manifests show of one partition.
type PartitionArchived struct {
	contract.Partition
	Windows, WindowsTotal int64
	Events                int64 // in the archived windows
	Seconds               int64 // event time the archived windows cover
	SecondsTotal          int64 // event time of the partition's range
}

// Partitions returns what the last Scan saw of each partition, in the order
// they were given.
func (a *ArchiveProgress) Partitions() []PartitionArchived {
	a.mu.Lock()
	defer a.mu.Unlock()
	var total int64
	for _, w := range a.windows {
		total += int64(w.To.Sub(w.From) / time.Second)
	}
	out := make([]PartitionArchived, 0, len(a.parts))
	for _, p := range a.parts {
		st := a.state[p]
		out = append(out, PartitionArchived{Partition: p, Windows: st.windows, WindowsTotal: int64(len(a.windows)),
			Events: st.events, Seconds: st.seconds, SecondsTotal: total})
	}
	return out
}

// Work is what is known of one partition's remaining reading, for an
// estimate of the time left.
type Work struct {
	Done bool
	// Known: part of it has been read, and PagesLow..PagesHigh estimate the
	// pages left from the density seen. Before that at least one request is
	// left, and nothing more is known.
	Known               bool
	PagesLow, PagesHigh float64
	// Rate is the partition's requests/s (0: pace.MaxRate).
	Rate float64
	// Latency of one answer: the last answer comes that long after the last
	// request is sent.
	Latency time.Duration
	// Running: its reading has started (it holds one of the slots).
	Running bool
}

// ETA is an estimate of the time left: between Low and High, or at least
// Low when the density of some partition is still unknown (AtLeast).
type ETA struct {
	Low, High time.Duration
	AtLeast   bool
	Done      bool
}

// Estimate is how long the partitions of work take to read at their quotas:
// each partition's pages at its rate, partitions read in parallel, at most
// slots of them at once (0: all), those running first, then the longest first.
func Estimate(work []Work, slots int) ETA {
	var low, high []float64
	var lowRun, highRun []bool
	e := ETA{Done: true}
	for _, w := range work {
		if w.Done {
			continue
		}
		e.Done = false
		rate := w.Rate
		if rate <= 0 {
			rate = pace.MaxRate
		}
		lo, hi := 1.0, 1.0
		if w.Known {
			lo, hi = max(w.PagesLow, 1), max(w.PagesHigh, w.PagesLow, 1)
		} else {
			e.AtLeast = true
		}
		tail := w.Latency.Seconds()
		low = append(low, math.Ceil(lo)/rate+tail)
		high = append(high, math.Ceil(hi)/rate+tail)
		lowRun, highRun = append(lowRun, w.Running), append(highRun, w.Running)
	}
	if e.Done {
		return e
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Second) }
	e.Low = sec(makespan(low, lowRun, slots))
	e.High = sec(makespan(high, highRun, slots))
	return e
}

// makespan is when the last of jobs (seconds each) ends on slots parallel
// slots (0: one each), the running ones first, then the longest first.
func makespan(jobs []float64, running []bool, slots int) float64 {
	if slots <= 0 || slots >= len(jobs) {
		m := 0.0
		for _, j := range jobs {
			m = max(m, j)
		}
		return m
	}
	idx := make([]int, len(jobs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if running[idx[a]] != running[idx[b]] {
			return running[idx[a]]
		}
		return jobs[idx[a]] > jobs[idx[b]]
	})
	free := make([]float64, slots)
	end := 0.0
	for _, i := range idx {
		k := 0
		for j := range free {
			if free[j] < free[k] {
				k = j
			}
		}
		free[k] += jobs[i]
		end = max(end, free[k])
	}
	return end
}

// String prints the estimate: "0s", "25s", "20s-45s" when the two ends are
// more than half apart, or "at least 12s" when it is a lower bound.
func (e ETA) String() string {
	switch {
	case e.Done:
		return "0s"
	case e.AtLeast:
		return "at least " + e.Low.String()
	case e.High > e.Low+e.Low/2 && e.High-e.Low >= 2*time.Second:
		return fmt.Sprintf("%s-%s", e.Low, e.High)
	default:
		return ((e.Low + e.High) / 2).Round(time.Second).String()
	}
}

// WorkFromEngine is the work left of each partition an in-process run
// reports (engine.Progress), and of those it has not started yet (total
// partitions in all).
func WorkFromEngine(parts []engine.PartitionSnapshot, total int) []Work {
	out := make([]Work, 0, max(total, len(parts)))
	for _, p := range parts {
		out = append(out, Work{Done: p.Done && !p.Running, Known: p.Known, PagesLow: p.PagesLow, PagesHigh: p.PagesHigh,
			Rate: p.Rate, Latency: p.Latency, Running: p.Running})
	}
	for range total - len(parts) {
		out = append(out, Work{})
	}
	return out
}

// WorkFromArchive is the work left of each partition as the manifests show
// it: the windows left at the density of the partition's archived windows,
// or of all archived windows (a range between the two), at rate requests/s.
func WorkFromArchive(parts []PartitionArchived, rate float64) []Work {
	var events, secs int64
	for _, p := range parts {
		events += p.Events
		secs += p.Seconds
	}
	all := float64(events) / float64(max(secs, 1))
	out := make([]Work, 0, len(parts))
	for _, p := range parts {
		w := Work{Done: p.Windows >= p.WindowsTotal, Rate: rate, Running: p.Windows > 0}
		if p.Seconds > 0 {
			own := float64(p.Events) / float64(p.Seconds)
			left := float64(p.SecondsTotal - p.Seconds)
			w.Known = true
			w.PagesLow = min(own, all) * left / engine.PageSize
			w.PagesHigh = max(own, all) * left / engine.PageSize
		}
		out = append(out, w)
	}
	return out
}
