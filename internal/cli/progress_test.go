package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/engine"
)

// With the archive's manifests, watch's ETA is the work left at the quota:
// each partition's windows left at its archived density, in waves of the
// Map's concurrency; a lower bound while a partition has archived nothing.
func TestWatchETAFromTheArchive(t *testing.T) {
	t.Parallel()
	known := backfill.Work{Known: true, PagesLow: 100, PagesHigh: 110, Rate: 2, Running: true}
	for _, tc := range []struct {
		name string
		now  snapshot
		want string
	}{
		{"density known", snapshot{work: []backfill.Work{known, {Done: true}}}, "53s"},
		{"a partition has archived nothing", snapshot{work: []backfill.Work{known, {Rate: 2}}}, "at least 50s"},
		{"waves of one", snapshot{work: []backfill.Work{known, known}, slots: 1}, "1m45s"},
		{"all archived", snapshot{work: []backfill.Work{{Done: true}}}, "0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eta(snapshot{}, tc.now, time.Minute); got != tc.want {
				t.Fatalf("eta = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunProgressLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		r         runProgress
		final     bool
		want      string
		wantShare float64
	}{
		{"an estimate", runProgress{partsDone: 1, parts: 2, windowsDone: 3, windows: 12, events: 900, files: 40, pages: 20, elapsed: 10 * time.Second,
			eta: backfill.ETA{Low: 30 * time.Second, High: 30 * time.Second}}, false,
			"partitions 1/2 read, windows 3/12, 900 events in 40 files, 20 requests, ETA 30s", 0.25},
		{"a lower bound: the share is at most", runProgress{parts: 2, windows: 12, elapsed: 10 * time.Second,
			eta: backfill.ETA{Low: 10 * time.Second, High: 10 * time.Second, AtLeast: true}}, false,
			"partitions 0/2 read, windows 0/12, 0 events in 0 files, 0 requests, ETA at least 10s", 0.5},
		{"final: the counts and the time", runProgress{partsDone: 2, parts: 2, windowsDone: 12, windows: 12, events: 1000, files: 44, pages: 25, elapsed: 12345 * time.Millisecond,
			eta: backfill.ETA{Done: true}}, true,
			"partitions 2/2 read, windows 12/12, 1000 events in 44 files, 25 requests, 12.3s", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.describe(tc.final); got != tc.want {
				t.Fatalf("describe = %q, want %q", got, tc.want)
			}
			if got := tc.r.share(); got != tc.wantShare {
				t.Fatalf("share = %v, want %v", got, tc.wantShare)
			}
		})
	}
}

// The progress bar's last line shows the final counts.
func TestProgressBarEndsWithTheFinalCounts(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	p := &engine.Progress{}
	stop := startProgress(&Env{Stderr: &buf, Interactive: true}, p, 12)
	p.WindowsTotal.Add(12)
	p.WindowsDone.Add(12)
	p.Events.Add(1000)
	p.Files.Add(44)
	p.Pages.Add(25)
	stop()
	out := buf.String()
	if !strings.Contains(out, "100%") || !strings.Contains(out, "windows 12/12, 1000 events in 44 files, 25 requests") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("progress bar output %q", out)
	}
}
