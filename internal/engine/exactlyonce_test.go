package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
)

// The exactly-once tests run in a trail bucket that is not trailfill's alone:
// CloudTrail's own files before an outage, after the repair and redelivered
// late, other runs at the same time.

var (
	outageStart = day.Add(-2 * time.Hour) // 22:00 the day before
	outageEnd   = day.Add(2 * time.Hour)  // 02:00, across midnight
)

// outageEvents are real records around the outage: on every boundary, a
// dense half hour, and events before and after the range.
func outageEvents(t *testing.T, account, region string) []testkit.Event {
	t.Helper()
	ts := boundaryTimes(outageStart, outageEnd)
	ts = append(ts, testkit.Spaced(outageStart.Add(60*time.Minute), 1200*time.Millisecond, 1500)...) // 23:00-23:30
	ts = append(ts, testkit.Spaced(outageStart.Add(-40*time.Minute), 37*time.Second, 200)...)
	return testkit.Retimed(t, account, region, ts)
}

// nativeStretches are what CloudTrail delivered itself: before the outage
// (including the range's start), a stretch inside the dense window, the
// minutes around midnight (a file delivered at 00:0x in the next day's
// folder holds events of 23:5x), and after the repair (the range's end).
func nativeStretches(evs []testkit.Event) []testkit.Event {
	var out []testkit.Event
	for _, s := range [][2]time.Time{
		{outageStart.Add(-time.Hour), outageStart.Add(20 * time.Minute)},
		{outageStart.Add(70 * time.Minute), outageStart.Add(75 * time.Minute)},
		{day.Add(-10 * time.Minute), day.Add(10 * time.Minute)},
		{outageEnd.Add(-30 * time.Minute), outageEnd.Add(time.Hour)},
	} {
		out = append(out, testkit.Between(evs, s[0], s[1])...)
	}
	return out
}

func TestNativeFilesAreNotWrittenAgain(t *testing.T) {
	t.Parallel()
	for _, kind := range []testkit.StoreKind{testkit.LocalFolder, testkit.DeployedS3} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixtureIn(t, emulator.Config{}, rapid, kind)
			evs := outageEvents(t, caller, "us-east-1")
			testkit.Load(t, f.emu, evs)
			native := testkit.NativeFiles(t, "", nativeStretches(evs), testkit.DeliveredAfter(3*time.Minute), 1)
			// Native delivery's own duplicate: a record of the dense stretch
			// in a second file.
			dup := testkit.Between(evs, outageStart.Add(71*time.Minute), outageStart.Add(72*time.Minute))[0]
			extra := testkit.NativeFiles(t, "", []testkit.Event{dup}, testkit.DeliveredAfter(9*time.Minute), 99)
			for k, b := range extra {
				native[k] = b
			}
			testkit.PutNative(t, f.store, native)

			res := mustRun(t, f, caller, "us-east-1", outageStart, outageEnd)
			want := inRange(evs, outageStart, outageEnd)
			inNative := len(inRange(nativeStretches(evs), outageStart, outageEnd))
			if res.Native != int64(inNative) || res.Events != int64(len(want)-inNative) {
				t.Fatalf("run wrote %d and found %d natively; want %d and %d", res.Events, res.Native, len(want)-inNative, inNative)
			}
			testkit.CheckArchive(t, f.store, testkit.Expect{Events: want, Native: native})
			testkit.CheckManifests(t, f.store, [][2]string{{caller, "us-east-1"}}, outageStart, outageEnd, engine.DefaultWindow)
			ms, err := archive.PartitionManifests(context.Background(), f.store, caller, "us-east-1", outageStart, outageEnd)
			if err != nil {
				t.Fatal(err)
			}
			native0 := 0
			for _, m := range ms {
				native0 += m.Native
			}
			if native0 < inNative {
				t.Fatalf("the manifests count %d native events, want at least the %d of the range", native0, inNative)
			}

			// verify agrees: every event once, native's own duplicate reported.
			rep, err := archive.VerifyPartition(context.Background(), f.store, caller, "us-east-1", archive.VerifyOptions{Windows: archive.Windows(outageStart, outageEnd, engine.DefaultWindow)})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Complete() || rep.Duplicated != 0 || rep.NativeDuplicates != 1 || rep.Events != int64(len(want)) {
				t.Fatalf("verify: complete %v, events %d (want %d), duplicated %d, native duplicates %d (want 1)", rep.Complete(), rep.Events, len(want), rep.Duplicated, rep.NativeDuplicates)
			}
			// A re-run reads nothing and writes nothing.
			again := mustRun(t, f, caller, "us-east-1", outageStart, outageEnd)
			if again.Pages != 0 || again.Files != 0 {
				t.Fatalf("re-run: %+v", again)
			}
		})
	}
}

func TestIgnoreNativeWritesEverything(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	evs := outageEvents(t, caller, "eu-west-1")
	testkit.Load(t, f.emu, evs)
	native := testkit.NativeFiles(t, "", nativeStretches(evs), testkit.DeliveredAfter(time.Minute), 2)
	testkit.PutNative(t, f.store, native)
	res, err := f.run(t, caller, "eu-west-1", outageStart, outageEnd, func(c *engine.Config, _ *engine.Job) { c.IgnoreNative = true })
	if err != nil {
		t.Fatal(err)
	}
	if want := len(inRange(evs, outageStart, outageEnd)); res.Events != int64(want) || res.Native != 0 || res.TrailReads != 0 {
		t.Fatalf("with IgnoreNative: wrote %d (want %d), native %d, trail files read %d", res.Events, want, res.Native, res.TrailReads)
	}
}

func TestRedeliveryAfterTheBackfillIsReconciled(t *testing.T) {
	t.Parallel()
	for _, kind := range []testkit.StoreKind{testkit.LocalFolder, testkit.S3Bucket} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixtureIn(t, emulator.Config{}, rapid, kind)
			evs := outageEvents(t, member, "us-east-1")
			testkit.Load(t, f.emu, evs)
			mustRun(t, f, member, "us-east-1", outageStart, outageEnd)
			want := inRange(evs, outageStart, outageEnd)
			testkit.CheckArchive(t, f.store, testkit.Expect{Events: want})

			// Two days later CloudTrail redelivers part of the outage.
			late := testkit.Between(evs, outageStart.Add(50*time.Minute), outageStart.Add(100*time.Minute))
			redelivered := testkit.NativeFiles(t, "", late, testkit.DeliveredAfter(48*time.Hour), 3)
			testkit.PutNative(t, f.store, redelivered)
			o := archive.VerifyOptions{Windows: archive.Windows(outageStart, outageEnd, engine.DefaultWindow), NativeLookahead: 72 * time.Hour}
			rep, err := archive.VerifyPartition(ctx, f.store, member, "us-east-1", o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Complete() || rep.Duplicated != int64(len(late)) {
				t.Fatalf("verify after redelivery: complete %v, duplicated %d; want incomplete with %d", rep.Complete(), rep.Duplicated, len(late))
			}

			ro := archive.ReconcileOptions{Account: member, Region: "us-east-1", Windows: o.Windows, NativeLookahead: o.NativeLookahead}
			dry := ro
			dry.DryRun = true
			plan, err := archive.Reconcile(ctx, f.store, dry)
			if err != nil {
				t.Fatal(err)
			}
			before := allKeys(t, f.store)
			if plan.Duplicated != len(late) || len(plan.Removed) == 0 || fmt.Sprint(allKeys(t, f.store)) != fmt.Sprint(before) {
				t.Fatalf("dry run: %+v (and it must change nothing)", plan)
			}
			done, err := archive.Reconcile(ctx, f.store, ro)
			if err != nil {
				t.Fatal(err)
			}
			if done.Duplicated != len(late) || len(done.Refused) != 0 {
				t.Fatalf("reconcile: %+v", done)
			}
			rep, err = archive.VerifyPartition(ctx, f.store, member, "us-east-1", o)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Complete() || rep.Events != int64(len(want)) {
				t.Fatalf("verify after reconcile: %+v", rep)
			}
			testkit.CheckArchive(t, f.store, testkit.Expect{Events: want, Native: redelivered, Pieces: true})
			// Again: nothing left to do.
			if again, err := archive.Reconcile(ctx, f.store, ro); err != nil || again.Duplicated != 0 || len(again.Removed) != 0 {
				t.Fatalf("second reconcile: %+v, %v", again, err)
			}
		})
	}
}

func TestReconcileNeverTouchesNativeFilesEvenWithAForgedManifest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixtureIn(t, emulator.Config{}, rapid, testkit.S3Bucket)
	evs := outageEvents(t, caller, "sa-east-1")
	testkit.Load(t, f.emu, evs)
	mustRun(t, f, caller, "sa-east-1", outageStart, outageEnd)
	late := testkit.Between(evs, outageStart, outageStart.Add(30*time.Minute))
	redelivered := testkit.NativeFiles(t, "", late, testkit.DeliveredAfter(2*time.Hour), 4)
	testkit.PutNative(t, f.store, redelivered)

	// Forge the first window's manifest: list a native file (with its true
	// SHA-256, as someone who can read the bucket could) as trailfill's.
	key := archive.ManifestKey(caller, "sa-east-1", outageStart)
	m, err := archive.ReadManifest(ctx, f.store, key)
	if err != nil {
		t.Fatal(err)
	}
	for k, b := range redelivered {
		m.Objects = append(m.Objects, archive.ManifestObject{Key: k, Events: 1, Bytes: len(b), SHA256: archive.SHA256Hex(b)})
	}
	// And a native file given a trailfill name, listed with its SHA-256.
	var disguised string
	for k, b := range redelivered {
		f0, _ := archive.ParseTrailFileName(k)
		// The slice of its events: delivered 2 hours after the slice's end.
		disguised = archive.PieceKey("", caller, "sa-east-1", f0.Stamp.Add(-2*time.Hour-archive.SliceLength).Truncate(archive.SliceLength), 9)
		testkit.PutNative(t, f.store, map[string][]byte{disguised: b})
		redelivered[disguised] = b
		m.Objects = append(m.Objects, archive.ManifestObject{Key: disguised, Events: 1, Bytes: len(b), SHA256: archive.SHA256Hex(b)})
		break
	}
	if err := archive.WriteManifest(ctx, f.store, m); err != nil {
		t.Fatal(err)
	}
	rep, err := archive.Reconcile(ctx, f.store, archive.ReconcileOptions{Account: caller, Region: "sa-east-1",
		Windows: archive.Windows(outageStart, outageEnd, engine.DefaultWindow), NativeLookahead: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rep.Removed {
		if _, ok := redelivered[k]; ok {
			t.Fatalf("reconcile removed the native file %s", k)
		}
	}
	refused := map[string]bool{}
	for _, p := range rep.Refused {
		refused[p.Key] = true
	}
	for k := range redelivered {
		if !refused[k] {
			t.Errorf("the forged entry %s was not refused: %+v", k, rep.Refused)
		}
		got, err := f.store.Get(ctx, k)
		if err != nil || string(got) != string(redelivered[k]) {
			t.Fatalf("native file %s changed or gone: %v", k, err)
		}
	}
}

func TestConcurrentRunsLeaveEveryEventOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind   testkit.StoreKind
		ranges [][2]time.Time
	}{
		{testkit.DeployedS3, [][2]time.Time{
			{outageStart.Add(2*time.Minute + 7*time.Second), outageStart.Add(101*time.Minute + 3*time.Second)},
			{outageStart, outageEnd},
		}},
		{testkit.LocalFolder, [][2]time.Time{
			{outageStart.Add(2*time.Minute + 7*time.Second), outageStart.Add(101*time.Minute + 3*time.Second)},
			{outageStart.Add(20*time.Minute + 30*time.Second), outageEnd.Add(-7 * time.Minute)},
			{outageStart, outageEnd},
		}},
		{testkit.DeployedS3, [][2]time.Time{
			{outageStart, outageEnd}, {outageStart, outageEnd}, {outageStart.Add(61*time.Minute + 1*time.Second), outageStart.Add(89 * time.Minute)},
		}},
	} {
		t.Run(fmt.Sprintf("%d runs, %s", len(tc.ranges), tc.kind), func(t *testing.T) {
			t.Parallel()
			f := newFixtureIn(t, emulator.Config{Latency: 2 * time.Millisecond}, rapid, tc.kind)
			evs := outageEvents(t, caller, "us-east-1")
			testkit.Load(t, f.emu, evs)
			native := testkit.NativeFiles(t, "", nativeStretches(evs), testkit.DeliveredAfter(2*time.Minute), 5)
			testkit.PutNative(t, f.store, native)
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, len(tc.ranges))
			for i, rg := range tc.ranges {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := f.run(t, caller, "us-east-1", rg[0], rg[1], func(c *engine.Config, _ *engine.Job) { c.Writers = 8 })
					if err == nil && !res.Complete {
						err = fmt.Errorf("run %d incomplete", i)
					}
					errs[i] = err
				}()
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// Every event of the union of the ranges once, natives untouched.
			testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, outageStart, outageEnd), Native: native, Pieces: true})
			if tc.kind == testkit.DeployedS3 {
				lost := 0
				for _, r := range f.emu.S3RequestLog() {
					if r.Op == emulator.S3PutObject && r.Status == http.StatusPreconditionFailed {
						lost++
					}
				}
				t.Logf("%d create-only writes found their piece already written by another run", lost)
			}
			// One more run makes every manifest complete and reads nothing new.
			final := mustRun(t, f, caller, "us-east-1", outageStart, outageEnd)
			if final.Files != 0 {
				t.Fatalf("after the concurrent runs another run wrote %d files", final.Files)
			}
			testkit.CheckManifests(t, f.store, [][2]string{{caller, "us-east-1"}}, outageStart, outageEnd, engine.DefaultWindow)
		})
	}
}

func TestLateEventsNearNowAreAddedByALaterRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, emulator.Config{}, rapid)
	// The range ends 5 minutes before "now": its last window is too young.
	now := day.Add(10*time.Hour + 35*time.Minute)
	start, end := now.Add(-2*time.Hour), now.Add(-5*time.Minute)
	evs := testkit.Retimed(t, member, "eu-west-1", testkit.Spaced(start, 9*time.Second, 770))
	early := testkit.Between(evs, start, end.Add(-10*time.Minute))
	late := testkit.Between(evs, end.Add(-10*time.Minute), end)
	testkit.Load(t, f.emu, early)
	at := func(t time.Time) func(*engine.Config, *engine.Job) {
		return func(c *engine.Config, _ *engine.Job) { c.Now = func() time.Time { return t } }
	}
	res, err := f.run(t, member, "eu-west-1", start, end, at(now))
	if err != nil || !res.Complete || res.Provisional != 1 {
		t.Fatalf("first run: %+v, %v: want complete with 1 provisional window", res, err)
	}
	o := archive.VerifyOptions{Windows: archive.Windows(start, end, engine.DefaultWindow)}
	rep, err := archive.VerifyPartition(ctx, f.store, member, "eu-west-1", o)
	if err != nil || rep.Provisional != 1 || rep.Complete() {
		t.Fatalf("verify after the first run: %+v, %v", rep, err)
	}
	// LookupEvents receives the last events a few minutes late.
	testkit.Load(t, f.emu, late)
	res, err = f.run(t, member, "eu-west-1", start, end, at(now.Add(30*time.Minute)))
	if err != nil || !res.Complete || res.Provisional != 0 || res.Events != int64(len(late)) || res.Windows != 1 {
		t.Fatalf("second run: %+v, %v: want the %d late events written in the one window it re-read, settled", res, err, len(late))
	}
	testkit.CheckArchive(t, f.store, testkit.Expect{Events: testkit.Between(evs, start, end), Pieces: true})
	testkit.CheckManifests(t, f.store, [][2]string{{member, "eu-west-1"}}, start, end, engine.DefaultWindow)
	if rep, err := archive.VerifyPartition(ctx, f.store, member, "eu-west-1", o); err != nil || !rep.Complete() {
		t.Fatalf("verify after the second run: %+v, %v", rep, err)
	}
}

// planningDays is how many archived days TestPlanningArchivedDaysCostsAFewRequests
// plans again: make e2e plans LookupEvents' whole 90 days (planning_e2e_test.go).
var planningDays = 12

func TestPlanningArchivedDaysCostsAFewRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, emulator.Config{}, rapid)
	end := day
	start := end.Add(-time.Duration(planningDays) * 24 * time.Hour)
	windows := planningDays * 48
	evs := testkit.Retimed(t, caller, "ap-south-1", testkit.Spaced(start.Add(time.Hour), 24*time.Hour, planningDays))
	testkit.Load(t, f.emu, evs)
	mustRun(t, f, caller, "ap-south-1", start, end)
	count := func() (lists, gets, total int) {
		for _, r := range f.emu.S3RequestLog() {
			switch r.Op {
			case emulator.S3ListObjectsV2:
				lists++
			case emulator.S3GetObject:
				gets++
			}
			total++
		}
		return lists, gets, total
	}
	f.emu.ResetS3Counters()
	res := mustRun(t, f, caller, "ap-south-1", start, end)
	lists, gets, total := count()
	// A manifest per window and the coverage index: pages of 1,000 keys, then
	// the index (90 days: 4,320 manifests, 5 LISTs and a GET).
	pages := (windows + 1 + 999) / 1000
	if res.WindowsSkipped != windows || lists != pages || gets != 1 || total != pages+1 {
		t.Fatalf("planning %d archived days: %d windows skipped, %d LISTs, %d GETs, %d requests in all; want %d, %d, 1, %d", planningDays, res.WindowsSkipped, lists, gets, total, windows, pages, pages+1)
	}
	t.Logf("planning %d archived days (%d windows): %d LISTs, %d GET", planningDays, windows, lists, gets)
	// Without the index every manifest is read once (and the index rebuilt).
	if err := f.store.Delete(context.Background(), archive.ManifestPrefix(caller, "ap-south-1")+archive.CoverageIndexName); err == nil {
		f.emu.ResetS3Counters()
		mustRun(t, f, caller, "ap-south-1", start, end)
		lists, gets, total = count()
		t.Logf("without the coverage index: %d LISTs, %d GETs, %d requests", lists, gets, total)
		if gets != windows {
			t.Fatalf("without the index: %d GETs, want one per manifest (%d)", gets, windows)
		}
	} else {
		t.Fatal(err)
	}
}

// interleaving runs another run once, the first time this run creates a
// trail file: between its plan and its manifest, as a concurrent run's
// manifest can land.
type interleaving struct {
	archive.Store
	once  sync.Once
	other func()
}

func (s *interleaving) PutIfAbsent(ctx context.Context, key string, body []byte, meta archive.Metadata) (bool, error) {
	if strings.HasPrefix(key, "AWSLogs/") {
		s.once.Do(s.other)
	}
	return s.Store.PutIfAbsent(ctx, key, body, meta)
}

// Two runs over different parts of one window, the second finishing it
// while the first is still reading: the manifest covers both parts and
// lists the pieces of both (it is amended, not overwritten), and a third
// run has nothing to read.
func TestAManifestAmendedByAnotherRunKeepsBothRuns(t *testing.T) {
	t.Parallel()
	for _, kind := range []testkit.StoreKind{testkit.DeployedS3, testkit.LocalFolder} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f := newFixtureIn(t, emulator.Config{}, rapid, kind)
			w := day.Add(90 * time.Minute) // the window [01:30, 02:00)
			evs := testkit.Retimed(t, caller, "us-east-1", testkit.Spaced(w.Add(-5*time.Minute), 7*time.Second, 350))
			testkit.Load(t, f.emu, evs)
			mid1, mid2 := w.Add(12*time.Minute+31*time.Second), w.Add(19*time.Minute)
			var otherErr error
			store := &interleaving{Store: f.store, other: func() {
				_, otherErr = f.run(t, caller, "us-east-1", mid1, w.Add(30*time.Minute), nil)
			}}
			first, err := f.run(t, caller, "us-east-1", w, mid2, func(c *engine.Config, _ *engine.Job) { c.Store = store })
			if err != nil || otherErr != nil || !first.Complete {
				t.Fatalf("runs: %+v, %v, %v", first, err, otherErr)
			}
			b, err := f.store.Get(context.Background(), archive.ManifestKey(caller, "us-east-1", w))
			if err != nil {
				t.Fatal(err)
			}
			m, err := archive.DecodeCloudTrailManifest(archive.ManifestKey(caller, "us-east-1", w), b)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Covers(w, w.Add(30*time.Minute)) {
				t.Fatalf("the manifest covers %v: the other run's part was lost", m.Covered)
			}
			testkit.CheckArchive(t, f.store, testkit.Expect{Events: inRange(evs, w, w.Add(30*time.Minute)), Pieces: true})
			if int(m.Recovered) != len(inRange(evs, w, w.Add(30*time.Minute))) {
				t.Errorf("the manifest lists pieces of %d events, the window has %d", m.Recovered, len(inRange(evs, w, w.Add(30*time.Minute))))
			}
			if again := mustRun(t, f, caller, "us-east-1", w, w.Add(30*time.Minute)); again.Files != 0 || again.Pages != 0 {
				t.Fatalf("a third run wrote %d files from %d pages, want none", again.Files, again.Pages)
			}
		})
	}
}
