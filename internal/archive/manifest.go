package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// ManifestVersion is the format version written in every manifest. Version 1
// (one covered interval, every event written by trailfill) is still read.
const ManifestVersion = 2

// Manifest records one window of one partition: which parts of it were read
// completely from LookupEvents, what trailfill's trail files of the window's
// slices hold (with the SHA-256 of each), and how many events native files
// already held. It is written after every object it lists; re-runs skip the
// covered parts, `verify` checks the objects and `reconcile` the overlap with
// native delivery.
type Manifest struct {
	Version     int       `json:"version"`
	Account     string    `json:"account"`
	Region      string    `json:"region"`
	OrgID       string    `json:"org_id,omitempty"`
	WindowStart time.Time `json:"window_start"` // aligned window start (the key)
	From        time.Time `json:"from"`         // hull of Covered and Provisional, for people
	To          time.Time `json:"to"`
	// Covered is what was read completely at least the settling margin after
	// its end: LookupEvents will not add events there.
	Covered Intervals `json:"covered"`
	// Provisional was read completely but too close to its end (LookupEvents
	// fills in over minutes): a later run reads it again and adds what
	// arrived late.
	Provisional Intervals `json:"provisional,omitempty"`
	// Filter names the management events archived (empty: all of them).
	Filter string `json:"filter,omitempty"`
	// Events are the window's distinct events in any trail file: Native +
	// Recovered, less those both hold.
	Events int `json:"events"`
	// Recovered is what Objects hold: trailfill's trail files of the window.
	Recovered int `json:"recovered"`
	// Native counts the distinct events of the window's slices in native
	// trail files (CloudTrail's own delivery), found when the run wrote it.
	Native      int              `json:"native"`
	Objects     []ManifestObject `json:"objects"`
	Query       ManifestQuery    `json:"query"`
	CompletedAt time.Time        `json:"completed_at"`
}

// ManifestObject is one trail file of a window.
type ManifestObject struct {
	Key    string `json:"key"`
	Events int    `json:"events"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// ManifestQuery is the LookupEvents question whose answer the window holds.
type ManifestQuery struct {
	API        string    `json:"api"`
	StartTime  time.Time `json:"start_time"` // inclusive
	EndTime    time.Time `json:"end_time"`   // inclusive; events at or after To are dropped
	MaxResults int       `json:"max_results"`
}

// Key is where m is stored.
func (m *Manifest) Key() string { return ManifestKey(m.Account, m.Region, m.WindowStart) }

// Header implements ManifestDoc.
func (m *Manifest) Header() ManifestHeader {
	return ManifestHeader{Version: m.Version, WindowStart: m.WindowStart}
}

// Covers reports whether the settled coverage includes [from, to).
func (m *Manifest) Covers(from, to time.Time) bool { return m.Covered.Covers(from, to) }

// Slices are the starts of the slices a window's manifest speaks of, in
// order: those of part (what a run reads or checks of the window), of what m
// covers, settled or provisionally, and of the pieces it lists. m may be nil.
func (m *Manifest) Slices(part Interval) []time.Time {
	ivs := Intervals{part}
	set := map[int64]bool{}
	if m != nil {
		ivs = append(append(ivs, m.Covered...), m.Provisional...)
		for _, o := range m.Objects {
			if f, ok := ParseTrailFileName(o.Key); ok && f.Piece >= 0 {
				set[f.SliceStart.Unix()] = true
			}
		}
	}
	for _, iv := range Coalesce(ivs) {
		for ss := iv.From.Truncate(SliceLength); ss.Before(iv.To); ss = ss.Add(SliceLength) {
			set[ss.Unix()] = true
		}
	}
	out := make([]time.Time, 0, len(set))
	for u := range set {
		out = append(out, time.Unix(u, 0).UTC())
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// Settled reports whether nothing of the manifest is provisional.
func (m *Manifest) Settled() bool { return len(m.Provisional) == 0 }

// DecodeCloudTrailManifest decodes and checks the manifest stored at key,
// reading version 1 manifests as version 2.
func DecodeCloudTrailManifest(key string, body []byte) (*Manifest, error) {
	var h ManifestHeader
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("decode manifest %s (delete it to redo its window): %w", key, err)
	}
	if h.Version == 1 {
		m, err := DecodeManifest[Manifest](key, body, 1)
		if err != nil {
			return nil, err
		}
		m.Version = ManifestVersion
		m.Covered = Coalesce([]Interval{{From: m.From, To: m.To}})
		m.Recovered = m.Events
		return m, nil
	}
	return DecodeManifest[Manifest](key, body, ManifestVersion)
}

// ReadManifest reads and checks the manifest at key.
func ReadManifest(ctx context.Context, s Store, key string) (*Manifest, error) {
	b, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return DecodeCloudTrailManifest(key, b)
}

// PartitionManifests reads every manifest of one partition whose window starts in
// [from, to), keyed by window start (Unix seconds): one LIST per 1,000
// manifests and one GET per manifest.
func PartitionManifests(ctx context.Context, s Store, account, region string, from, to time.Time) (map[int64]*Manifest, error) {
	return Index(ctx, s, ManifestPrefix(account, region), from, to, DecodeCloudTrailManifest)
}
