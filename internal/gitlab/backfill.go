package gitlab

import (
	"context"
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

// Backfill copies the audit events of one scope from the API into the archive,
// window by window, in the layout it names. Safe to re-run: windows with a
// manifest of that layout are skipped and events are written with PutIfAbsent
// (never rewritten).
//
// In the default layout each event is stored as the API returned it, at
// GitLab/<source>/YYYY/MM/DD/<id>.json. In the gitlab-s3 layout each event is
// converted to the streaming payload (StreamingFromREST) and stored at its
// GitLabS3Key, unless the archive already holds it: GitLab's own per-event or
// batched objects, or an earlier run's, found by id in the folders of the
// months that can hold it (see NativeMonths). GitLab's objects are only read.
type Backfill struct {
	Client *Client
	Store  archive.Store
	// Layout of the archive (LayoutDefault if empty).
	Layout Layout
	// Source is the <source> key segment of the default layout
	// (DefaultSource if empty); the gitlab-s3 layout has none.
	Source string
	Scope  Scope
	Window time.Duration // DefaultWindow if 0
	// NativeLookahead is how many months after an event's month are searched
	// for GitLab's own copy of it in the gitlab-s3 layout: 1 to
	// MaxNativeLookahead, DefaultNativeLookahead if 0 (the next month is
	// always needed: an event of a month's last second is uploaded in the
	// next).
	NativeLookahead int
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
	Native   int // of Present: delivered by GitLab's own S3 destination
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
	Native   int `json:"native"`
	Requests int `json:"requests"`
}

func (b *Backfill) source() string {
	if b.Source == "" {
		return DefaultSource
	}
	return b.Source
}

// manifestSource is the manifest's source: none in the gitlab-s3 layout.
func (b *Backfill) manifestSource() string {
	if b.Layout.orDefault() == LayoutGitLabS3 {
		return ""
	}
	return b.source()
}

func (b *Backfill) lookahead() int {
	if b.NativeLookahead == 0 {
		return DefaultNativeLookahead
	}
	return b.NativeLookahead
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
	if err := b.Layout.Validate(); err != nil {
		return err
	}
	if err := ValidateSource(b.source()); err != nil {
		return err
	}
	if err := ValidateNativeLookahead(b.lookahead()); err != nil {
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
	var index *nativeIndex
	if b.Layout.orDefault() == LayoutGitLabS3 {
		index = newNativeIndex(b.Store, start)
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
				results <- b.runWindow(ctx, w, done[w.Start.Unix()], index)
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
			sum.Native += r.Native
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

// manifests reads the scope's manifests of the layout whose window starts in
// the range, keyed by window start (Unix seconds). One listing serves the
// whole range. Manifests of the other layout are elsewhere and not read.
func (b *Backfill) manifests(ctx context.Context, start, end time.Time) (map[int64]*Manifest, error) {
	lo := archive.AlignDown(start.UTC(), b.window())
	ms, err := archive.Index(ctx, b.Store, b.Layout.ManifestPrefix(b.manifestSource(), b.Scope), lo, end, DecodeManifest)
	if err != nil {
		return nil, fmt.Errorf("read the manifests to resume: %w", err)
	}
	return ms, nil
}

// runWindow archives one window unless prev already covers it.
func (b *Backfill) runWindow(ctx context.Context, w archive.Window, prev *Manifest, index *nativeIndex) WindowResult {
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
		Layout:      b.Layout.orDefault(),
		Source:      b.manifestSource(),
		Archive:     b.Store.String(),
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
		objs, c, err := b.store(ctx, source, batch, index)
		m.Objects = append(m.Objects, objs...)
		m.Written += c.written
		m.Present += c.present
		m.Native += c.native
		return err
	})
	res.Requests = requests
	m.Requests = requests
	if err != nil {
		res.Err = fmt.Errorf("window %s of %s: %w", w.Start.Format(time.RFC3339), b.Scope, err)
		log.ErrorContext(ctx, "gitlab backfill: window failed", "err", err)
		return res
	}
	sort.Slice(m.Objects, func(i, j int) bool {
		if m.Objects[i].Key != m.Objects[j].Key {
			return m.Objects[i].Key < m.Objects[j].Key
		}
		return m.Objects[i].ID < m.Objects[j].ID
	})
	m.Events = len(m.Objects)
	m.CompletedAt = b.now().UTC()
	if err := archive.WriteManifest(ctx, b.Store, m); err != nil {
		res.Err = fmt.Errorf("write manifest of window %s: %w", w.Start.Format(time.RFC3339), err)
		return res
	}
	res.Events, res.Written, res.Present, res.Native = m.Events, m.Written, m.Present, m.Native
	log.InfoContext(ctx, "gitlab backfill: window archived", "layout", m.Layout.String(), "events", m.Events, "written", m.Written, "present", m.Present, "native", m.Native, "requests", requests)
	return res
}

// storeCounts counts the events of one page by outcome.
type storeCounts struct{ written, present, native int }

// store writes one page's events and describes the objects that hold them.
// For an event already in the archive (streamed, GitLab's own, or an earlier
// run) the manifest records the hash of the object as stored, which is what
// verification reads.
func (b *Backfill) store(ctx context.Context, source string, events []Event, index *nativeIndex) ([]ManifestObject, storeCounts, error) {
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
			obj, wrote, err := b.storeOne(ctx, source, e, index)
			if err != nil {
				err = fmt.Errorf("store event %s: %w", e.ID, err)
			}
			outs[i] = out{obj: obj, wrote: wrote, err: err}
			return nil // every failure is reported, not only the first
		})
	}
	_ = g.Wait() // the goroutines report through outs
	var (
		objs []ManifestObject
		c    storeCounts
		errs []error
	)
	for _, o := range outs {
		if o.err != nil {
			errs = append(errs, o.err)
			continue
		}
		objs = append(objs, o.obj)
		switch {
		case o.wrote:
			c.written++
		case o.obj.Native:
			c.present++
			c.native++
		default:
			c.present++
		}
	}
	return objs, c, errors.Join(errs...)
}

// storeOne archives one event in the backfill's layout and returns the
// object that holds it and whether this call wrote it.
func (b *Backfill) storeOne(ctx context.Context, source string, e Event, index *nativeIndex) (ManifestObject, bool, error) {
	body := []byte(e.Raw)
	key := e.Key(source)
	var meta archive.Metadata
	if index != nil { // gitlab-s3
		conv, err := StreamingFromREST(e.Raw)
		if err != nil {
			return ManifestObject{}, false, err
		}
		if e, err = ParseEvent(conv); err != nil {
			return ManifestObject{}, false, fmt.Errorf("converted event: %w", err)
		}
		body, key = conv, GitLabS3Key(e)
		ref, found, err := index.lookup(ctx, e, key, b.lookahead())
		if err != nil {
			return ManifestObject{}, false, err
		}
		if found && ref.batch {
			// In one of GitLab's batches, read when the index was built.
			return ManifestObject{Key: ref.key, ID: e.ID, Bytes: ref.size, SHA256: ref.sha256, Native: true}, false, nil
		}
		if found {
			// Already archived, by GitLab or an earlier run: never written
			// again, only read to record its hash.
			stored, err := b.Store.Get(ctx, ref.key)
			if err != nil {
				return ManifestObject{}, false, err
			}
			return manifestObject(ref.key, e.ID, stored, ref.native(e.CreatedAt.UnixMilli())), false, nil
		}
		meta = archive.Metadata{MetaOrigin: OriginREST}
	}
	wrote, err := b.Store.PutIfAbsent(ctx, key, body, meta)
	if err == nil && !wrote {
		body, err = b.Store.Get(ctx, key)
	}
	if err != nil {
		return ManifestObject{}, false, err
	}
	return manifestObject(key, e.ID, body, false), wrote, nil
}

func manifestObject(key, id string, body []byte, native bool) ManifestObject {
	return ManifestObject{Key: key, ID: id, Bytes: len(body), SHA256: archive.SHA256Hex(body), Native: native}
}
