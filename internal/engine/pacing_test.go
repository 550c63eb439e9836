package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
)

// Latency and rate at which the engine reads with several pagers from the
// start: the first answer (300 ms) is later than the blind-piece delay, and
// rate x latency is about 7 pagers.
const (
	splitRate    = 20.0
	splitLatency = 300 * time.Millisecond
)

// splitEvents places events on and around every boundary of [start, end) and
// in dense stretches, so that pagers' ranges are cut inside them (about 60
// pages: enough for several pagers within the cut budget).
func splitEvents(t *testing.T, account, region string, start, end time.Time) []testkit.Event {
	ts := boundaryTimes(start, end)
	ts = append(ts, testkit.Spaced(start.Add(7*time.Minute), 2*time.Second, 500)...)
	ts = append(ts, testkit.Spaced(start.Add(95*time.Minute), time.Second, 700)...)
	ts = append(ts, testkit.Spaced(start.Add(121*time.Minute), 3*time.Second, 1500)...)
	return testkit.Retimed(t, account, region, ts)
}

func TestSplitRangesArchiveEveryEventOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{Latency: splitLatency, Jitter: splitLatency / 10, Seed: 5}, splitRate)
	start, end := day.Add(-90*time.Minute), day.Add(90*time.Minute) // crosses midnight UTC
	evs := splitEvents(t, member, "eu-west-1", start, end)
	testkit.Load(t, f.emu, evs)
	res := mustRun(t, f, member, "eu-west-1", start, end)
	st := f.emu.Stats(member, "eu-west-1")
	if st.MaxInFlight < 4 {
		t.Fatalf("at most %d requests in flight: the range was not read by several pagers, the test tests nothing", st.MaxInFlight)
	}
	want := inRange(evs, start, end)
	if res.Events != int64(len(want)) {
		t.Fatalf("archived %d events, want %d", res.Events, len(want))
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: want, Start: start, End: end})
	testkit.CheckManifests(t, f.store, [][2]string{{member, "eu-west-1"}}, start, end, engine.DefaultWindow)
	t.Logf("%d requests for %d events, %d in flight at most", st.Requests, len(want), st.MaxInFlight)
}

func TestSplitRangesResumeAfterDeadline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{Latency: splitLatency, Jitter: splitLatency / 10, Seed: 6}, splitRate)
	start, end := day.Add(2*time.Hour), day.Add(5*time.Hour)
	evs := splitEvents(t, member, "us-east-1", start, end)
	testkit.Load(t, f.emu, evs)
	invocations := f.runInvocations(t, member, "us-east-1", start, end, 1200*time.Millisecond, 50)
	if invocations < 2 {
		t.Fatalf("finished in %d invocation: the deadline never interrupted the pagers", invocations)
	}
	if st := f.emu.Stats(member, "us-east-1"); st.MaxInFlight < 3 {
		t.Fatalf("at most %d requests in flight: the test tests nothing", st.MaxInFlight)
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end, Pieces: true})
	testkit.CheckManifests(t, f.store, [][2]string{{member, "us-east-1"}}, start, end, engine.DefaultWindow)
	t.Logf("%d invocations", invocations)
}

func TestSplitRangesUnderThrottling(t *testing.T) {
	t.Parallel()
	// A competing caller takes half of the quota: the pagers are throttled
	// and slow down, and nothing is lost.
	f := newFixture(t, emulator.Config{Latency: splitLatency, Jitter: splitLatency / 10, Rate: splitRate, Burst: 1, Seed: 8}, splitRate)
	f.emu.SetCompetitor(caller, "ap-south-1", splitRate/2)
	start, end := day, day.Add(3*time.Hour)
	evs := splitEvents(t, caller, "ap-south-1", start, end)
	testkit.Load(t, f.emu, evs)
	mustRun(t, f, caller, "ap-south-1", start, end)
	st := f.emu.Stats(caller, "ap-south-1")
	if st.Throttled == 0 || st.MaxInFlight < 2 {
		t.Fatalf("throttled %d, %d in flight at most: the test does not test throttled pagers", st.Throttled, st.MaxInFlight)
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end})
	testkit.CheckManifests(t, f.store, [][2]string{{caller, "ap-south-1"}}, start, end, engine.DefaultWindow)
	t.Logf("throttled %d of %d requests", st.Throttled, st.Requests)
}

// recorder records the queries a LookupAPI is asked, first pages only.
type recorder struct {
	engine.LookupAPI
	mu     sync.Mutex
	starts []time.Time
}

func (r *recorder) LookupEvents(ctx context.Context, in *cloudtrail.LookupEventsInput, opts ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	if in.NextToken == nil {
		r.mu.Lock()
		r.starts = append(r.starts, aws.ToTime(in.StartTime))
		r.mu.Unlock()
	}
	return r.LookupAPI.LookupEvents(ctx, in, opts...)
}

// Pending ranges are read oldest first: LookupEvents forgets events older
// than 90 days while a backfill runs.
func TestPendingRangesAreReadOldestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	start, end := day.Add(6*time.Hour), day.Add(9*time.Hour)
	evs := testkit.Retimed(t, caller, "eu-west-1", testkit.Spaced(start, 10*time.Second, 3*360))
	testkit.Load(t, f.emu, evs)
	// Windows 2 and 4 of 6 archived first: three ranges are left.
	for _, w := range []time.Duration{30 * time.Minute, 90 * time.Minute} {
		mustRun(t, f, caller, "eu-west-1", start.Add(w), start.Add(w+30*time.Minute))
	}
	rec := &recorder{}
	res, err := f.run(t, caller, "eu-west-1", start, end, func(_ *engine.Config, j *engine.Job) {
		rec.LookupAPI = j.Client
		j.Client = rec
	})
	if err != nil || !res.Complete {
		t.Fatalf("run: %+v, %v", res, err)
	}
	if len(rec.starts) < 3 {
		t.Fatalf("%d queries for three ranges", len(rec.starts))
	}
	// Until the first answer one range is read; the first is the oldest.
	if !rec.starts[0].Equal(start) {
		t.Fatalf("queries started at %v: want the oldest range (%s) first", rec.starts, start)
	}
	for _, want := range []time.Time{start, start.Add(time.Hour), start.Add(2 * time.Hour)} {
		if !slices.ContainsFunc(rec.starts, want.Equal) {
			t.Fatalf("queries started at %v: none for the range at %s", rec.starts, want)
		}
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end})
}
