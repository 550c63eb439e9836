package cli

import (
	"fmt"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/trailfill/trailfill/internal/engine"
)

// startProgress shows progress on stderr until stop is called: a progress bar on
// a terminal, plain periodic lines otherwise (logs, CI).
func startProgress(env *Env, p *engine.Progress, totalWindows int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	describe := func() string {
		ev := p.Events.Load()
		el := time.Since(began).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(ev) / el
		}
		return fmt.Sprintf("%d events, %.0f events/s, %d requests", ev, rate, p.Pages.Load())
	}
	wg.Add(1)
	if env.Interactive {
		bar := progressbar.NewOptions64(totalWindows,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("windows"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
		)
		go func() {
			defer wg.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				_ = bar.Set64(p.WindowsDone.Load())
				bar.Describe(describe())
				select {
				case <-done:
					_ = bar.Set64(p.WindowsDone.Load())
					_ = bar.Finish()
					fmt.Fprintln(env.Stderr)
					return
				case <-t.C:
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
					wd := p.WindowsDone.Load()
					eta := "unknown"
					if el := time.Since(began); wd > 0 && totalWindows > wd {
						eta = (time.Duration(float64(el) * float64(totalWindows-wd) / float64(wd))).Round(time.Second).String()
					}
					fmt.Fprintf(env.Stderr, "progress: windows %d/%d, %s, ETA %s\n", wd, totalWindows, describe(), eta)
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
