package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/pace"
)

// simAPI is LookupEvents in memory, for runs in a synctest bubble (virtual
// time): the emulator's paging (newest first, 50 per page, inclusive bounds,
// NextToken bound to the query), its token bucket (2 requests/s, burst 2,
// checked on arrival) and latency with uniform jitter. The client side paces
// every attempt on the job's limiter, as pace.Middleware does.
type simAPI struct {
	lim     *pace.Limiter
	latency time.Duration
	jitter  time.Duration

	mu        sync.Mutex
	rng       *rand.Rand
	bucket    *rate.Limiter
	events    []simEvent // newest first, ties by ID descending
	requests  int
	throttled int
	answered  []simEvent // events in the order the answers returned them
}

type simEvent struct {
	t  time.Time
	id string
}

func newSimAPI(lim *pace.Limiter, latency, jitter time.Duration, seed uint64, times []time.Time) *simAPI {
	s := &simAPI{lim: lim, latency: latency, jitter: jitter, rng: rand.New(rand.NewPCG(seed, 7)), bucket: rate.NewLimiter(rate.Limit(pace.MaxRate), 2)}
	for i, t := range times {
		s.events = append(s.events, simEvent{t: t.UTC().Truncate(time.Second), id: fmt.Sprintf("%08d-%d", i, seed)})
	}
	sort.Slice(s.events, func(a, b int) bool { return s.after(s.events[a], s.events[b].t, s.events[b].id) })
	return s
}

// after reports whether e is listed before (t, id): newest first.
func (*simAPI) after(e simEvent, t time.Time, id string) bool {
	if !e.t.Equal(t) {
		return e.t.After(t)
	}
	return e.id > id
}

func (s *simAPI) LookupEvents(ctx context.Context, in *cloudtrail.LookupEventsInput, _ ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	if err := s.lim.Wait(ctx); err != nil {
		return nil, err
	}
	sent := time.Now()
	s.mu.Lock()
	s.requests++
	ok := s.bucket.Allow()
	d := s.latency + time.Duration((s.rng.Float64()*2-1)*float64(s.jitter))
	s.mu.Unlock()
	if !ok {
		s.mu.Lock()
		s.throttled++
		s.mu.Unlock()
		s.lim.Throttled()
		return nil, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	}
	from, to := aws.ToTime(in.StartTime), aws.ToTime(in.EndTime)
	params := from.Format(time.RFC3339) + "/" + to.Format(time.RFC3339)
	i := sort.Search(len(s.events), func(i int) bool { return !s.events[i].t.After(to) })
	if tok := aws.ToString(in.NextToken); tok != "" {
		p, rest, _ := strings.Cut(tok, "|")
		if p != params {
			return nil, &smithy.GenericAPIError{Code: "InvalidNextTokenException", Message: "token of another query"}
		}
		sec, id, _ := strings.Cut(rest, "|")
		n, _ := strconv.ParseInt(sec, 10, 64)
		at := time.Unix(n, 0).UTC()
		i = max(i, sort.Search(len(s.events), func(i int) bool { return s.after(simEvent{t: at, id: id}, s.events[i].t, s.events[i].id) }))
	}
	out := &cloudtrail.LookupEventsOutput{}
	for ; i < len(s.events) && !s.events[i].t.Before(from) && len(out.Events) < PageSize; i++ {
		e := s.events[i]
		rec := fmt.Sprintf(`{"eventID":%q,"eventTime":%q}`, e.id, e.t.Format(time.RFC3339))
		out.Events = append(out.Events, types.Event{EventId: aws.String(e.id), EventTime: aws.Time(e.t), CloudTrailEvent: aws.String(rec)})
	}
	s.mu.Lock()
	for _, e := range out.Events {
		s.answered = append(s.answered, simEvent{t: aws.ToTime(e.EventTime), id: aws.ToString(e.EventId)})
	}
	s.mu.Unlock()
	if len(out.Events) == PageSize && i < len(s.events) && !s.events[i].t.Before(from) {
		last := out.Events[len(out.Events)-1]
		out.NextToken = aws.String(fmt.Sprintf("%s|%d|%s", params, last.EventTime.Unix(), aws.ToString(last.EventId)))
	}
	s.lim.Observe(time.Since(sent))
	s.lim.Succeeded()
	return out, nil
}

func (s *simAPI) stats() (requests, throttled int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.throttled
}

// simRun is one partition's run in virtual time.
type simRun struct {
	wall      time.Duration
	requests  int
	throttled int
	events    int64
	pages     int64
	answered  []simEvent
}

var simStart = time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)

// spread is n times uniformly random in [from, from+span), whole seconds.
func spread(r *rand.Rand, n int, from time.Time, span time.Duration) []time.Time {
	times := make([]time.Time, n)
	for i := range times {
		times[i] = from.Add(time.Duration(r.Int64N(int64(span/time.Second))) * time.Second)
	}
	return times
}

// simulate runs one partition of n events uniformly random over [start,
// start+span) in a synctest bubble.
func simulate(t *testing.T, latency time.Duration, n int, span time.Duration, seed uint64) simRun {
	r := rand.New(rand.NewPCG(seed, 99))
	return simulateTimes(t, latency, spread(r, n, simStart, span), span, seed, nil)
}

// estimateSample is the engine's estimate of the time left at one moment.
type estimateSample struct {
	at   time.Duration // since the run began
	left time.Duration // estimated: the middle of the pages left at the quota, and the last answer
}

// simulateTimes runs one partition of events at the given times over
// [simStart, simStart+span) in a synctest bubble; with samples, it records
// the engine's estimate of the time left every quarter second.
func simulateTimes(t *testing.T, latency time.Duration, times []time.Time, span time.Duration, seed uint64, samples *[]estimateSample) simRun {
	var res simRun
	n := len(times)
	synctest.Test(t, func(t *testing.T) {
		start := simStart
		lim := pace.NewLimiter(pace.MaxRate)
		api := newSimAPI(lim, latency, latency/10, seed, times)
		store, err := archive.NewLocalStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		progress := &Progress{}
		began := time.Now()
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			if samples == nil {
				return
			}
			for {
				select {
				case <-done:
					return
				case <-time.After(250 * time.Millisecond):
				}
				p := progress.Partition("111111111111", "us-east-1").Snapshot()
				if p.Known && !p.Done {
					pages := math.Ceil((p.PagesLow + p.PagesHigh) / 2)
					*samples = append(*samples, estimateSample{at: time.Since(began), left: time.Duration(pages/p.Rate*float64(time.Second)) + p.Latency})
				}
			}
		}()
		out, err := Run(context.Background(), Config{Store: store, SpoolDir: t.TempDir(), SettleMargin: -1, Progress: progress},
			Job{Account: "111111111111", Region: "us-east-1", Start: start, End: start.Add(span), Client: api, Limiter: lim})
		close(done)
		<-sampled
		if err != nil {
			t.Fatal(err)
		}
		if out.Events != int64(n) {
			t.Fatalf("%d events archived, want %d", out.Events, n)
		}
		res.wall = time.Since(began)
		res.requests, res.throttled = api.stats()
		res.answered = api.answered
		res.events, res.pages = out.Events, out.Pages
	})
	return res
}

// simCase is one shape of TestSimulatedPacing.
type simCase struct {
	latency time.Duration
	events  int
	span    time.Duration
	// What the scheduling must reach: efficiency (ideal time at the quota /
	// time) and requests at most extra plus share times the pages.
	minEfficiency float64
	extra         int
	share         float64
}

var simCases = []simCase{
	{200 * time.Millisecond, 2000, 2 * time.Hour, 0.97, 1, 1},
	{time.Second, 2000, 2 * time.Hour, 0.90, 4, 1},
	{time.Second, 3000, 2 * time.Hour, 0.91, 4, 1},
	{4 * time.Second, 3000, 2 * time.Hour, 0.70, 0, 1.1},
	{4 * time.Second, 10000, 2 * time.Hour, 0.85, 0, 1.1},
	// Sparse and empty three-day ranges: at most specPieces requests.
	{200 * time.Millisecond, 30, 72 * time.Hour, 0, 1, 0},
	{4 * time.Second, 30, 72 * time.Hour, 0, specPieces, 0},
	{4 * time.Second, 0, 72 * time.Hour, 0, specPieces, 0},
}

// TestSimulatedPacing runs the engine against LookupEvents in memory in
// virtual time (synctest): the scheduling alone, with no CPU or network cost,
// on the benchmark's shapes (internal/bench measures the same on the
// emulator). The figures are what the scheduling reaches with margin; they
// catch a regression, not a slow machine (virtual time is not wall time).
// SIM_SEEDS=n runs n seeds per shape and prints the figures.
func TestSimulatedPacing(t *testing.T) {
	seeds := 2
	if v, err := strconv.Atoi(os.Getenv("SIM_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	for _, c := range simCases {
		t.Run(fmt.Sprintf("latency=%s/events=%d/span=%s", c.latency, c.events, c.span), func(t *testing.T) {
			pages := max(1, (c.events+PageSize-1)/PageSize)
			maxRequests := c.extra + int(c.share*float64(pages))
			for seed := range seeds {
				r := simulate(t, c.latency, c.events, c.span, uint64(seed+1))
				eff := float64(pages) / pace.MaxRate / r.wall.Seconds()
				t.Logf("seed %d: efficiency %.3f, %d requests for %d pages, %d throttled", seed+1, eff, r.requests, pages, r.throttled)
				if r.throttled != 0 {
					t.Errorf("seed %d: %d requests throttled: the limiter let out more than the quota", seed+1, r.throttled)
				}
				if c.minEfficiency > 0 && eff < c.minEfficiency {
					t.Errorf("seed %d: efficiency %.3f, want at least %.2f", seed+1, eff, c.minEfficiency)
				}
				if r.requests > maxRequests {
					t.Errorf("seed %d: %d requests for %d pages, want at most %d", seed+1, r.requests, pages, maxRequests)
				}
			}
		})
	}
}

// A long backlog is read oldest first: LookupEvents forgets events older than
// 90 days while the run proceeds. With chunks of 10 pages (240 pages for nine
// pagers: a backlog of about 27 pages each), most of the oldest quarter of
// the range is read in the first half of the run, and most of the newest
// quarter in the second.
func TestSimulatedBacklogIsReadOldestFirst(t *testing.T) {
	defer func(p float64) { maxChunkPages = p }(maxChunkPages)
	maxChunkPages = 10
	const n = 12000
	span := 24 * time.Hour
	r := simulate(t, 4*time.Second, n, span, 1)
	start := time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)
	// For each quarter of the range: the share of its events first returned
	// in the first half of all the events returned.
	seen := map[string]bool{}
	var early, total [4]int
	for i, e := range r.answered {
		if seen[e.id] {
			continue
		}
		seen[e.id] = true
		q := min(3, int(4*e.t.Sub(start)/span))
		total[q]++
		if i < len(r.answered)/2 {
			early[q]++
		}
	}
	share := func(q int) float64 { return float64(early[q]) / float64(max(total[q], 1)) }
	t.Logf("read in the first half, by quarter of the range, oldest first: %.2f %.2f %.2f %.2f", share(0), share(1), share(2), share(3))
	if share(0) < 0.8 {
		t.Errorf("only %.0f%% of the oldest quarter was read in the first half of the run, want 80%% or more", 100*share(0))
	}
	if share(3) > 0.4 {
		t.Errorf("%.0f%% of the newest quarter was read in the first half of the run, want 40%% at most", 100*share(3))
	}
}

// The engine's estimate of the time left, a quarter, half and three quarters
// of the way through a run, is within a factor of 1.5 of the time that was
// left: on uniform ranges, and on a sparse range with one dense window (the
// demo's shape: the density ahead changes, and probes find where).
func TestSimulatedEstimateIsHonest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		latency time.Duration
		times   func(r *rand.Rand) []time.Time
		span    time.Duration
	}{
		{"uniform at 1s", time.Second, func(r *rand.Rand) []time.Time { return spread(r, 3000, simStart, 2*time.Hour) }, 2 * time.Hour},
		{"uniform at 4s", 4 * time.Second, func(r *rand.Rand) []time.Time { return spread(r, 3000, simStart, 2*time.Hour) }, 2 * time.Hour},
		{"a dense window in a sparse day, 300ms", 300 * time.Millisecond, func(r *rand.Rand) []time.Time {
			return append(spread(r, 250, simStart, 6*time.Hour), spread(r, 3000, simStart.Add(2*time.Hour), 30*time.Minute)...)
		}, 6 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var samples []estimateSample
			r := simulateTimes(t, tc.latency, tc.times(rand.New(rand.NewPCG(4, 99))), tc.span, 4, &samples)
			for _, q := range []float64{0.25, 0.5, 0.75} {
				at := time.Duration(q * float64(r.wall))
				i := sort.Search(len(samples), func(i int) bool { return samples[i].at >= at })
				if i == len(samples) {
					t.Fatalf("no estimate after %s of %s", at, r.wall)
				}
				s := samples[i]
				real := r.wall - s.at
				ratio := s.left.Seconds() / real.Seconds()
				t.Logf("at %.0f%% (%s): estimated %s left, %s were", 100*q, s.at, s.left, real.Round(time.Second/10))
				if ratio > 1.5 || ratio < 1/1.5 {
					t.Errorf("at %s of %s: estimated %s left, %s were (ratio %.2f)", s.at, r.wall, s.left, real, ratio)
				}
			}
		})
	}
}
