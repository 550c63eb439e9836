package engine

import (
	"math"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)

func TestConcurrency(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		rate      float64
		high      time.Duration
		maxPagers int
		want      int
	}{
		{"one pager keeps up below the interval", 2, 220 * time.Millisecond, 16, 1},
		{"exactly one interval", 2, 500 * time.Millisecond, 16, 1},
		{"1s answers", 2, 1100 * time.Millisecond, 16, 3},
		{"4s answers", 2, 4400 * time.Millisecond, 16, 9},
		{"capped by the pagers", 2, 20 * time.Second, 16, 16},
		{"no latency measured", 2, 0, 16, 1},
		{"a lowered rate needs fewer", 1, 4400 * time.Millisecond, 16, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := concurrency(tc.rate, tc.high, tc.maxPagers); got != tc.want {
				t.Fatalf("concurrency(%v, %s, %d) = %d, want %d", tc.rate, tc.high, tc.maxPagers, got, tc.want)
			}
		})
	}
}

func TestMaxChains(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pages float64
		want  int
	}{{0, 1}, {0.5, 1}, {1, 1}, {2.7, 2}, {40, 40}} {
		t.Run(fmtFloat(tc.pages), func(t *testing.T) {
			if got := maxChains(tc.pages); got != tc.want {
				t.Fatalf("maxChains(%v) = %d, want %d", tc.pages, got, tc.want)
			}
		})
	}
}

func TestSpecDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rate float64
		want time.Duration
	}{
		{"the quota's interval", 2, 500 * time.Millisecond},
		{"a lowered rate waits longer", 1, time.Second},
		{"time-scaled rates wait the minimum", 400, minSpecDelay},
		{"no rate", 0, minSpecDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := specDelay(tc.rate); got != tc.want {
				t.Fatalf("specDelay(%v) = %s, want %s", tc.rate, got, tc.want)
			}
		})
	}
}

func TestBlindCuts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		lo, hi time.Time
		n      int
		want   []time.Time
	}{
		{"thirds of two hours", t0, t0.Add(2 * time.Hour), 3, []time.Time{t0.Add(40 * time.Minute), t0.Add(80 * time.Minute)}},
		{"halves", t0, t0.Add(time.Hour), 2, []time.Time{t0.Add(30 * time.Minute)}},
		{"whole seconds", t0, t0.Add(10 * time.Second), 3, []time.Time{t0.Add(3 * time.Second), t0.Add(6 * time.Second)}},
		{"too short for three", t0, t0.Add(5 * time.Second), 3, []time.Time{t0.Add(2 * time.Second)}},
		{"too short to cut", t0, t0.Add(3 * time.Second), 3, nil},
		{"one piece", t0, t0.Add(time.Hour), 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := blindCuts(tc.lo, tc.hi, tc.n)
			if len(got) != len(tc.want) {
				t.Fatalf("blindCuts = %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Fatalf("blindCuts = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestDensity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		events  int
		seconds float64
		prior   float64
		want    float64
	}{
		{"no prior: the ratio", 50, 100, 0, 0.5},
		{"no prior, nothing read", 0, 0, 0, 0},
		{"nothing of its own: the prior", 0, 0, 0.4, 0.4},
		{"one page moves it halfway", 50, 50, 0.25, (50.0 + 50) / (50 + 200)},
		{"many pages: its own", 5000, 1000, 0.1, (5000.0 + 50) / (1000 + 500)},
		{"an empty stretch does not make it empty", 0, 3600, 1, 50.0 / (3600 + 50)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := density(tc.events, tc.seconds, tc.prior); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("density(%d, %v, %v) = %v, want %v", tc.events, tc.seconds, tc.prior, got, tc.want)
			}
		})
	}
}

func TestParts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		events, share float64
		want          int
	}{
		{"three shares", 1000, 6.67, 3},
		{"one share and a half rounds up", 375, 5, 2},
		{"less than a share and a half", 350, 5, 1},
		{"at most a page each", 120, 0.3, 2},
		{"no share", 1000, 0, 1},
		{"nothing", 0, 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parts(tc.events, tc.share); got != tc.want {
				t.Fatalf("parts(%v, %v) = %d, want %d", tc.events, tc.share, got, tc.want)
			}
		})
	}
}

func TestAlignedEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		events, want float64
	}{
		{10, 50 - 2*math.Sqrt(50)},
		{60, 50 - 2*math.Sqrt(50)},
		{80, 100 - 20},
		{300, 300 - 25},
	} {
		t.Run(fmtFloat(tc.events), func(t *testing.T) {
			if got := alignedEvents(tc.events); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("alignedEvents(%v) = %v, want %v", tc.events, got, tc.want)
			}
		})
	}
}

func TestGiveEvents(t *testing.T) {
	t.Parallel()
	onePage := alignedEvents(PageSize)
	for _, tc := range []struct {
		name          string
		events, share float64
		want          float64
	}{
		{"a third of three shares", 900, 6, 300},
		{"half of two shares", 600, 6, 300},
		{"small parts at page multiples", 200, 1, alignedEvents(50)},
		{"two pages: one each", 100, 0.5, onePage},
		{"a page and a bit: a page off saves a round trip", 62, 0.5, onePage},
		{"a page and a half: both parts would take a page each, no", 95, 0.5, 0},
		{"one page: nothing to give", 50, 0.5, 0},
		{"its share only", 300, 6, 0},
		{"no share", 900, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := giveEvents(tc.events, tc.share); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("giveEvents(%v, %v) = %v, want %v", tc.events, tc.share, got, tc.want)
			}
		})
	}
}

func TestIsUncertain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                  string
		recent, ahead, unread float64
		remaining             float64
		want                  bool
	}{
		{"a burst begins: dense pages, sparse behind", 1.7, 0.015, 9000, 60, true},
		{"a burst ends: sparse pages, dense ahead", 0.015, 1.7, 9000, 60, true},
		{"random arrivals: a page or two's noise", 0.45, 0.4, 9000, 60, false},
		{"nothing ahead of note: a few pages at most", 1.7, 0.015, 60, 60, false},
		{"a small part of what is left", 1.7, 0.015, 1000, 200, false},
		{"an empty stretch ahead", 1.7, 0, 9000, 60, true},
		{"nothing at all", 0, 0, 9000, 60, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isUncertain(tc.recent, tc.ahead, tc.unread, tc.remaining); got != tc.want {
				t.Fatalf("isUncertain(%v, %v, %v, %v) = %v, want %v", tc.recent, tc.ahead, tc.unread, tc.remaining, got, tc.want)
			}
		})
	}
}

func TestDonor(t *testing.T) {
	t.Parallel()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name  string
		cs    []candidate
		share float64
		want  int
	}{
		{"the oldest of those with two shares", []candidate{
			{lo: at(40), events: 900, answered: true}, {lo: at(0), events: 700, answered: true}, {lo: at(80), events: 1000, answered: true},
		}, 6, 1},
		{"two shares beat more that are fewer", []candidate{
			{lo: at(0), events: 500, answered: true}, {lo: at(40), events: 650, answered: true},
		}, 6, 1},
		{"else the largest", []candidate{
			{lo: at(0), events: 80, answered: true}, {lo: at(40), events: 120, answered: true}, {lo: at(80), events: 90, answered: true},
		}, 6, 1},
		{"only ranges with an answer", []candidate{
			{lo: at(0), events: 2000}, {lo: at(40), events: 400, answered: true},
		}, 6, 1},
		{"none answered", []candidate{{lo: at(0), events: 2000}}, 6, -1},
		{"nothing", nil, 6, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := donor(tc.cs, tc.share); got != tc.want {
				t.Fatalf("donor = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCutAbove(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		lo, hi         time.Time
		events, perSec float64
		want           time.Time
		ok             bool
	}{
		{"events at the density, whole seconds down", t0, t0.Add(time.Hour), 100, 0.3, t0.Add(333 * time.Second), true},
		{"more than the range holds", t0, t0.Add(100 * time.Second), 100, 0.5, time.Time{}, false},
		{"too close to the bottom", t0, t0.Add(time.Hour), 1, 1, time.Time{}, false},
		{"too close to the top", t0, t0.Add(100 * time.Second), 99, 1, time.Time{}, false},
		{"no density", t0, t0.Add(time.Hour), 100, 0, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cutAbove(tc.lo, tc.hi, tc.events, tc.perSec)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Fatalf("cutAbove = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestCutAt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		lo, hi         time.Time
		events, perSec float64
		want           time.Time
		ok             bool
	}{
		{"events at the density below the top, whole seconds", t0, t0.Add(time.Hour), 100, 0.3, t0.Add(time.Hour - 334*time.Second), true},
		{"more than the range holds", t0, t0.Add(100 * time.Second), 100, 0.5, time.Time{}, false},
		{"too close to the top", t0, t0.Add(time.Hour), 1, 1, time.Time{}, false},
		{"no density", t0, t0.Add(time.Hour), 100, 0, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cutAt(tc.lo, tc.hi, tc.events, tc.perSec)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Fatalf("cutAt = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestChainPages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		remaining float64
		want      int
		share     float64
	}{
		{"an even share", 60, 9, 60.0 / 9},
		{"capped for a long backlog: the rest is handed out oldest first", 86400, 9, maxChunkPages},
		{"no pagers counts as one", 10, 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := chainPages(tc.remaining, tc.want); math.Abs(got-tc.share) > 1e-9 {
				t.Fatalf("chainPages(%v, %d) = %v, want %v", tc.remaining, tc.want, got, tc.share)
			}
		})
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
