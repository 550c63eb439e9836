package archive

import (
	"context"
	"time"
)

// ManifestVersion is the format version written in every manifest.
const ManifestVersion = 1

// Manifest records one completed window of one partition: what was asked of
// LookupEvents, what was written and the SHA-256 of each object. It is written only
// after every object it lists, so its presence means the window is archived.
type Manifest struct {
	Version     int              `json:"version"`
	Account     string           `json:"account"`
	Region      string           `json:"region"`
	OrgID       string           `json:"org_id,omitempty"`
	WindowStart time.Time        `json:"window_start"` // aligned window start (the key)
	From        time.Time        `json:"from"`         // covered interval [from, to)
	To          time.Time        `json:"to"`
	Events      int              `json:"events"`
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

// Covers reports whether the manifest covers [from, to).
func (m *Manifest) Covers(from, to time.Time) bool {
	return !m.From.After(from) && !m.To.Before(to)
}

// DecodeCloudTrailManifest decodes and checks the manifest stored at key.
func DecodeCloudTrailManifest(key string, body []byte) (*Manifest, error) {
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
// [from, to), keyed by window start (Unix seconds). One listing serves the whole
// range, so resuming costs one LIST per 1,000 windows and one GET per manifest.
func PartitionManifests(ctx context.Context, s Store, account, region string, from, to time.Time) (map[int64]*Manifest, error) {
	return Index(ctx, s, ManifestPrefix(account, region), from, to, DecodeCloudTrailManifest)
}
