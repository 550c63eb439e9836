package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
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

// envInts reads a comma-separated list of positive integers, e.g.
// BENCH_SIZES=2000,3000,10000.
func envInts(name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// reader is one client under test: it reads [start, end) of one partition
// through a paced LookupEvents client and reports the events it got.
type reader struct {
	name string
	read func(ctx context.Context, b *testing.B, client *cloudtrail.Client, lim *pace.Limiter, account string, start, end time.Time) (int64, error)
}

// trailfillReader is the engine, archiving into a local folder.
var trailfillReader = reader{name: "trailfill", read: func(ctx context.Context, b *testing.B, client *cloudtrail.Client, lim *pace.Limiter, account string, start, end time.Time) (int64, error) {
	store, err := archive.NewLocalStore(b.TempDir())
	if err != nil {
		return 0, err
	}
	res, err := engine.Run(ctx, engine.Config{Store: store}, engine.Job{Account: account, Region: "us-east-1", Start: start, End: end, Client: client, Limiter: lim})
	return res.Events, err
}}

// fixedSplit is what a careful naive client does: n slices of equal time
// read concurrently, each paged serially with the SDK's paginator, every
// attempt paced by the same limiter as trailfill's (pace.Middleware, via
// awsconf.Clients), inclusive bounds handled, events kept in memory.
func fixedSplit(n int) reader {
	return reader{name: fmt.Sprintf("fixed-%d", n), read: func(ctx context.Context, _ *testing.B, client *cloudtrail.Client, _ *pace.Limiter, _ string, start, end time.Time) (int64, error) {
		var mu sync.Mutex
		seen := map[string]bool{}
		errs := make(chan error, n)
		span := end.Sub(start) / time.Duration(n)
		for i := range n {
			from, to := start.Add(time.Duration(i)*span), start.Add(time.Duration(i+1)*span)
			if i == n-1 {
				to = end
			}
			go func() {
				p := cloudtrail.NewLookupEventsPaginator(client, &cloudtrail.LookupEventsInput{StartTime: aws.Time(from), EndTime: aws.Time(to.Add(-time.Second)), MaxResults: aws.Int32(engine.PageSize)})
				for p.HasMorePages() {
					page, err := p.NextPage(ctx)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, e := range page.Events {
						seen[aws.ToString(e.EventId)] = true
					}
					mu.Unlock()
				}
				errs <- nil
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				return 0, err
			}
		}
		return int64(len(seen)), nil
	}}
}

// partResult is one partition's figures for one reader.
type partResult struct {
	efficiency float64
	requests   int // every request the emulator received, throttled ones included
	pages      int // successful answers
	throttled  int
}

// readAll runs r on every partition of s at once, with fresh clients (their
// own limiters, nothing measured yet), and returns each partition's figures.
func readAll(b *testing.B, s *setup, r reader, n int, span time.Duration) []partResult {
	b.Helper()
	clients := awsconf.NewClients(s.cfg, sts.NewFromConfig(s.cfg), contract.DefaultRoleName, pace.MaxRate)
	before := make([]emulator.Stats, len(accounts))
	for i, a := range accounts {
		before[i] = s.emu.Stats(a, "us-east-1")
	}
	walls := make([]time.Duration, len(accounts))
	var wg sync.WaitGroup
	for i, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			client, lim, err := clients.LookupClient(ctx, a, "us-east-1")
			if err != nil {
				b.Error(err)
				return
			}
			began := time.Now()
			got, err := r.read(ctx, b, client, lim, a, start, start.Add(span))
			walls[i] = time.Since(began)
			if err != nil || got != int64(n) {
				b.Errorf("%s on %s: %d events of %d, %v", r.name, a, got, n, err)
			}
		}()
	}
	wg.Wait()
	ideal := idealTime(n)
	out := make([]partResult, len(accounts))
	for i, a := range accounts {
		st := s.emu.Stats(a, "us-east-1")
		out[i] = partResult{
			efficiency: ideal.Seconds() / walls[i].Seconds(),
			requests:   st.Requests - before[i].Requests,
			pages:      st.Served - before[i].Served,
			throttled:  st.Throttled - before[i].Throttled,
		}
	}
	// Let the emulated quota refill (burst 2 at 2 requests/s) before the next
	// reader starts, as it would between two runs.
	time.Sleep(time.Second)
	return out
}

// idealTime is every event delivered in full pages back to back at the quota.
func idealTime(n int) time.Duration {
	pages := max(1, (n+engine.PageSize-1)/engine.PageSize)
	return time.Duration(float64(pages) / pace.MaxRate * float64(time.Second))
}

// BenchmarkPacing measures trailfill and a fixed-split client side by side, on
// the same emulator, for each latency and size: 4 partitions in parallel
// (each its own account, 2 requests/s), events spread at random over 2 hours,
// latency with 10% jitter. Efficiency = ideal time at the quota / wall time
// per partition. It prints one table (min and median over partitions and
// runs) and the requests a sparse and an empty 3-day range cost.
// Knobs: BENCH_SIZES (events per partition, default 2000,3000), BENCH_RUNS
// (default 1; docs/benchmarks.md records 3).
func BenchmarkPacing(b *testing.B) {
	sizes := envInts("BENCH_SIZES", []int{2000, 3000})
	runs := envInt("BENCH_RUNS", 1)
	latencies := []time.Duration{200 * time.Millisecond, time.Second, 4 * time.Second}
	readers := []reader{trailfillReader, fixedSplit(4), fixedSplit(8)}
	const span = 2 * time.Hour
	type key struct {
		latency time.Duration
		events  int
		reader  string
	}
	for range b.N {
		results := map[key][]partResult{}
		sparse := map[time.Duration][2][]int{}
		for run := range runs {
			for _, lat := range latencies {
				for _, n := range sizes {
					s := newSetup(b, lat, n, span)
					for _, r := range readers {
						res := readAll(b, s, r, n, span)
						k := key{lat, n, r.name}
						results[k] = append(results[k], res...)
						fmt.Printf("figures: run %d latency=%s events/partition=%d %s: %s\n", run+1, lat, n, r.name, summary(res))
					}
					s.emu.Close()
				}
				sp, empty := sparseRequests(b, lat)
				cur := sparse[lat]
				sparse[lat] = [2][]int{append(cur[0], sp), append(cur[1], empty)}
			}
		}
		fmt.Printf("\nfigures: pacing table, %d partitions in parallel, %d run(s); efficiency min / median over partitions and runs; requests per partition median (max)\n", len(accounts), runs)
		fmt.Println("| latency | events/partition | pages | trailfill efficiency | requests | fixed-4 efficiency | requests | fixed-8 efficiency | requests | trailfill / best fixed | throttled |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
		for _, lat := range latencies {
			for _, n := range sizes {
				row := fmt.Sprintf("| %s | %d | %d |", lat, n, (n+engine.PageSize-1)/engine.PageSize)
				var tfMed, bestFixed float64
				throttled := 0
				for _, r := range readers {
					res := results[key{lat, n, r.name}]
					effs, reqs := figures(res)
					row += fmt.Sprintf(" %.3f / %.3f | %s (%s) |", effs[0], median(effs), trimFloat(median(reqs)), trimFloat(reqs[len(reqs)-1]))
					for _, p := range res {
						throttled += p.throttled
					}
					if r.name == trailfillReader.name {
						tfMed = median(effs)
					} else {
						bestFixed = max(bestFixed, median(effs))
					}
				}
				row += fmt.Sprintf(" %.2f | %d |", tfMed/bestFixed, throttled)
				fmt.Println(row)
			}
		}
		fmt.Println()
		for _, lat := range latencies {
			sp := sparse[lat]
			fmt.Printf("figures: sparse latency=%s trailfill requests for a 3-day range: 30 events %v, no events %v (per run; a fixed split costs at least one per slice)\n", lat, sp[0], sp[1])
		}
	}
}

// summary is one reader's line for one run.
func summary(res []partResult) string {
	var b strings.Builder
	for i, p := range res {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.3f (%d req, %d pages, %d throttled)", p.efficiency, p.requests, p.pages, p.throttled)
	}
	return b.String()
}

// figures are the sorted efficiencies and requests of partition results.
func figures(res []partResult) (effs, reqs []float64) {
	for _, p := range res {
		effs = append(effs, p.efficiency)
		reqs = append(reqs, float64(p.requests))
	}
	sort.Float64s(effs)
	sort.Float64s(reqs)
	return effs, reqs
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// sparseRequests counts trailfill's LookupEvents requests for a 3-day range
// holding 30 events, and for an empty one, at the given latency.
func sparseRequests(b *testing.B, latency time.Duration) (sparse, empty int) {
	b.Helper()
	emu := testkit.StartEmulator(b, emulator.Config{Latency: latency, Jitter: latency / 10, Rate: pace.MaxRate, Seed: 2})
	defer emu.Close()
	emu.AddAccount(accounts[0])
	g := fakeevents.New(9, accounts[0], "eu-west-1")
	if err := emu.AddEvents(accounts[0], "eu-west-1", g.Spread(30, start, start.Add(72*time.Hour))...); err != nil {
		b.Fatal(err)
	}
	cfg := testkit.AWSConfig(b, emu, accounts[0])
	clients := awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, pace.MaxRate)
	counts := map[string]int{}
	for _, region := range []string{"eu-west-1", "sa-east-1"} {
		client, lim, err := clients.LookupClient(context.Background(), accounts[0], region)
		if err != nil {
			b.Fatal(err)
		}
		store, _ := archive.NewLocalStore(b.TempDir())
		res, err := engine.Run(context.Background(), engine.Config{Store: store}, engine.Job{Account: accounts[0], Region: region, Start: start, End: start.Add(72 * time.Hour), Client: client, Limiter: lim})
		if err != nil || !res.Complete {
			b.Fatalf("sparse range in %s: %+v, %v", region, res, err)
		}
		counts[region] = emu.Stats(accounts[0], region).Requests
	}
	return counts["eu-west-1"], counts["sa-east-1"]
}
