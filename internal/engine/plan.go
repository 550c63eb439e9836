package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
)

// plan decides what the run reads: the partition's manifests (a LIST and the
// coverage index; GETs only for manifests the index does not vouch for), less
// what the job's earlier invocations read, set up as windows, slices and
// ranges for the pagers.
func (r *run) plan(ctx context.Context) error {
	j := r.job
	all := archive.Windows(j.Start, j.End, r.cfg.Window)
	r.res.WindowsTotal = len(all)
	r.cfg.Progress.WindowsTotal.Add(int64(len(all)))
	if len(all) == 0 {
		return nil
	}
	prefix := archive.ManifestPrefix(j.Account, j.Region)
	planned, err := archive.PlanPrefix(ctx, r.cfg.Store, prefix, all[0].Start, all[len(all)-1].Start.Add(time.Second), r.filter)
	if err != nil {
		return fmt.Errorf("read the manifests of %s/%s (check read access to the archive): %w", j.Account, j.Region, err)
	}
	r.planned = planned
	need := map[int64]string{}
	for _, w := range all {
		if k, ok := planned.Manifests[w.Start.Unix()]; ok && !planned.Covered.Covers(w.From, w.To) {
			need[w.Start.Unix()] = k
		}
	}
	manifests, err := archive.ReadManifests(ctx, r.cfg.Store, need, archive.DecodeCloudTrailManifest)
	if err != nil {
		return fmt.Errorf("read the manifests of %s/%s (check read access to the archive): %w", j.Account, j.Region, err)
	}

	done := archive.Coalesce(intervals(j.Read, false))
	var ranges []archive.Interval
	var scan []time.Time
	for _, w := range all {
		if _, listed := planned.Manifests[w.Start.Unix()]; listed && planned.Covered.Covers(w.From, w.To) {
			r.skip()
			continue
		}
		m := manifests[w.Start.Unix()]
		if m != nil && m.OrgID != r.cfg.OrgID {
			return fmt.Errorf("the archive's manifest %s is of the layout of organization %q, this run writes %q: use the same --org-id as the earlier runs (one archive holds one layout)", m.Key(), m.OrgID, r.cfg.OrgID)
		}
		if m != nil && m.Filter != "" && m.Filter != r.filter {
			// Archived for another selection of events: read the window again
			// (what is archived stays; what this selection adds is written).
			m = &archive.Manifest{Version: m.Version, Account: m.Account, Region: m.Region, OrgID: m.OrgID, WindowStart: m.WindowStart}
		}
		if m != nil && m.Covers(w.From, w.To) {
			r.learned = append(r.learned, m.Covered...)
			r.skip()
			continue
		}
		win := &window{Window: w}
		var covered archive.Intervals
		if m != nil {
			covered = m.Covered
		}
		for _, part := range archive.Subtract(w.Interval(), covered) {
			win.pending = append(win.pending, archive.Subtract(part, done)...)
		}
		win.read = spansWithin(j.Read, w.From, w.To)
		win.slices = m.Slices(w.Interval())
		scan = append(scan, win.slices...)
		for _, iv := range win.pending {
			for ss := iv.From.Truncate(archive.SliceLength); ss.Before(iv.To); ss = ss.Add(archive.SliceLength) {
				s := r.slices[ss.Unix()]
				if s == nil {
					s = &slice{start: ss, win: win}
					r.slices[ss.Unix()] = s
					win.slicesLeft++
				}
				lo, hi := maxTime(ss, iv.From), minTime(ss.Add(archive.SliceLength), iv.To)
				s.pending = archive.Coalesce(append(s.pending, archive.Interval{From: lo, To: hi}))
			}
		}
		ranges = append(ranges, win.pending...)
		r.windows = append(r.windows, win)
	}
	r.scanner = archive.NewTrailScanner(r.cfg.Store, archive.ScanOptions{
		OrgID: r.cfg.OrgID, Account: j.Account, Region: j.Region,
		Native: !r.cfg.IgnoreNative, Lookahead: r.cfg.NativeLookahead,
	}, scan)
	for _, iv := range archive.Coalesce(ranges) {
		r.queue = append(r.queue, &rng{qFrom: iv.From, qTo: iv.To, lo: iv.From, floor: iv.To})
	}
	// Oldest first: LookupEvents forgets events older than 90 days while the
	// run proceeds, so the soonest-expiring part is read first (the scheduler
	// hands out the oldest part of a split range first too).
	sort.Slice(r.queue, func(a, b int) bool { return r.queue[a].lo.Before(r.queue[b].lo) })
	r.startProgress()
	return nil
}

func (r *run) skip() {
	r.res.WindowsSkipped++
	r.cfg.Progress.WindowsDone.Add(1)
}

// prefetchOrder is the order the scanner reads folders in: the pagers'
// (newest first).
func (r *run) prefetchOrder() []time.Time {
	var out []time.Time
	for i := len(r.windows) - 1; i >= 0; i-- {
		ws := r.windows[i].slices
		for k := len(ws) - 1; k >= 0; k-- {
			out = append(out, ws[k])
		}
	}
	return out
}

// restore completes windows whose every pending part earlier invocations
// already read (only their manifest is missing). It runs before any pager.
func (r *run) restore(ctx context.Context) error {
	for _, w := range r.windows {
		if w.slicesLeft == 0 {
			if err := r.finish(ctx, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordCoverage adds the settled coverage this run learned (windows it
// completed, manifests the index did not know) to the partition's coverage
// index, so that the next plan reads no manifest for them.
func (r *run) recordCoverage(ctx context.Context) error {
	if len(r.learned) == 0 || r.planned == nil {
		return nil
	}
	add := archive.Coalesce(r.learned)
	known := true
	for _, iv := range add {
		known = known && r.planned.Covered.Covers(iv.From, iv.To)
	}
	if known {
		return nil
	}
	prefix := archive.ManifestPrefix(r.job.Account, r.job.Region)
	if err := archive.AddCoverage(ctx, r.cfg.Store, prefix, r.planned.HasIndex, r.filter, add, r.now); err != nil {
		return fmt.Errorf("update the coverage index of %s/%s (re-run to resume): %w", r.job.Account, r.job.Region, err)
	}
	return nil
}
