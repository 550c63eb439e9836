package backfill

import (
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
)

func TestEstimate(t *testing.T) {
	t.Parallel()
	known := func(low, high float64) Work {
		return Work{Known: true, PagesLow: low, PagesHigh: high, Rate: 2, Running: true}
	}
	for _, tc := range []struct {
		name  string
		work  []Work
		slots int
		want  ETA
		text  string
	}{
		{"nothing left", []Work{{Done: true}, {Done: true}}, 0, ETA{Done: true}, "0s"},
		{"partitions in parallel: the longest", []Work{known(60, 60), known(20, 24), {Done: true}}, 0,
			ETA{Low: 30 * time.Second, High: 30 * time.Second}, "30s"},
		{"the last answer's latency", []Work{{Known: true, PagesLow: 60, PagesHigh: 60, Rate: 2, Latency: 4 * time.Second}}, 0,
			ETA{Low: 34 * time.Second, High: 34 * time.Second}, "34s"},
		{"a lowered rate", []Work{{Known: true, PagesLow: 60, PagesHigh: 60, Rate: 1}}, 0,
			ETA{Low: time.Minute, High: time.Minute}, "1m0s"},
		{"a narrow range prints its middle", []Work{known(50, 60)}, 0,
			ETA{Low: 25 * time.Second, High: 30 * time.Second}, "28s"},
		{"a wide range prints both ends", []Work{known(20, 200)}, 0,
			ETA{Low: 10 * time.Second, High: 100 * time.Second}, "10s-1m40s"},
		{"a partition with no answer: a lower bound", []Work{known(20, 20), {}}, 0,
			ETA{Low: 10 * time.Second, High: 10 * time.Second, AtLeast: true}, "at least 10s"},
		{"at least a request each", []Work{known(0, 0)}, 0,
			ETA{Low: time.Second, High: time.Second}, "1s"},
		{"waves of two: running first, then the longest", []Work{
			known(40, 40), known(40, 40), // running: 20 s each
			{Known: true, PagesLow: 80, PagesHigh: 80, Rate: 2}, {Known: true, PagesLow: 20, PagesHigh: 20, Rate: 2}, // queued: 40 s, 10 s
		}, 2, ETA{Low: time.Minute, High: time.Minute}, "1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Estimate(tc.work, tc.slots)
			if got != tc.want || got.String() != tc.text {
				t.Fatalf("Estimate = %+v %q, want %+v %q", got, got.String(), tc.want, tc.text)
			}
		})
	}
}

func TestWorkFromEngine(t *testing.T) {
	t.Parallel()
	parts := []engine.PartitionSnapshot{
		{Account: "111111111111", Region: "eu-west-1", Known: true, PagesLow: 10, PagesHigh: 12, Rate: 2, Running: true},
		{Account: "111111111111", Region: "us-east-1", Done: true},
		{Account: "222222222222", Region: "eu-west-1", Done: true, Running: true}, // read all, still writing
	}
	got := WorkFromEngine(parts, 4)
	want := []Work{
		{Known: true, PagesLow: 10, PagesHigh: 12, Rate: 2, Running: true},
		{Done: true},
		{Running: true},
		{},
	}
	if len(got) != len(want) {
		t.Fatalf("work %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("work[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestWorkFromArchive(t *testing.T) {
	t.Parallel()
	day := int64(24 * 3600)
	p := func(acct string) contract.Partition { return contract.Partition{Account: acct, Region: "eu-west-1"} }
	got := WorkFromArchive([]PartitionArchived{
		{Partition: p("111111111111"), Windows: 48, WindowsTotal: 96, Events: 100 * 24, Seconds: day, SecondsTotal: 2 * day},     // 100 events/h
		{Partition: p("222222222222"), Windows: 24, WindowsTotal: 96, Events: 300 * 12, Seconds: day / 2, SecondsTotal: 2 * day}, // 300 events/h
		{Partition: p("333333333333"), Windows: 0, WindowsTotal: 96, SecondsTotal: 2 * day},
		{Partition: p("444444444444"), Windows: 96, WindowsTotal: 96, Events: 5, Seconds: 2 * day, SecondsTotal: 2 * day},
	}, 2)
	// All archived: 2,400 + 3,600 + 5 events over 3.5 days: about 71.5 events/h.
	all := float64(2400+3600+5) / (3.5 * 24)
	want := []Work{
		{Known: true, PagesLow: all * 24 / 50, PagesHigh: 100 * 24 / 50.0, Rate: 2, Running: true},
		{Known: true, PagesLow: all * 36 / 50, PagesHigh: 300 * 36 / 50.0, Rate: 2, Running: true},
		{Rate: 2},
		{Done: true, Known: true, Rate: 2, Running: true},
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Done != w.Done || g.Known != w.Known || g.Running != w.Running || g.Rate != w.Rate ||
			abs(g.PagesLow-w.PagesLow) > 1e-6 || abs(g.PagesHigh-w.PagesHigh) > 1e-6 {
			t.Fatalf("work[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func abs(f float64) float64 { return max(f, -f) }
