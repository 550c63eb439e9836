package trail

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
)

// DefaultGapThreshold is the longest stretch without a native delivery that
// is not reported: CloudTrail delivers a region's files "within an average
// of about 5 minutes of an API call" (facts.md), so half an hour without a
// file in a region that otherwise delivers every few minutes is an outage,
// not a pause. Quiet regions deliver only when they have events: their
// stretches are reported too (filling them costs a request or two).
const DefaultGapThreshold = 30 * time.Minute

// GapOptions say what Gaps looks at.
type GapOptions struct {
	// Start and End bound the delivery times examined, [Start, End].
	Start, End time.Time
	// Threshold: stretches longer than this are gaps (DefaultGapThreshold
	// if zero).
	Threshold time.Duration
	// Window: fill ranges are rounded out to whole windows, the unit of
	// manifests (engine.DefaultWindow if zero).
	Window time.Duration
	// OrgID selects the organization-trail layout.
	OrgID string
}

// PartitionGaps is what one partition's native file listing shows.
type PartitionGaps struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	// NativeFiles counts the native trail files delivered in the range
	// (trailfill's own pieces are not native delivery and not counted).
	NativeFiles   int       `json:"native_files"`
	FirstDelivery time.Time `json:"first_delivery,omitzero"`
	LastDelivery  time.Time `json:"last_delivery,omitzero"`
	// MedianIntervalSeconds is the median time between deliveries (0 with
	// fewer than two).
	MedianIntervalSeconds float64 `json:"median_interval_seconds"`
	Gaps                  []Gap   `json:"gaps"`
}

// Gap is a stretch without native delivery.
type Gap struct {
	// From is the last native delivery before the stretch (or the range
	// start), To the first after it (or the range end).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Seconds is To - From.
	Seconds float64 `json:"seconds"`
	// FillStart and FillEnd are the backfill range that recovers the
	// stretch's events: [From, To) rounded out to whole windows, within the
	// range. Events a native file already holds at its edges are not
	// written again.
	FillStart time.Time `json:"fill_start"`
	FillEnd   time.Time `json:"fill_end"`
}

// Fill is one backfill that fills gaps: the same range over accounts x
// regions.
type Fill struct {
	Accounts []string  `json:"accounts"`
	Regions  []string  `json:"regions"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
}

// NativeDeliveries lists the delivery times (the time in the file name) of
// the native trail files of one partition delivered in [start, end], sorted:
// one LIST per month folder (native files are foldered by delivery day).
// trailfill's own pieces (archive.ParseTrailFileName: Piece >= 0) are not
// native delivery and are left out. Names only: nothing is read.
func NativeDeliveries(ctx context.Context, s archive.Store, orgID, account, region string, start, end time.Time) ([]time.Time, error) {
	var out []time.Time
	for m := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(end); m = m.AddDate(0, 1, 0) {
		day := archive.TrailDayPrefix(orgID, account, region, m)
		prefix := day[:len(day)-len("01/")] // .../YYYY/MM/
		keys, err := s.List(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("list the native trail files of %s/%s under %s: %w", account, region, prefix, err)
		}
		for _, k := range keys {
			f, ok := archive.ParseTrailFileName(k)
			if !ok || f.Piece >= 0 || f.Account != account || f.Region != region {
				continue
			}
			if !f.Stamp.Before(start) && !f.Stamp.After(end) {
				out = append(out, f.Stamp)
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

// FindGaps returns the stretches of [start, end] longer than threshold
// without a delivery, given the sorted delivery times; fill ranges are
// rounded out to window and kept within [start, end).
func FindGaps(deliveries []time.Time, start, end time.Time, threshold, window time.Duration) []Gap {
	gaps := []Gap{}
	prev := start
	add := func(to time.Time) {
		if to.Sub(prev) > threshold {
			g := Gap{From: prev, To: to, Seconds: to.Sub(prev).Seconds(), FillStart: prev.Truncate(window), FillEnd: ceil(to, window)}
			if g.FillStart.Before(start) {
				g.FillStart = start
			}
			if g.FillEnd.After(end) {
				g.FillEnd = end
			}
			gaps = append(gaps, g)
		}
		prev = to
	}
	for _, d := range deliveries {
		if d.Before(start) || d.After(end) {
			continue
		}
		add(d)
	}
	add(end)
	return gaps
}

func ceil(t time.Time, d time.Duration) time.Time {
	f := t.Truncate(d)
	if f.Equal(t) {
		return t
	}
	return f.Add(d)
}

// Gaps examines the native file listing of each partition.
func Gaps(ctx context.Context, s archive.Store, parts []contract.Partition, o GapOptions) ([]PartitionGaps, error) {
	if o.Threshold <= 0 {
		o.Threshold = DefaultGapThreshold
	}
	if o.Window <= 0 {
		o.Window = engine.DefaultWindow
	}
	out := make([]PartitionGaps, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, p := range parts {
		g.Go(func() error {
			ds, err := NativeDeliveries(gctx, s, o.OrgID, p.Account, p.Region, o.Start, o.End)
			if err != nil {
				return err
			}
			pg := PartitionGaps{Account: p.Account, Region: p.Region, NativeFiles: len(ds), Gaps: FindGaps(ds, o.Start, o.End, o.Threshold, o.Window)}
			if len(ds) > 0 {
				pg.FirstDelivery, pg.LastDelivery = ds[0], ds[len(ds)-1]
			}
			if len(ds) > 1 {
				iv := make([]float64, 0, len(ds)-1)
				for j := 1; j < len(ds); j++ {
					iv = append(iv, ds[j].Sub(ds[j-1]).Seconds())
				}
				sort.Float64s(iv)
				pg.MedianIntervalSeconds = iv[len(iv)/2]
			}
			out[i] = pg
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// Fills groups the fill ranges of every partition into as few backfills as
// exactly cover them: a partition's overlapping ranges are merged, equal
// ranges of several partitions share a backfill, and accounts with the same
// regions share one command.
func Fills(parts []PartitionGaps) []Fill {
	type rng struct{ start, end time.Time }
	// range -> account -> regions
	by := map[rng]map[string][]string{}
	for _, p := range parts {
		var merged []rng
		for _, g := range p.Gaps {
			if !g.FillStart.Before(g.FillEnd) {
				continue
			}
			if n := len(merged); n > 0 && !g.FillStart.After(merged[n-1].end) {
				if g.FillEnd.After(merged[n-1].end) {
					merged[n-1].end = g.FillEnd
				}
				continue
			}
			merged = append(merged, rng{g.FillStart, g.FillEnd})
		}
		for _, r := range merged {
			if by[r] == nil {
				by[r] = map[string][]string{}
			}
			by[r][p.Account] = append(by[r][p.Account], p.Region)
		}
	}
	var out []Fill
	for r, accts := range by {
		// accounts grouped by their region list
		groups := map[string][]string{}
		for a, regions := range accts {
			slices.Sort(regions)
			key := strings.Join(regions, ",")
			groups[key] = append(groups[key], a)
		}
		for key, as := range groups {
			slices.Sort(as)
			out = append(out, Fill{Accounts: as, Regions: strings.Split(key, ","), Start: r.start, End: r.end})
		}
	}
	slices.SortFunc(out, func(a, b Fill) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return strings.Compare(strings.Join(a.Accounts, ","), strings.Join(b.Accounts, ","))
	})
	return out
}
