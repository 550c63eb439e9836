package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/fakeevents"
	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/testkit"
)

// envInt reads a positive integer knob, e.g. BENCH_EVENTS=8000.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var (
	accounts = []string{"111111111111", "222222222222", "333333333333", "444444444444"}
	start    = time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)
)

type setup struct {
	emu     *emulator.Server
	cfg     aws.Config
	clients *awsconf.Clients
}

// newSetup starts an emulator with the AWS quota and the given latency (10%
// jitter), with n events spread at random over [start, start+span) in
// us-east-1 of each account.
func newSetup(b *testing.B, latency time.Duration, n int, span time.Duration) *setup {
	b.Helper()
	emu := testkit.StartEmulator(b, emulator.Config{Latency: latency, Jitter: latency / 10, Rate: pace.MaxRate, Seed: 1})
	for i, a := range accounts {
		emu.AddAccount(a, contract.DefaultRoleName)
		g := fakeevents.New(uint64(i+1), a, "us-east-1")
		if err := emu.AddEvents(a, "us-east-1", g.Spread(n, start, start.Add(span))...); err != nil {
			b.Fatal(err)
		}
	}
	cfg := testkit.AWSConfig(b, emu, accounts[0])
	return &setup{emu: emu, cfg: cfg, clients: awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, pace.MaxRate)}
}

// BenchmarkSeedDesign runs the seed design's reading on the same emulator: per
// window, every partition pages each 5-minute slice serially with a fixed 0.6 s
// sleep per page, and all partitions wait for the slowest before the next window.
func BenchmarkSeedDesign(b *testing.B) {
	n := envInt("BENCH_SEED_EVENTS", 4000)
	lat := time.Second
	for range b.N {
		s := newSetup(b, lat, n, 2*time.Hour)
		var events atomic.Int64
		began := time.Now()
		for ws := start; ws.Before(start.Add(2 * time.Hour)); ws = ws.Add(30 * time.Minute) {
			var wg sync.WaitGroup
			for range accounts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := cloudtrail.NewFromConfig(s.cfg, func(o *cloudtrail.Options) { o.Region = "us-east-1" })
					for ss := ws; ss.Before(ws.Add(30 * time.Minute)); ss = ss.Add(5 * time.Minute) {
						p := cloudtrail.NewLookupEventsPaginator(client, &cloudtrail.LookupEventsInput{StartTime: aws.Time(ss), EndTime: aws.Time(ss.Add(5 * time.Minute)), MaxResults: aws.Int32(50)})
						for p.HasMorePages() {
							page, err := p.NextPage(context.Background())
							if err != nil {
								b.Error(err)
								return
							}
							events.Add(int64(len(page.Events)))
							time.Sleep(600 * time.Millisecond) // the seed's fixed pacing
						}
					}
				}()
			}
			wg.Wait()
		}
		wall := time.Since(began)
		ideal := time.Duration(float64((n+engine.PageSize-1)/engine.PageSize) / pace.MaxRate * float64(time.Second))
		// The seed's inclusive bounds read boundary events twice; count unique events for the rate.
		b.ReportMetric(ideal.Seconds()/wall.Seconds(), "efficiency")
		b.ReportMetric(float64(n)/wall.Seconds(), "events/s/partition")
		fmt.Printf("figures: seed-design latency=%s partitions=4 events/partition=%d ideal=%s wall=%s efficiency=%.3f events-read=%d\n",
			lat, n, ideal.Round(100*time.Millisecond), wall.Round(100*time.Millisecond), ideal.Seconds()/wall.Seconds(), events.Load())
	}
}

// BenchmarkPeakMemory archives one 100,000-event window and samples the Go heap:
// the figure is the peak heap above the baseline with the emulator loaded.
func BenchmarkPeakMemory(b *testing.B) {
	const n = 100000
	for range b.N {
		emu := testkit.StartEmulator(b, emulator.Config{Rate: 100000, Burst: 100})
		emu.AddAccount(accounts[0])
		g := fakeevents.New(5, accounts[0], "us-east-1")
		recs := g.Spread(n, start, start.Add(30*time.Minute))
		size := 0
		for _, r := range recs {
			size += len(r)
		}
		if err := emu.AddEvents(accounts[0], "us-east-1", recs...); err != nil {
			b.Fatal(err)
		}
		recs = nil
		cfg := testkit.AWSConfig(b, emu, accounts[0])
		clients := awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, 100000)
		client, lim, err := clients.LookupClient(context.Background(), accounts[0], "us-east-1")
		if err != nil {
			b.Fatal(err)
		}
		store, _ := archive.NewLocalStore(b.TempDir())
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var peak atomic.Uint64
		done := make(chan struct{})
		go func() {
			var m runtime.MemStats
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
		res, err := engine.Run(context.Background(), engine.Config{Store: store}, engine.Job{Account: accounts[0], Region: "us-east-1", Start: start, End: start.Add(30 * time.Minute), Client: client, Limiter: lim})
		close(done)
		if err != nil || res.Events != n {
			b.Fatalf("%d events, %v", res.Events, err)
		}
		mb := float64(peak.Load()-min(base, peak.Load())) / (1 << 20)
		b.ReportMetric(mb, "peak-heap-MB")
		fmt.Printf("figures: memory window-events=%d record-bytes=%.1fMB peak-heap-above-baseline=%.1fMB pages=%d\n", n, float64(size)/(1<<20), mb, res.Pages)
	}
}
