package archive

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/contract"
)

// VerifyWindow is one window of a partition to verify: its aligned start (the
// manifest's name) and the interval [From, To) of the range it must cover.
type VerifyWindow struct {
	Start, From, To time.Time
}

// VerifyOptions say what VerifyPartition checks.
type VerifyOptions struct {
	// Windows are the windows of the range, in order.
	Windows []VerifyWindow
	// Start and End are the range [Start, End): trail files whose 5-minute
	// slice overlaps it are expected to be listed by a manifest.
	Start, End time.Time
	// OrgID selects the organization-trail layout AWSLogs/<o-id>/<account>/...
	// for the search of unlisted files; empty: the manifests' own org ID.
	OrgID string
	// Parallel is the number of windows checked at once (default 8); the
	// objects of one window are read one after the other.
	Parallel int
}

// PartitionReport is what VerifyPartition found in one partition. A window is
// archived when a manifest covers it and every object it lists is present
// with the size and SHA-256 the manifest records; missing when no manifest
// covers it; corrupt when its manifest is unreadable, or an object is missing
// or changed, or the manifest's event count disagrees with its objects.
type PartitionReport struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Windows  int    `json:"windows"`
	Archived int    `json:"archived"`
	Missing  int    `json:"missing"`
	Corrupt  int    `json:"corrupt"`
	// Events and Objects count what the archived windows hold.
	Events  int64 `json:"events"`
	Objects int   `json:"objects"`
	// MissingWindows lists the aligned starts of the missing windows.
	MissingWindows []time.Time     `json:"missing_windows"`
	CorruptWindows []CorruptWindow `json:"corrupt_windows"`
	Unlisted       []string        `json:"unlisted_objects"`
}

// CorruptWindow is a window whose manifest does not match the archive.
type CorruptWindow struct {
	Window   time.Time       `json:"window"`
	Manifest string          `json:"manifest"`
	Problems []ObjectProblem `json:"problems"`
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

// Complete reports whether every window is archived.
func (r *PartitionReport) Complete() bool { return r.Missing == 0 && r.Corrupt == 0 }

// trailFileName matches a CloudTrail log file name and captures its
// account, region and timestamp.
var trailFileName = regexp.MustCompile(`^([0-9]{12})_CloudTrail_([a-z0-9-]+)_([0-9]{8}T[0-9]{4}Z)_[A-Za-z0-9]{16}\.json\.gz$`)

// VerifyPartition checks the archive of one partition over the windows of a
// range: one LIST of the partition's manifests, one GET per manifest in the
// range and per object it lists (SHA-256 and size), and one LIST per UTC day
// folder of the range to find trail files that no manifest lists (reported as
// Unlisted: a duplicate left by another run, or a file CloudTrail delivered
// itself when the archive is the trail's own bucket). An error means the
// archive could not be read, not that it is incomplete.
func VerifyPartition(ctx context.Context, s Store, account, region string, o VerifyOptions) (*PartitionReport, error) {
	r := &PartitionReport{Account: account, Region: region, Windows: len(o.Windows),
		MissingWindows: []time.Time{}, CorruptWindows: []CorruptWindow{}, Unlisted: []string{}}
	if len(o.Windows) == 0 {
		return r, nil
	}
	from, to := o.Windows[0].Start, o.Windows[len(o.Windows)-1].Start.Add(time.Second)
	manifests, err := ManifestKeys(ctx, s, ManifestPrefix(account, region), from, to)
	if err != nil {
		return nil, fmt.Errorf("list the manifests of %s/%s: %w", account, region, err)
	}

	type job struct {
		w   VerifyWindow
		key string
	}
	type result struct {
		m        *Manifest
		problems []ObjectProblem
	}
	var jobs []job
	for _, w := range o.Windows {
		if k, ok := manifests[w.Start.Unix()]; ok {
			jobs = append(jobs, job{w, k})
		}
	}
	results := make([]result, len(jobs))
	parallel := o.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, j := range jobs {
		g.Go(func() error {
			m, problems, err := checkWindow(gctx, s, j.key)
			results[i] = result{m, problems}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	listed := map[string]bool{}
	orgID := o.OrgID
	byStart := map[int64]result{}
	for i, j := range jobs {
		res := results[i]
		byStart[j.w.Start.Unix()] = res
		if res.m != nil {
			for _, obj := range res.m.Objects {
				listed[obj.Key] = true
			}
			if orgID == "" {
				orgID = res.m.OrgID
			}
		}
	}
	for _, w := range o.Windows {
		res, ok := byStart[w.Start.Unix()]
		switch {
		case !ok:
			r.Missing++
			r.MissingWindows = append(r.MissingWindows, w.Start)
		case len(res.problems) > 0:
			r.Corrupt++
			r.CorruptWindows = append(r.CorruptWindows, CorruptWindow{Window: w.Start, Manifest: manifests[w.Start.Unix()], Problems: res.problems})
		case !res.m.Covers(w.From, w.To):
			// An earlier run archived only part of this window.
			r.Missing++
			r.MissingWindows = append(r.MissingWindows, w.Start)
		default:
			r.Archived++
			r.Events += int64(res.m.Events)
			r.Objects += len(res.m.Objects)
		}
	}

	// Trail files of the range that no manifest lists.
	lo, hi := o.Start.UTC(), o.End.UTC().Add(SliceLength)
	for day := o.Start.UTC().Truncate(24 * time.Hour); day.Before(o.End); day = day.Add(24 * time.Hour) {
		keys, err := s.List(ctx, TrailDayPrefix(orgID, account, region, day))
		if err != nil {
			return nil, fmt.Errorf("list the trail files of %s/%s on %s: %w", account, region, day.Format(time.DateOnly), err)
		}
		for _, k := range keys {
			m := trailFileName.FindStringSubmatch(k[strings.LastIndex(k, "/")+1:])
			if m == nil || m[1] != account || m[2] != region || listed[k] {
				continue
			}
			ts, err := time.Parse("20060102T1504Z", m[3])
			if err != nil || !ts.After(lo) || !ts.Before(hi) {
				continue
			}
			r.Unlisted = append(r.Unlisted, k)
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

// checkWindow reads a manifest and checks each object it lists, one after
// the other (windows are checked in parallel). An
// unreadable manifest is a problem of the window; a failed read of the
// archive is an error.
func checkWindow(ctx context.Context, s Store, key string) (*Manifest, []ObjectProblem, error) {
	m, err := ReadManifest(ctx, s, key)
	if errors.Is(err, ErrNotFound) {
		return nil, []ObjectProblem{{Key: key, Problem: "manifest deleted while verifying"}}, nil
	}
	if err != nil {
		if _, gerr := s.Get(ctx, key); gerr != nil && !errors.Is(gerr, ErrNotFound) {
			return nil, nil, fmt.Errorf("read manifest %s: %w", key, gerr)
		}
		return nil, []ObjectProblem{{Key: key, Problem: "unreadable manifest: " + err.Error()}}, nil
	}
	var out []ObjectProblem
	events := 0
	for _, obj := range m.Objects {
		events += obj.Events
		body, err := s.Get(ctx, obj.Key)
		switch {
		case errors.Is(err, ErrNotFound):
			out = append(out, ObjectProblem{Key: obj.Key, Problem: ProblemMissing})
		case err != nil:
			return nil, nil, fmt.Errorf("read %s listed by manifest %s: %w", obj.Key, key, err)
		case len(body) != obj.Bytes:
			out = append(out, ObjectProblem{Key: obj.Key, Problem: fmt.Sprintf("%s: %d bytes, the manifest records %d", ProblemSize, len(body), obj.Bytes)})
		case SHA256Hex(body) != obj.SHA256:
			out = append(out, ObjectProblem{Key: obj.Key, Problem: ProblemSHA256})
		}
	}
	if events != m.Events {
		out = append(out, ObjectProblem{Key: key, Problem: fmt.Sprintf("the manifest counts %d events but its objects hold %d", m.Events, events)})
	}
	return m, out, nil
}
