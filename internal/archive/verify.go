package archive

import (
	"context"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/contract"
)

// VerifyOptions say what VerifyPartition checks.
type VerifyOptions struct {
	// Windows are the windows of the range, in order.
	Windows []Window
	// OrgID selects the organization-trail layout AWSLogs/<o-id>/<account>/...
	OrgID string
	// IgnoreNative: do not read native trail files (no overlap check).
	IgnoreNative bool
	// NativeLookahead: how far after a slice native files can hold its
	// events, as NativeLookahead reads it (zero: a day; negative: none).
	NativeLookahead time.Duration
	// Filter names the selection of management events a region's windows
	// must hold (Manifest.Filter; nil or "": every management event). A
	// window archived under another selection is missing, as a backfill of
	// this selection would read it again; one archived with every
	// management event covers any selection.
	Filter func(region string) string
}

// PartitionReport is what VerifyPartition found in one partition. A window is
// archived when a manifest covers it, settled, and every object it lists is
// present with the size and SHA-256 the manifest records; provisional when its
// manifest covers it but too near the present for LookupEvents to be final;
// missing when no manifest covers it; corrupt when its manifest is unreadable
// or an object is missing or changed. Events are counted by ID over every
// trail file of the range, native ones included: Duplicated are events that
// both native files and trailfill's files hold (native delivery brought them
// after the backfill: `trailfill reconcile` removes trailfill's copies).
type PartitionReport struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	VerifyCounts

	MissingWindows     []time.Time     `json:"missing_windows"`
	ProvisionalWindows []time.Time     `json:"provisional_windows"`
	CorruptWindows     []CorruptWindow `json:"corrupt_windows"`
	DuplicatedWindows  []WindowOverlap `json:"duplicated_windows"`
	// WindowEvents are, for every window with a readable manifest, the
	// events native files hold, trailfill's files hold, and both.
	WindowEvents []WindowOverlap `json:"window_events"`
	// Unlisted are trailfill's trail files of the range that no manifest
	// lists (a concurrent run's, written after the manifest): their events
	// count, they are just not checksummed.
	Unlisted []string `json:"unlisted_objects"`
}

// VerifyCounts are the figures of a verification: of one partition in a
// PartitionReport, of all of them in the CLI's totals (Add).
type VerifyCounts struct {
	Windows     int `json:"windows"`
	Archived    int `json:"archived"`
	Provisional int `json:"provisional"`
	Missing     int `json:"missing"`
	Corrupt     int `json:"corrupt"`
	// Events is the number of distinct events of the archived windows, in
	// any trail file; Native of them in native files, Recovered in
	// trailfill's, Duplicated in both.
	Events     int64 `json:"events"`
	Native     int64 `json:"native"`
	Recovered  int64 `json:"recovered"`
	Duplicated int64 `json:"duplicated"`
	// NativeDuplicates are records native delivery itself holds twice:
	// reported, not trailfill's to fix (tools deduplicate on eventID).
	NativeDuplicates int64 `json:"native_duplicates"`
	// PieceDuplicates are events that more than one of trailfill's files
	// holds: there must be none.
	PieceDuplicates int64 `json:"piece_duplicates"`
	Objects         int   `json:"objects"`
}

// Add adds o to c.
func (c *VerifyCounts) Add(o VerifyCounts) {
	c.Windows += o.Windows
	c.Archived += o.Archived
	c.Provisional += o.Provisional
	c.Missing += o.Missing
	c.Corrupt += o.Corrupt
	c.Events += o.Events
	c.Native += o.Native
	c.Recovered += o.Recovered
	c.Duplicated += o.Duplicated
	c.NativeDuplicates += o.NativeDuplicates
	c.PieceDuplicates += o.PieceDuplicates
	c.Objects += o.Objects
}

// CorruptWindow is a window whose manifest does not match the archive.
type CorruptWindow struct {
	Window   time.Time       `json:"window"`
	Manifest string          `json:"manifest"`
	Problems []ObjectProblem `json:"problems"`
}

// WindowOverlap counts a window's events by where they are: native files,
// trailfill's files, both.
type WindowOverlap struct {
	Window    time.Time `json:"window"`
	Native    int       `json:"native"`
	Recovered int       `json:"recovered"`
	Both      int       `json:"both"`
}

// ObjectProblem is one object (or the manifest itself) that fails the check.
type ObjectProblem struct {
	Key     string `json:"key"`
	Problem string `json:"problem"`
}

// Problems found by VerifyPartition.
const (
	ProblemMissing = "missing"
	ProblemSHA256  = "sha256 mismatch"
	ProblemSize    = "size mismatch"
)

// Complete reports whether every window is archived, settled, and no event
// is in the archive twice.
func (r *PartitionReport) Complete() bool {
	return r.Missing == 0 && r.Corrupt == 0 && r.Provisional == 0 && r.Duplicated == 0 && r.PieceDuplicates == 0
}

// VerifyPartition checks the archive of one partition over the windows of a
// range: one LIST of the partition's manifests and one GET per manifest, then
// every trail file that can hold events of the range (the day folders of the
// range and NativeLookahead after it; trailfill's own and, unless
// IgnoreNative, native ones) is read once, keeping event IDs: the SHA-256 of
// each object a manifest lists and the counts come from that read. An error
// means the archive could not be read, not that it is incomplete.
func VerifyPartition(ctx context.Context, s Store, account, region string, o VerifyOptions) (*PartitionReport, error) {
	r := &PartitionReport{Account: account, Region: region, VerifyCounts: VerifyCounts{Windows: len(o.Windows)},
		MissingWindows: []time.Time{}, ProvisionalWindows: []time.Time{}, CorruptWindows: []CorruptWindow{},
		DuplicatedWindows: []WindowOverlap{}, WindowEvents: []WindowOverlap{}, Unlisted: []string{}}
	if len(o.Windows) == 0 {
		return r, nil
	}
	o.NativeLookahead = NativeLookahead(o.NativeLookahead)
	from, to := o.Windows[0].Start, o.Windows[len(o.Windows)-1].Start.Add(time.Second)
	keys, err := ManifestKeys(ctx, s, ManifestPrefix(account, region), from, to)
	if err != nil {
		return nil, fmt.Errorf("list the manifests of %s/%s: %w", account, region, err)
	}
	type readResult struct {
		m   *Manifest
		err error // a manifest that cannot be decoded: the window is corrupt
	}
	read, err := ReadManifests(ctx, s, keys, func(key string, body []byte) (*readResult, error) {
		m, err := DecodeCloudTrailManifest(key, body)
		return &readResult{m: m, err: err}, nil
	})
	if err != nil {
		return nil, err
	}

	// Every slice a window's manifest speaks of is scanned, so that its
	// pieces outside the range (a range that starts or ends inside a window
	// an earlier run archived whole) are checked too; only the range's part
	// is counted.
	spoken := make([][]time.Time, len(o.Windows))
	var starts []time.Time
	for i, w := range o.Windows {
		var m *Manifest
		if res := read[w.Start.Unix()]; res != nil {
			m = res.m
		}
		spoken[i] = m.Slices(w.Interval())
		starts = append(starts, spoken[i]...)
	}
	scan := NewTrailScanner(s, ScanOptions{OrgID: o.OrgID, Account: account, Region: region, Native: !o.IgnoreNative, Lookahead: o.NativeLookahead}, starts)
	listed := map[string]bool{}
	wantFilter := ""
	if o.Filter != nil {
		wantFilter = o.Filter(region)
	}
	for i, w := range o.Windows {
		// What the trail files hold of the window.
		pieces := map[string]PieceInfo{}
		var native, recovered, both int
		for _, ss := range spoken[i] {
			c, err := scan.Slice(ctx, ss)
			if err != nil {
				return nil, err
			}
			for _, pi := range c.PieceList() {
				pieces[pi.Key] = pi
			}
			if ss.Add(SliceLength).After(w.From) && ss.Before(w.To) {
				n, p, b := c.Counts()
				native, recovered, both = native+n, recovered+p, both+b
				r.NativeDuplicates += int64(c.NativeDuplicates)
				r.PieceDuplicates += int64(c.PieceDuplicates)
			}
			scan.Release(ss)
		}
		res := read[w.Start.Unix()]
		if res != nil && res.m != nil {
			for _, obj := range res.m.Objects {
				listed[obj.Key] = true
			}
		}
		for k := range pieces {
			if !listed[k] {
				r.Unlisted = append(r.Unlisted, k)
			}
		}
		switch {
		case res == nil:
			r.Missing++
			r.MissingWindows = append(r.MissingWindows, w.Start)
			continue
		case res.err != nil:
			r.Corrupt++
			r.CorruptWindows = append(r.CorruptWindows, CorruptWindow{Window: w.Start, Manifest: keys[w.Start.Unix()],
				Problems: []ObjectProblem{{Key: keys[w.Start.Unix()], Problem: "unreadable manifest: " + res.err.Error()}}})
			continue
		}
		m := res.m
		r.WindowEvents = append(r.WindowEvents, WindowOverlap{Window: w.Start, Native: native, Recovered: recovered, Both: both})
		if m.Filter != "" && m.Filter != wantFilter {
			r.Missing++
			r.MissingWindows = append(r.MissingWindows, w.Start)
			continue
		}
		var problems []ObjectProblem
		events := 0
		for _, obj := range m.Objects {
			events += obj.Events
			p, ok := pieces[obj.Key]
			switch {
			case !ok:
				problems = append(problems, ObjectProblem{Key: obj.Key, Problem: ProblemMissing})
			case p.Bytes != obj.Bytes:
				problems = append(problems, ObjectProblem{Key: obj.Key, Problem: fmt.Sprintf("%s: %d bytes, the manifest records %d", ProblemSize, p.Bytes, obj.Bytes)})
			case p.SHA256 != obj.SHA256:
				problems = append(problems, ObjectProblem{Key: obj.Key, Problem: ProblemSHA256})
			case p.Unreadable != "":
				problems = append(problems, ObjectProblem{Key: obj.Key, Problem: "unreadable: " + p.Unreadable})
			}
		}
		if events != m.Recovered {
			problems = append(problems, ObjectProblem{Key: m.Key(), Problem: fmt.Sprintf("the manifest counts %d recovered events but its objects hold %d", m.Recovered, events)})
		}
		switch {
		case len(problems) > 0:
			r.Corrupt++
			r.CorruptWindows = append(r.CorruptWindows, CorruptWindow{Window: w.Start, Manifest: m.Key(), Problems: problems})
		case !m.Covers(w.From, w.To) && Coalesce(append(append([]Interval{}, m.Covered...), m.Provisional...)).Covers(w.From, w.To):
			r.Provisional++
			r.ProvisionalWindows = append(r.ProvisionalWindows, w.Start)
		case !m.Covers(w.From, w.To):
			r.Missing++
			r.MissingWindows = append(r.MissingWindows, w.Start)
		default:
			r.Archived++
			r.Objects += len(m.Objects)
			r.Events += int64(native + recovered - both)
			r.Native += int64(native)
			r.Recovered += int64(recovered)
			r.Duplicated += int64(both)
			if both > 0 {
				r.DuplicatedWindows = append(r.DuplicatedWindows, WindowOverlap{Window: w.Start, Native: native, Recovered: recovered, Both: both})
			}
		}
	}
	sort.Strings(r.Unlisted)
	return r, nil
}

// VerifyPartitions verifies each partition with VerifyPartition, a few at a
// time; the reports are in the order of parts.
func VerifyPartitions(ctx context.Context, s Store, parts []contract.Partition, o VerifyOptions) ([]*PartitionReport, error) {
	reports := make([]*PartitionReport, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, p := range parts {
		g.Go(func() error {
			r, err := VerifyPartition(gctx, s, p.Account, p.Region, o)
			reports[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("verify %s (check read access to the archive): %w", s, err)
	}
	return reports, nil
}
