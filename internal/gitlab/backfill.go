package gitlab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
)

// ManifestVersion is the format version of GitLab window manifests.
const ManifestVersion = 1

// Manifest records one completed backfill window of one scope: the query, every
// event key with the SHA-256 of the archived object, and counts. It is written
// after every event it lists, so its presence means the window is archived;
// re-runs skip such windows.
type Manifest struct {
	Version     int              `json:"version"`
	Source      string           `json:"source"`
	Scope       string           `json:"scope"` // Scope.Segment()
	WindowStart time.Time        `json:"window_start"`
	From        time.Time        `json:"from"` // covered interval [from, to)
	To          time.Time        `json:"to"`
	Events      int              `json:"events"`  // events of the window in the archive
	Written     int              `json:"written"` // of which this run wrote
	Present     int              `json:"present"` // of which were already there (streamed or earlier run)
	Objects     []ManifestObject `json:"objects"` // sorted by key
	Query       ManifestQuery    `json:"query"`
	Requests    int              `json:"requests"`
	CompletedAt time.Time        `json:"completed_at"`
}

// ManifestObject is one archived event of a window.
type ManifestObject struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"` // of the archived object
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

// ManifestPrefix is the folder of one scope's manifests.
func ManifestPrefix(source string, s Scope) string {
	return ManifestRoot + source + "/" + s.Segment() + "/"
}

// ManifestKey is the key of the manifest of the window starting at windowStart:
// trailfill/gitlab-manifests/<source>/<scope>/YYYY/MM/DD/<YYYYMMDDTHHmmZ>.json.
func ManifestKey(source string, s Scope, windowStart time.Time) string {
	return archive.WindowManifestKey(ManifestPrefix(source, s), windowStart)
}

// Key is where m is stored.
func (m *Manifest) Key() string {
	return archive.WindowManifestKey(ManifestRoot+m.Source+"/"+m.Scope+"/", m.WindowStart)
}

// Header implements archive.ManifestDoc.
func (m *Manifest) Header() archive.ManifestHeader {
	return archive.ManifestHeader{Version: m.Version, WindowStart: m.WindowStart}
}

// DecodeManifest decodes and checks the GitLab manifest stored at key.
func DecodeManifest(key string, body []byte) (*Manifest, error) {
	return archive.DecodeManifest[Manifest](key, body, ManifestVersion)
}

// Covers reports whether m covers [from, to).
func (m *Manifest) Covers(from, to time.Time) bool {
	return !m.From.After(from) && !m.To.Before(to)
}

// Backfill copies the audit events of one scope from the API into the archive,
// window by window. Safe to re-run: windows with a manifest are skipped and
// events are written with PutIfAbsent (never rewritten).
type Backfill struct {
	Client *Client
	Store  archive.Store
	Source string // DefaultSource if empty
	Scope  Scope
	Window time.Duration // DefaultWindow if 0
	// Concurrency is how many windows are read at once (default 1). All
	// share Client.Limit.
	Concurrency int
	Logger      *slog.Logger
	Now         func() time.Time
	// Progress, if set, is called after each window (done or skipped).
	Progress func(WindowResult)
}

// WindowResult is the outcome of one window.
type WindowResult struct {
	Window   archive.Window
	Skipped  bool // a manifest already covered it
	Events   int
	Written  int
	Present  int
	Requests int
	Err      error
}

// Summary is the outcome of a backfill run.
type Summary struct {
	Windows  int `json:"windows"`
	Skipped  int `json:"skipped"`
	Done     int `json:"done"`
	Failed   int `json:"failed"`
	Events   int `json:"events"`
	Written  int `json:"written"`
	Present  int `json:"present"`
	Requests int `json:"requests"`
}

func (b *Backfill) source() string {
	if b.Source == "" {
		return DefaultSource
	}
	return b.Source
}

func (b *Backfill) window() time.Duration {
	if b.Window == 0 {
		return DefaultWindow
	}
	return b.Window
}

func (b *Backfill) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Backfill) log() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

// Validate checks the configuration and the range [start, end).
func (b *Backfill) Validate(start, end time.Time) error {
	if b.Client == nil || b.Store == nil {
		return errors.New("backfill needs a GitLab client and an archive store")
	}
	if err := ValidateSource(b.source()); err != nil {
		return err
	}
	if err := b.Scope.Validate(); err != nil {
		return err
	}
	if err := ValidateWindow(b.window()); err != nil {
		return err
	}
	if !end.After(start) {
		return fmt.Errorf("end %s is not after start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	return nil
}

// Run backfills [start, end). Windows run in order (several at once with
// Concurrency); a failed window does not stop the others, and Run returns an
// error naming every failed window. A cancelled ctx stops the run; windows
// already done keep their manifests.
func (b *Backfill) Run(ctx context.Context, start, end time.Time) (Summary, error) {
	if err := b.Validate(start, end); err != nil {
		return Summary{}, err
	}
	windows := archive.Windows(start, end, b.window())
	sum := Summary{Windows: len(windows)}
	done, err := b.manifests(ctx, start, end)
	if err != nil {
		return sum, err
	}

	conc := max(b.Concurrency, 1)
	jobs := make(chan archive.Window)
	results := make(chan WindowResult)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				results <- b.runWindow(ctx, w, done[w.Start.Unix()])
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, w := range windows {
			select {
			case jobs <- w:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	var failed []string
	var errs []error
	for r := range results {
		sum.Requests += r.Requests
		switch {
		case r.Err != nil:
			sum.Failed++
			failed = append(failed, r.Window.Start.Format(time.RFC3339))
			errs = append(errs, r.Err)
		case r.Skipped:
			sum.Skipped++
		default:
			sum.Done++
			sum.Events += r.Events
			sum.Written += r.Written
			sum.Present += r.Present
		}
		if b.Progress != nil {
			b.Progress(r)
		}
	}
	if ctx.Err() != nil && sum.Done+sum.Skipped+sum.Failed < sum.Windows {
		return sum, fmt.Errorf("backfill of %s stopped after %d of %d windows: %w (re-run the same command to resume)", b.Scope, sum.Done+sum.Skipped, sum.Windows, ctx.Err())
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		if len(failed) > 10 {
			failed = append(failed[:10], "...")
		}
		// Every failure was logged; the error carries the first one.
		return sum, fmt.Errorf("%d of %d windows of %s failed (%s): re-run the same command to retry them; first error: %w", sum.Failed, sum.Windows, b.Scope, strings.Join(failed, ", "), errs[0])
	}
	return sum, nil
}

// manifests reads the scope's manifests whose window starts in the range, keyed
// by window start (Unix seconds). One listing serves the whole range.
func (b *Backfill) manifests(ctx context.Context, start, end time.Time) (map[int64]*Manifest, error) {
	lo := archive.AlignDown(start.UTC(), b.window())
	ms, err := archive.Index(ctx, b.Store, ManifestPrefix(b.source(), b.Scope), lo, end, DecodeManifest)
	if err != nil {
		return nil, fmt.Errorf("read the manifests to resume: %w", err)
	}
	return ms, nil
}

// runWindow archives one window unless prev already covers it.
func (b *Backfill) runWindow(ctx context.Context, w archive.Window, prev *Manifest) WindowResult {
	res := WindowResult{Window: w}
	log := b.log().With("scope", b.Scope.String(), "window", w.Start.Format(time.RFC3339))
	if prev != nil && prev.Covers(w.From, w.To) {
		res.Skipped = true
		return res
	}
	if err := ctx.Err(); err != nil {
		res.Err = fmt.Errorf("window %s: %w", w.Start.Format(time.RFC3339), err)
		return res
	}
	source := b.source()
	after, before := queryBounds(w.From, w.To)
	first := b.Client.QueryURL(b.Scope, after, before)
	m := &Manifest{
		Version:     ManifestVersion,
		Source:      source,
		Scope:       b.Scope.Segment(),
		WindowStart: w.Start,
		From:        w.From,
		To:          w.To,
		Objects:     []ManifestObject{},
		Query: ManifestQuery{
			URL: redact(first), CreatedAfter: after, CreatedBefore: before,
			PerPage: PerPage, Pagination: "keyset",
		},
	}
	seen := map[string]bool{}
	requests, err := b.Client.Pages(ctx, first, func(p Page) error {
		m.Query.Fetched += len(p.Events)
		var batch []Event
		for _, raw := range p.Events {
			e, err := ParseEvent(raw)
			if err != nil {
				return fmt.Errorf("GitLab API returned an invalid event: %w", err)
			}
			if !isDigits(e.ID) {
				// The API returns events saved to the database, whose ids
				// are numbers; only streaming-only events have other ids.
				return fmt.Errorf("GitLab API returned an invalid event: id %q is not a number", e.ID)
			}
			if e.CreatedAt.Before(w.From) || !e.CreatedAt.Before(w.To) || seen[e.ID] {
				continue // outside the window (inclusive API bounds), or repeated
			}
			seen[e.ID] = true
			batch = append(batch, e)
		}
		objs, written, present, err := b.store(ctx, source, batch)
		m.Objects = append(m.Objects, objs...)
		m.Written += written
		m.Present += present
		return err
	})
	res.Requests = requests
	m.Requests = requests
	if err != nil {
		res.Err = fmt.Errorf("window %s of %s: %w", w.Start.Format(time.RFC3339), b.Scope, err)
		log.ErrorContext(ctx, "gitlab backfill: window failed", "err", err)
		return res
	}
	sort.Slice(m.Objects, func(i, j int) bool { return m.Objects[i].Key < m.Objects[j].Key })
	m.Events = len(m.Objects)
	m.CompletedAt = b.now().UTC()
	if err := archive.WriteManifest(ctx, b.Store, m); err != nil {
		res.Err = fmt.Errorf("write manifest of window %s: %w", w.Start.Format(time.RFC3339), err)
		return res
	}
	res.Events, res.Written, res.Present = m.Events, m.Written, m.Present
	log.InfoContext(ctx, "gitlab backfill: window archived", "events", m.Events, "written", m.Written, "present", m.Present, "requests", requests)
	return res
}

// store writes one page's events and describes the archived objects. For an
// event already in the archive (streamed, or an earlier run) the manifest
// records the hash of the object as stored, which is what verification reads.
func (b *Backfill) store(ctx context.Context, source string, events []Event) (objs []ManifestObject, written, present int, err error) {
	type out struct {
		obj   ManifestObject
		wrote bool
		err   error
	}
	outs := make([]out, len(events))
	var g errgroup.Group
	g.SetLimit(storeConcurrency)
	for i, e := range events {
		g.Go(func() error {
			key := e.Key(source)
			body := []byte(e.Raw)
			wrote, err := b.Store.PutIfAbsent(ctx, key, body, nil)
			if err == nil && !wrote {
				body, err = b.Store.Get(ctx, key)
			}
			if err != nil {
				outs[i] = out{err: fmt.Errorf("store event %s: %w", e.ID, err)}
				return nil // every failure is reported, not only the first
			}
			sum := sha256.Sum256(body)
			outs[i] = out{obj: ManifestObject{Key: key, ID: e.ID, Bytes: len(body), SHA256: hex.EncodeToString(sum[:])}, wrote: wrote}
			return nil
		})
	}
	_ = g.Wait() // the goroutines report through outs
	var errs []error
	for _, o := range outs {
		if o.err != nil {
			errs = append(errs, o.err)
			continue
		}
		objs = append(objs, o.obj)
		if o.wrote {
			written++
		} else {
			present++
		}
	}
	return objs, written, present, errors.Join(errs...)
}
