package engine_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
)

// BenchmarkNativeAwareness measures what reading CloudTrail's own files costs
// on a 1-day range: a trail bucket (S3 as the deployed role sees it) that
// holds native files every five minutes for the first and the last 8 hours,
// and an outage in between; 8,640 events over the day; LookupEvents at
// 40 requests/s with 50 ms latency. It reports the S3 requests, the trail
// files read and the wall time of a native-aware run against one with
// IgnoreNative (which writes the natively delivered events again).
//
//	go test -run '^$' -bench NativeAwareness -benchtime 1x ./internal/engine
func BenchmarkNativeAwareness(b *testing.B) {
	start := day
	end := start.Add(24 * time.Hour)
	for _, ignore := range []bool{false, true} {
		name := "native-aware"
		if ignore {
			name = "ignore-native"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				f := newFixtureIn(b, emulator.Config{Latency: 50 * time.Millisecond}, 40, testkit.DeployedS3)
				evs := testkit.Retimed(b, caller, "us-east-1", testkit.Spaced(start, 10*time.Second, 8640))
				testkit.Load(b, f.emu, evs)
				native := append(testkit.Between(evs, start, start.Add(8*time.Hour)), testkit.Between(evs, end.Add(-8*time.Hour), end)...)
				testkit.PutNative(b, f.store, testkit.NativeFiles(b, "", native, testkit.DeliveredAfter(3*time.Minute), 1))
				f.emu.ResetS3Counters()
				b.StartTimer()
				began := time.Now()
				res, err := f.run(b, caller, "us-east-1", start, end, func(c *engine.Config, _ *engine.Job) { c.IgnoreNative = ignore })
				wall := time.Since(began)
				b.StopTimer()
				if err != nil || !res.Complete {
					b.Fatalf("run: %+v, %v", res, err)
				}
				b.ReportMetric(float64(len(f.emu.S3RequestLog())), "s3-requests")
				b.ReportMetric(float64(res.TrailReads), "trail-files-read")
				b.ReportMetric(float64(res.Events), "events-written")
				b.ReportMetric(float64(res.Pages), "lookup-pages")
				b.ReportMetric(wall.Seconds(), "wall-s")
			}
		})
	}
}

// BenchmarkScanHundredThousandNativeEvents measures the memory the
// TrailScanner keeps for 100,000 events in native files (IDs only): 2,000
// files of 50 records over a day, every slice of the day asked for.
//
//	go test -run '^$' -bench ScanHundredThousand -benchtime 1x ./internal/engine
func BenchmarkScanHundredThousandNativeEvents(b *testing.B) {
	ctx := context.Background()
	store, err := archive.NewLocalStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	start := day
	evs := testkit.Retimed(b, caller, "us-east-1", testkit.Spaced(start, 864*time.Millisecond, 100000))
	// 50 events per file: files delivered every 43.2 s on average.
	deliver := func(e testkit.Event) time.Time {
		return start.Add(time.Duration(e.Time.Sub(start)/(43200*time.Millisecond)) * 43200 * time.Millisecond).Add(5 * time.Minute)
	}
	testkit.PutNative(b, store, testkit.NativeFiles(b, "", evs, deliver, 2))
	var starts []time.Time
	for ss := start; ss.Before(start.Add(24 * time.Hour)); ss = ss.Add(archive.SliceLength) {
		starts = append(starts, ss)
	}
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		scan := archive.NewTrailScanner(store, archive.ScanOptions{Account: caller, Region: "us-east-1", Native: true, Lookahead: 24 * time.Hour}, starts)
		held := 0
		for _, ss := range starts {
			c, err := scan.Slice(ctx, ss)
			if err != nil {
				b.Fatal(err)
			}
			n, _, _ := c.Counts()
			held += n
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if held != len(evs) {
			b.Fatalf("the scan holds %d native events, want %d", held, len(evs))
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
		b.ReportMetric(float64(scan.Reads()), "files")
		runtime.KeepAlive(scan)
	}
}
