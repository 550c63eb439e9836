package gitlab

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
)

// ManifestVersion is the format version of the GitLab window manifests this
// trailfill writes. Version 2 added the layout (and native objects);
// version 1 manifests, which all describe the default layout, are still read.
const ManifestVersion = 2

// manifestVersionDefaultOnly is the first format: no layout field, default
// layout only.
const manifestVersionDefaultOnly = 1

// ManifestS3Root is the folder of the gitlab-s3 layout's window manifests. The
// layouts keep their manifests apart (the default layout's are under
// ManifestRoot), so that a window archived in one layout is not taken as done
// in the other. GitLab never writes under trailfill/ (its first key segment is
// an entity type, a lower-cased Ruby class name).
const ManifestS3Root = "trailfill/gitlab-s3-manifests/"

// Manifest records one completed backfill window of one scope: the layout, the
// query, every event with the key and SHA-256 of the object that holds it, and
// counts. It is written after every event it lists is stored, so its presence
// means the window is archived; re-runs skip such windows.
type Manifest struct {
	Version int    `json:"version"`
	Layout  Layout `json:"layout"` // "" in version 1 manifests: the default layout
	// Source is the <source> key segment of the default layout (empty for
	// gitlab-s3, which has none).
	Source      string    `json:"source"`
	Scope       string    `json:"scope"` // Scope.Segment()
	WindowStart time.Time `json:"window_start"`
	From        time.Time `json:"from"` // covered interval [from, to)
	To          time.Time `json:"to"`
	Events      int       `json:"events"`  // events of the window in the archive
	Written     int       `json:"written"` // of which this run wrote
	Present     int       `json:"present"` // of which were already there (streamed, native or earlier run)
	// Native counts the events of Present that GitLab's own S3 destination
	// delivered (gitlab-s3 layout).
	Native  int              `json:"native"`
	Objects []ManifestObject `json:"objects"` // one per event, sorted by key and id
	Query   ManifestQuery    `json:"query"`
	// Archive names the destination the window was written to, for people
	// (not checked: an archive may be copied elsewhere).
	Archive     string    `json:"archive,omitempty"`
	Requests    int       `json:"requests"`
	CompletedAt time.Time `json:"completed_at"`
}

// ManifestObject is one archived event of a window and the object holding
// it. Events of one batched native object share its key.
type ManifestObject struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"` // of the archived object
	// Native marks an object GitLab wrote itself (a per-event object named by
	// its upload time, or a batch); trailfill never modifies it.
	Native bool `json:"native,omitempty"`
}

// ManifestQuery is the API question whose answer the window holds.
type ManifestQuery struct {
	URL           string    `json:"url"` // first page; the token is a header, never in the URL
	CreatedAfter  time.Time `json:"created_after"`
	CreatedBefore time.Time `json:"created_before"`
	PerPage       int       `json:"per_page"`
	Pagination    string    `json:"pagination"`
	Fetched       int       `json:"fetched"` // events returned by the API, before client-side bounds
}

// ManifestPrefix is the folder of one scope's manifests in the default
// layout: trailfill/gitlab-manifests/<source>/<scope>/.
func ManifestPrefix(source string, s Scope) string {
	return LayoutDefault.ManifestPrefix(source, s)
}

// ManifestPrefix is the folder of one scope's manifests in layout l:
// trailfill/gitlab-manifests/<source>/<scope>/ (default) or
// trailfill/gitlab-s3-manifests/<scope>/ (gitlab-s3; ids are per GitLab
// instance and the archive prefix names the instance, so no source).
func (l Layout) ManifestPrefix(source string, s Scope) string {
	return l.manifestPrefix(source, s.Segment())
}

func (l Layout) manifestPrefix(source, segment string) string {
	if l.orDefault() == LayoutGitLabS3 {
		return ManifestS3Root + segment + "/"
	}
	return ManifestRoot + source + "/" + segment + "/"
}

// ManifestKey is the key of the default layout's manifest of the window
// starting at windowStart:
// trailfill/gitlab-manifests/<source>/<scope>/YYYY/MM/DD/<YYYYMMDDTHHmmZ>.json.
func ManifestKey(source string, s Scope, windowStart time.Time) string {
	return archive.WindowManifestKey(ManifestPrefix(source, s), windowStart)
}

// ManifestKey is the key of layout l's manifest of the window starting at
// windowStart.
func (l Layout) ManifestKey(source string, s Scope, windowStart time.Time) string {
	return archive.WindowManifestKey(l.ManifestPrefix(source, s), windowStart)
}

// Key is where m is stored.
func (m *Manifest) Key() string {
	return archive.WindowManifestKey(m.Layout.manifestPrefix(m.Source, m.Scope), m.WindowStart)
}

// Header implements archive.ManifestDoc.
func (m *Manifest) Header() archive.ManifestHeader {
	return archive.ManifestHeader{Version: m.Version, WindowStart: m.WindowStart}
}

// DecodeManifest decodes and checks the GitLab manifest stored at key: a
// version 2 manifest of either layout, or a version 1 manifest (default
// layout). Its key must be the one its own fields name.
func DecodeManifest(key string, body []byte) (*Manifest, error) {
	var h struct {
		Version int `json:"version"`
	}
	version := ManifestVersion
	if err := json.Unmarshal(body, &h); err == nil && h.Version == manifestVersionDefaultOnly {
		version = manifestVersionDefaultOnly
	}
	m, err := archive.DecodeManifest[Manifest](key, body, version)
	if err != nil {
		return nil, err
	}
	switch {
	case version == manifestVersionDefaultOnly && m.Layout != "":
		return nil, fmt.Errorf("manifest %s: a version 1 manifest names layout %q (delete it to redo its window)", key, m.Layout)
	case version == manifestVersionDefaultOnly:
		m.Layout = LayoutDefault
	case m.Layout.Validate() != nil || m.Layout == "":
		return nil, fmt.Errorf("manifest %s names an unknown layout %q: upgrade trailfill", key, m.Layout)
	}
	return m, nil
}

// Covers reports whether m covers [from, to).
func (m *Manifest) Covers(from, to time.Time) bool {
	return !m.From.After(from) && !m.To.Before(to)
}
