package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A coverage index is a small summary a writer keeps beside a prefix's
// manifests (<prefix>index.json): the settled coverage of every manifest it
// wrote, as a few coalesced intervals per filter. Planning a range then costs
// the LIST of the manifest keys and one GET, however many windows are
// archived, instead of one GET per manifest.
//
// The index is a cache, never the truth: a window counts as archived only
// when its manifest is listed too (a deleted manifest is noticed), and a
// window the index does not vouch for is planned from its manifest.
// Concurrent writers merge their additions by compare-and-swap (AddCoverage,
// Update), and manifests only ever gain coverage, so what the index says
// stays true.

// CoverageIndexName is the index's name under its prefix.
const CoverageIndexName = "index.json"

const coverageIndexVersion = 1

// CoverageIndex is the document at <prefix>index.json.
type CoverageIndex struct {
	Version int `json:"version"`
	// Covered is the settled coverage by filter ("" : every management event).
	Covered   map[string]Intervals `json:"covered"`
	UpdatedAt time.Time            `json:"updated_at"`
}

// Planned is what one LIST (and at most one GET) tells about a prefix.
type Planned struct {
	// Manifests are the manifest keys whose window starts in the range, by
	// window start (Unix seconds).
	Manifests map[int64]string
	// Covered is the index's settled coverage for the filter asked for.
	Covered Intervals
	// HasIndex: the prefix holds a coverage index.
	HasIndex bool
}

// PlanPrefix lists prefix once and reads its coverage index if there is one.
func PlanPrefix(ctx context.Context, s Store, prefix string, from, to time.Time, filter string) (*Planned, error) {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	p := &Planned{Manifests: map[int64]string{}}
	for _, k := range keys {
		if k == prefix+CoverageIndexName {
			p.HasIndex = true
			continue
		}
		if ws, ok := ParseWindowManifestKey(prefix, k); ok && !ws.Before(from) && ws.Before(to) {
			p.Manifests[ws.Unix()] = k
		}
	}
	if p.HasIndex {
		idx, err := readCoverageIndex(ctx, s, prefix)
		if err != nil {
			return nil, err
		}
		p.Covered = idx.Covered[filter]
	}
	return p, nil
}

func readCoverageIndex(ctx context.Context, s Store, prefix string) (*CoverageIndex, error) {
	b, err := s.Get(ctx, prefix+CoverageIndexName)
	if err != nil {
		return nil, fmt.Errorf("read the coverage index %s%s: %w", prefix, CoverageIndexName, err)
	}
	return decodeCoverageIndex(b), nil
}

// decodeCoverageIndex decodes an index; one that cannot be read is empty (a
// cache: it is rebuilt from the manifests).
func decodeCoverageIndex(b []byte) *CoverageIndex {
	var idx CoverageIndex
	if err := json.Unmarshal(b, &idx); err != nil || idx.Version != coverageIndexVersion {
		return &CoverageIndex{Version: coverageIndexVersion, Covered: map[string]Intervals{}}
	}
	if idx.Covered == nil {
		idx.Covered = map[string]Intervals{}
	}
	return &idx
}

// AddCoverage records settled coverage for filter in the prefix's index,
// merged with what the index holds by compare-and-swap (Update), so that
// concurrent runs' coverage is all kept. exists says whether the index is
// there (the caller listed the prefix: a GET of a missing key may answer 403).
func AddCoverage(ctx context.Context, s Store, prefix string, exists bool, filter string, add []Interval, now time.Time) error {
	if len(add) == 0 {
		return nil
	}
	key := prefix + CoverageIndexName
	err := Update(ctx, s, key, exists, func(old []byte) ([]byte, error) {
		idx := decodeCoverageIndex(old)
		idx.Covered[filter] = Coalesce(append(append([]Interval(nil), idx.Covered[filter]...), add...))
		idx.UpdatedAt = now.UTC().Truncate(time.Second)
		b, err := json.Marshal(idx)
		if err != nil {
			return nil, fmt.Errorf("encode the coverage index: %w", err)
		}
		return b, nil
	})
	if err != nil {
		return fmt.Errorf("update the coverage index %s: %w", key, err)
	}
	return nil
}
