package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
)

const (
	caller  = "111111111111"
	member  = "222222222222"
	rapid   = 400.0 // requests/s: time-scaled quota so tests stay fast
	roleFor = contract.DefaultRoleName
)

// fixture is an emulator, clients as the caller account, and an archive.
type fixture struct {
	emu     *emulator.Server
	clients *awsconf.Clients
	store   archive.Store
}

// newFixture archives into S3 under the deployed role's permissions
// (testkit.DeployedS3): create-only writes under AWSLogs/, no deletes, 403 for
// missing keys, the ACL and KMS key required. Every engine test runs there.
func newFixture(t *testing.T, cfg emulator.Config, rate float64) *fixture {
	t.Helper()
	return newFixtureIn(t, cfg, rate, testkit.DeployedS3)
}

func newFixtureIn(t testing.TB, cfg emulator.Config, rate float64, kind testkit.StoreKind) *fixture {
	t.Helper()
	if cfg.Rate == 0 {
		cfg.Rate = rate
	}
	emu := testkit.StartEmulator(t, cfg)
	emu.AddAccount(caller)
	emu.AddAccount(member, roleFor)
	awsCfg := testkit.AWSConfig(t, emu, caller)
	f := &fixture{emu: emu, clients: awsconf.NewClients(awsCfg, sts.NewFromConfig(awsCfg), roleFor, rate), store: testkit.NewArchive(t, emu, kind)}
	t.Cleanup(func() {
		// The engine never needs what the deployed role may not do.
		for _, r := range emu.S3Refusals() {
			if r.Reason != emulator.RefusedMissingKey {
				t.Errorf("S3 refused a request the deployed role would not be allowed: %+v", r)
			}
		}
	})
	return f
}

func (f *fixture) run(t testing.TB, account, region string, start, end time.Time, mut func(*engine.Config, *engine.Job)) (engine.Result, error) {
	t.Helper()
	ctx := context.Background()
	client, lim, err := f.clients.LookupClient(ctx, account, region)
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.Config{Store: f.store}
	job := engine.Job{Account: account, Region: region, Start: start, End: end, Client: client, Limiter: lim}
	if mut != nil {
		mut(&cfg, &job)
	}
	return engine.Run(ctx, cfg, job)
}

// runInvocations runs [start, end) as Lambda invocations do: each one stops
// after budget and hands its cursor (the spans it read) to the next, until
// one completes; it returns how many it took, at most limit.
func (f *fixture) runInvocations(t *testing.T, account, region string, start, end time.Time, budget time.Duration, limit int) int {
	t.Helper()
	var read []contract.Span
	for invocations := 1; ; invocations++ {
		if invocations > limit {
			t.Fatalf("no progress in %d invocations", limit)
		}
		res, err := f.run(t, account, region, start, end, func(_ *engine.Config, j *engine.Job) {
			j.Read = read
			j.StopAt = time.Now().Add(budget)
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Complete {
			return invocations
		}
		read = res.Read
	}
}

func mustRun(t *testing.T, f *fixture, account, region string, start, end time.Time) engine.Result {
	t.Helper()
	res, err := f.run(t, account, region, start, end, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete {
		t.Fatalf("run incomplete: %+v", res)
	}
	return res
}

// allKeys lists the archive's two folders (the deployed role may list only those).
func allKeys(t *testing.T, s archive.Store) []string {
	t.Helper()
	var out []string
	for _, p := range []string{"AWSLogs/", "trailfill/"} {
		keys, err := s.List(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, keys...)
	}
	return out
}

// inRange keeps the events in [start, end).
func inRange(evs []testkit.Event, start, end time.Time) []testkit.Event {
	var out []testkit.Event
	for _, e := range evs {
		if !e.Time.Before(start) && e.Time.Before(end) {
			out = append(out, e)
		}
	}
	return out
}

var day = time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC)

// boundaryTimes places events on and around every window and slice boundary of
// [start, end), on the range ends, just outside them, and across midnight.
func boundaryTimes(start, end time.Time) []time.Time {
	var ts []time.Time
	for t := start.Add(-10 * time.Minute); !t.After(end.Add(10 * time.Minute)); t = t.Add(5 * time.Minute) {
		ts = append(ts, t.Add(-time.Second), t, t, t.Add(time.Second), t.Add(97*time.Second))
	}
	return ts
}

func TestCompletenessAcrossPartitionsBoundariesAndMidnight(t *testing.T) {
	t.Parallel()
	for _, kind := range []testkit.StoreKind{testkit.LocalFolder, testkit.DeployedS3} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			testCompleteness(t, kind)
		})
	}
}

func testCompleteness(t *testing.T, kind testkit.StoreKind) {
	f := newFixtureIn(t, emulator.Config{}, rapid, kind)
	start, end := day.Add(-90*time.Minute), day.Add(2*time.Hour) // crosses midnight UTC
	type part struct{ account, region string }
	parts := []part{{caller, "us-east-1"}, {caller, "eu-west-1"}, {caller, "ap-south-1"}, {member, "us-east-1"}, {member, "eu-west-1"}, {member, "ap-south-1"}}
	var want []testkit.Event
	var keys [][2]string
	for i, p := range parts {
		ts := boundaryTimes(start, end)
		// plus a busy stretch, different per partition
		ts = append(ts, testkit.Spaced(start.Add(time.Duration(i)*17*time.Minute), 3*time.Second, 400)...)
		evs := testkit.Retimed(t, p.account, p.region, ts)
		testkit.Load(t, f.emu, evs)
		want = append(want, inRange(evs, start, end)...)
		keys = append(keys, [2]string{p.account, p.region})
	}
	for _, p := range parts {
		res := mustRun(t, f, p.account, p.region, start, end)
		if res.WindowsTotal != 7 || res.Windows != 7 {
			t.Fatalf("%v: windows %d/%d, want 7/7", p, res.Windows, res.WindowsTotal)
		}
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: want, Start: start, End: end})
	testkit.CheckManifests(t, f.store, keys, start, end, engine.DefaultWindow)
	if f.emu.AssumeRoleCalls(member) != 1 {
		t.Fatalf("AssumeRole calls for %s = %d, want 1 (credentials cached per account)", member, f.emu.AssumeRoleCalls(member))
	}
	if f.emu.AssumeRoleCalls(caller) != 0 {
		t.Fatalf("the caller's own account must be read without assuming a role")
	}
}

func TestBusyWindowIsArchivedWhole(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	start := day.Add(10 * time.Hour)
	end := start.Add(time.Hour)
	// 12,000 events in one 30-minute window: 6.7 per second, many per second.
	ts := make([]time.Time, 12000)
	for i := range ts {
		ts[i] = start.Add(time.Duration(i*1800/12000) * time.Second)
	}
	evs := testkit.Retimed(t, caller, "us-east-1", ts)
	testkit.Load(t, f.emu, evs)
	res := mustRun(t, f, caller, "us-east-1", start, end)
	if res.Events != 12000 {
		t.Fatalf("archived %d events, want 12000", res.Events)
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: evs, Start: start, End: end})
	testkit.CheckManifests(t, f.store, [][2]string{{caller, "us-east-1"}}, start, end, engine.DefaultWindow)
	// Splitting costs partial pages, but not many.
	if min := int64(12000 / engine.PageSize); res.Pages > min+min/5 {
		t.Fatalf("%d pages for %d full pages of events: splitting wastes too much", res.Pages, min)
	}
}

func TestEmptyAndSparseRangesCostFewRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	start, end := day, day.Add(72*time.Hour)
	// 30 events over three days in one partition; nothing in the other.
	evs := testkit.Retimed(t, caller, "eu-west-1", testkit.Spaced(start.Add(time.Hour), 139*time.Minute, 30))
	testkit.Load(t, f.emu, evs)
	res := mustRun(t, f, caller, "eu-west-1", start, end)
	if got := f.emu.Stats(caller, "eu-west-1").Requests; got > 3 {
		t.Fatalf("sparse 3-day range took %d requests, want at most 3", got)
	}
	if res.WindowsTotal != 144 || res.Windows != 144 {
		t.Fatalf("windows %d/%d, want 144/144", res.Windows, res.WindowsTotal)
	}
	mustRun(t, f, caller, "sa-east-1", start, end)
	if got := f.emu.Stats(caller, "sa-east-1").Requests; got != 1 {
		t.Fatalf("empty 3-day range took %d requests, want 1", got)
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: evs, Start: start, End: end})
	testkit.CheckManifests(t, f.store, [][2]string{{caller, "eu-west-1"}, {caller, "sa-east-1"}}, start, end, engine.DefaultWindow)
}

func TestRerunAddsNothingAndReadsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	start, end := day, day.Add(3*time.Hour)
	evs := testkit.Retimed(t, caller, "us-east-1", testkit.Spaced(start, 7*time.Second, 1500))
	testkit.Load(t, f.emu, evs)
	mustRun(t, f, caller, "us-east-1", start, end)
	before := f.emu.Stats(caller, "us-east-1").Requests
	keys := allKeys(t, f.store)
	res := mustRun(t, f, caller, "us-east-1", start, end)
	if res.WindowsSkipped != 6 || res.Windows != 0 || res.Files != 0 {
		t.Fatalf("re-run: %+v, want all 6 windows skipped and nothing written", res)
	}
	if after := f.emu.Stats(caller, "us-east-1").Requests; after != before {
		t.Fatalf("re-run made %d LookupEvents requests, want 0", after-before)
	}
	keys2 := allKeys(t, f.store)
	if strings.Join(keys, ",") != strings.Join(keys2, ",") {
		t.Fatal("re-run changed the set of archive objects")
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end})
}

func TestOverlappingPartialRangesLeaveNoDuplicates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	start, end := day.Add(15*time.Hour), day.Add(16*time.Hour)
	evs := testkit.Retimed(t, caller, "us-east-1", testkit.Spaced(start.Add(-10*time.Minute), 11*time.Second, 500))
	testkit.Load(t, f.emu, evs)
	// First a range that starts and ends inside slices, then the whole hour.
	a, b := start.Add(12*time.Minute+7*time.Second), start.Add(41*time.Minute+3*time.Second)
	mustRun(t, f, caller, "us-east-1", a, b)
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, a, b), Start: a, End: b})
	mustRun(t, f, caller, "us-east-1", start, end)
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end, Pieces: true})
	testkit.CheckManifests(t, f.store, [][2]string{{caller, "us-east-1"}}, start, end, engine.DefaultWindow)
}

func TestThrottlingStormLosesNothing(t *testing.T) {
	t.Parallel()
	// A competing caller takes most of a tight quota: most attempts are throttled.
	f := newFixture(t, emulator.Config{Rate: 40, Burst: 1}, 40)
	f.emu.SetCompetitor(caller, "us-east-1", 30)
	start, end := day, day.Add(2*time.Hour)
	evs := testkit.Retimed(t, caller, "us-east-1", testkit.Spaced(start, 2*time.Second, 2500))
	testkit.Load(t, f.emu, evs)
	mustRun(t, f, caller, "us-east-1", start, end)
	st := f.emu.Stats(caller, "us-east-1")
	if st.Throttled == 0 {
		t.Fatal("the storm throttled nothing: the test does not test throttling")
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end})
	testkit.CheckManifests(t, f.store, [][2]string{{caller, "us-east-1"}}, start, end, engine.DefaultWindow)
	t.Logf("throttled %d of %d requests", st.Throttled, st.Requests)
}

func TestServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{FaultRate: 0.05, Seed: 7}, rapid)
	start, end := day, day.Add(4*time.Hour)
	evs := testkit.Retimed(t, member, "eu-west-1", testkit.Spaced(start, 3*time.Second, 4000))
	testkit.Load(t, f.emu, evs)
	mustRun(t, f, member, "eu-west-1", start, end)
	if f.emu.Stats(member, "eu-west-1").Faults == 0 {
		t.Fatal("no faults were injected: the test does not test faults")
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end})
}

func TestS3WriteFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	// Few retries, so a persistent failure fails fast.
	s3c := s3.NewFromConfig(testkit.AWSConfig(t, f.emu, caller), func(o *s3.Options) {
		o.UsePathStyle = true
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 4; o.MaxBackoff = 10 * time.Millisecond })
	})
	if err := f.emu.CreateBucket("archive"); err != nil {
		t.Fatal(err)
	}
	store, err := archive.Open(archive.Destination{Bucket: "archive", Prefix: "backfill"}, s3c, archive.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	start, end := day, day.Add(2*time.Hour)
	evs := testkit.Retimed(t, caller, "us-east-1", testkit.Spaced(start, 5*time.Second, 1400))
	testkit.Load(t, f.emu, evs)
	trail := func(_, key string) bool { return strings.Contains(key, "/AWSLogs/") }

	// Transient: the SDK retries each failed write.
	f.emu.FailS3Puts(trail, 3)
	mustRun(t, f, caller, "us-east-1", start, day.Add(time.Hour))

	// Persistent: the run fails, no manifest claims a window it did not finish.
	f.emu.FailS3Puts(trail, 1000)
	if _, err := f.run(t, caller, "us-east-1", start, end, nil); err == nil {
		t.Fatal("a run whose writes all fail succeeded")
	}
	ms, err := archive.PartitionManifests(context.Background(), store, caller, "us-east-1", start, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d manifests after the failed run, want the 2 of the first hour", len(ms))
	}
	f.emu.ClearS3Faults()
	mustRun(t, f, caller, "us-east-1", start, end)
	testkit.CheckArchive(t, store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end})
	testkit.CheckManifests(t, store, [][2]string{{caller, "us-east-1"}}, start, end, engine.DefaultWindow)
	if keys := f.emu.S3Keys("archive", "backfill/trailfill/manifests/"); len(keys) != 5 {
		t.Fatalf("objects under the manifest prefix: %d, want 4 manifests and the coverage index: %v", len(keys), keys)
	}
}

func TestStopAtDeadlineResumesWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	// 120 pages at 100 req/s take at least 1.2 s; each invocation gets 0.8 s.
	f := newFixture(t, emulator.Config{Latency: 5 * time.Millisecond}, 100)
	start, end := day.Add(5*time.Hour), day.Add(6*time.Hour)
	evs := testkit.Retimed(t, member, "us-east-1", testkit.Spaced(start, 300*time.Millisecond, 6000))
	testkit.Load(t, f.emu, evs)
	invocations := f.runInvocations(t, member, "us-east-1", start, end, 800*time.Millisecond, 100)
	if invocations < 2 {
		t.Fatalf("finished in %d invocations: the deadline never interrupted a window", invocations)
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, start, end), Start: start, End: end, Pieces: true})
	testkit.CheckManifests(t, f.store, [][2]string{{member, "us-east-1"}}, start, end, engine.DefaultWindow)
	t.Logf("%d invocations", invocations)
}

func TestOrganizationLayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	start, end := day, day.Add(time.Hour)
	evs := testkit.Retimed(t, member, "eu-west-1", testkit.Spaced(start, 13*time.Second, 200))
	testkit.Load(t, f.emu, evs)
	if _, err := f.run(t, member, "eu-west-1", start, end, func(c *engine.Config, _ *engine.Job) { c.OrgID = "o-a1b2c3d4e5" }); err != nil {
		t.Fatal(err)
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{OrgID: "o-a1b2c3d4e5", Events: evs, Start: start, End: end})
	keys, _ := f.store.List(context.Background(), "AWSLogs/o-a1b2c3d4e5/222222222222/CloudTrail/eu-west-1/2025/03/09/")
	if len(keys) != 9 { // 200 events 13 s apart span 43 minutes: 9 slices
		t.Fatalf("%d files in the organization-trail day folder, want 9", len(keys))
	}
}

func TestCheckWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		window time.Duration
		ok     bool
	}{
		{5 * time.Minute, true}, {30 * time.Minute, true}, {time.Hour, true}, {24 * time.Hour, true},
		{0, false}, {7 * time.Minute, false}, {35 * time.Minute, false}, {25 * time.Hour, false},
	} {
		t.Run(tc.window.String(), func(t *testing.T) {
			if err := engine.CheckWindow(tc.window); (err == nil) != tc.ok {
				t.Fatalf("CheckWindow(%s) = %v, want ok=%v", tc.window, err, tc.ok)
			}
		})
	}
}

// blockingClient answers nothing until the request's context ends.
type blockingClient struct{ started chan struct{} }

func (b blockingClient) LookupEvents(ctx context.Context, _ *cloudtrail.LookupEventsInput, _ ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCancelledRunReturns(t *testing.T) {
	t.Parallel()
	store, _ := archive.NewLocalStore(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	client := blockingClient{started: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := engine.Run(ctx, engine.Config{Store: store}, engine.Job{Account: caller, Region: "us-east-1", Start: day, End: day.Add(time.Hour), Client: client})
		done <- err
	}()
	<-client.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v, want context.Canceled", err)
	}
}

func TestFractionalRangeIsRefused(t *testing.T) {
	t.Parallel()
	store, _ := archive.NewLocalStore(t.TempDir())
	_, err := engine.Run(context.Background(), engine.Config{Store: store}, engine.Job{Account: caller, Region: "us-east-1", Start: day, End: day.Add(time.Hour + time.Millisecond), Client: blockingClient{}})
	if err == nil || !strings.Contains(err.Error(), "whole seconds") {
		t.Fatalf("fractional end: %v", err)
	}
}
