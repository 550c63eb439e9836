package cli

import (
	"fmt"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/engine"
)

// barSteps is the resolution of the progress bar (it shows a share of time).
const barSteps = 1000

// runProgress is what an in-process run's progress line says at one moment.
type runProgress struct {
	partsDone, parts     int
	windowsDone, windows int64
	events, files, pages int64
	elapsed              time.Duration
	eta                  backfill.ETA
}

// measure reads the engine's counters. A partition whose first answer has
// not come yet, or that has not started (fewer windows planned than
// totalWindows), leaves the estimate a lower bound.
func measure(p *engine.Progress, totalWindows int64, elapsed time.Duration) runProgress {
	parts := p.Partitions()
	total := len(parts)
	if p.WindowsTotal.Load() < totalWindows {
		total++ // partitions not planned yet: at least one
	}
	work := backfill.WorkFromEngine(parts, total)
	done := 0
	for _, w := range work {
		if w.Done {
			done++
		}
	}
	return runProgress{
		partsDone: done, parts: len(parts),
		windowsDone: p.WindowsDone.Load(), windows: totalWindows,
		events: p.Events.Load(), files: p.Files.Load(), pages: p.Pages.Load(),
		elapsed: elapsed, eta: backfill.Estimate(work, 0),
	}
}

// share is how much of the run's time has passed by the estimate: elapsed /
// (elapsed + time left), the time left taken at its middle (at its lower
// bound when that is all that is known: the share is then at most that).
func (r runProgress) share() float64 {
	if r.eta.Done {
		return 1
	}
	left := r.eta.Low
	if !r.eta.AtLeast {
		left = (r.eta.Low + r.eta.High) / 2
	}
	if r.elapsed <= 0 {
		return 0
	}
	return r.elapsed.Seconds() / (r.elapsed + left).Seconds()
}

// describe is the counts, and the ETA unless final.
func (r runProgress) describe(final bool) string {
	s := fmt.Sprintf("partitions %d/%d read, windows %d/%d, %d events in %d files, %d requests", r.partsDone, r.parts, r.windowsDone, r.windows, r.events, r.files, r.pages)
	if final {
		return s + fmt.Sprintf(", %s", r.elapsed.Round(100*time.Millisecond))
	}
	return s + ", ETA " + r.eta.String()
}

// startProgress shows progress on stderr until stop is called: a progress bar on
// a terminal, plain periodic lines otherwise (logs, CI). Progress is time: the
// share of the run's time that has passed by the estimate of the time left
// (backfill.Estimate: each partition's pages left at the density its answers
// showed, at its quota); the ETA says when that estimate is a lower bound or a
// wide range. The bar's final line shows the final counts.
func startProgress(env *Env, p *engine.Progress, totalWindows int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	wg.Add(1)
	if env.Interactive {
		bar := progressbar.NewOptions64(barSteps,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("starting"),
			progressbar.OptionSetPredictTime(false), // the ETA is in the description
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
		)
		go func() {
			defer wg.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					m := measure(p, totalWindows, time.Since(began))
					bar.Describe(m.describe(true))
					_ = bar.Set64(barSteps)
					_ = bar.Finish()
					fmt.Fprintln(env.Stderr)
					return
				case <-t.C:
					m := measure(p, totalWindows, time.Since(began))
					bar.Describe(m.describe(false))
					_ = bar.Set64(min(barSteps-1, int64(m.share()*barSteps)))
				}
			}
		}()
	} else {
		go func() {
			defer wg.Done()
			t := time.NewTicker(env.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					m := measure(p, totalWindows, time.Since(began))
					fmt.Fprintf(env.Stderr, "progress: %s (%.0f%% of the time by the estimate)\n", m.describe(false), 100*m.share())
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
