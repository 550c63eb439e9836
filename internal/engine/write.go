package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
)

// writeSlice writes the events this run read of a slice that the archive
// does not hold yet, as the slice's next piece. final: everything pending in
// the slice is read and its window may complete; otherwise (a soft stop) the
// run writes what it read completely and the rest is for the next invocation.
func (r *run) writeSlice(ctx context.Context, s *slice, final bool) error {
	// The slice is complete (or the pagers have stopped): nothing appends to
	// its spool any more.
	r.mu.Lock()
	covered, sp := s.covered, s.spool
	r.mu.Unlock()
	content, err := r.scanner.Slice(ctx, s.start)
	if err != nil {
		return fmt.Errorf("read the trail files that can hold events of %s/%s slice %s (re-run to resume): %w", r.job.Account, r.job.Region, s.start.Format(time.RFC3339), err)
	}
	for _, p := range content.PieceList() {
		if p.Unreadable != "" {
			return fmt.Errorf("trailfill's trail file %s cannot be read (%s): its events are unknown, so slice %s of %s/%s cannot be completed without risking duplicates; restore the file (S3 versioning) or delete it and the manifest of its window, then re-run",
				p.Key, p.Unreadable, s.start.Format(time.RFC3339), r.job.Account, r.job.Region)
		}
	}
	for _, k := range content.UnreadableNative {
		r.warnOnce(k, "a native trail file that can hold events of this slice cannot be read: its events are not taken into account (trailfill verify reports it)", "key", k)
	}
	var recs []spooledRecord
	for _, iv := range covered {
		if sp == nil {
			break
		}
		rs, err := sp.records(iv.From, iv.To)
		if err != nil {
			return err
		}
		recs = append(recs, rs...)
	}
	var missing []spooledRecord
	native, present := 0, 0
	for _, rec := range recs {
		switch {
		case content.InNative(rec.id):
			native++
		case content.Has(rec.id):
			present++
		default:
			missing = append(missing, rec)
		}
	}
	if len(missing) > 0 {
		more, err := r.createPiece(ctx, s, content, missing)
		if err != nil {
			return err
		}
		present += more
	}

	r.mu.Lock()
	r.res.Native += int64(native)
	r.res.Present += int64(present)
	w := s.win
	for _, iv := range covered {
		w.read = append(w.read, contract.Span{From: iv.From, To: iv.To, Provisional: !r.settled(iv.To)})
	}
	s.closeSpool()
	if !final {
		s.state = partial
		r.mu.Unlock()
		return nil
	}
	s.state = written
	w.slicesLeft--
	last := w.slicesLeft == 0
	r.mu.Unlock()
	if !last {
		return nil
	}
	return r.finish(ctx, w)
}

// createPiece writes records as the slice's next piece with a create-only
// write. When another run created that piece first (412), its events are
// taken off and the rest goes to the piece after, until nothing is missing.
// It returns how many of the records another run's pieces held.
func (r *run) createPiece(ctx context.Context, s *slice, content *archive.SliceContent, recs []spooledRecord) (present int, err error) {
	where := fmt.Sprintf("%s/%s slice %s", r.job.Account, r.job.Region, s.start.Format(time.RFC3339))
	for index := content.NextIndex(); len(recs) > 0; index = content.NextIndex() {
		if index >= archive.MaxPieces {
			return present, fmt.Errorf("%s already has %d pieces: reconcile the archive (trailfill reconcile) before backfilling it again", where, archive.MaxPieces)
		}
		key := archive.PieceKey(r.cfg.OrgID, r.job.Account, r.job.Region, s.start, index)
		raw := make([]json.RawMessage, len(recs))
		ids := make([]string, len(recs))
		for i, rec := range recs {
			raw[i], ids[i] = rec.body, rec.id
		}
		body, err := archive.EncodeTrailFile(raw)
		if err != nil {
			return present, fmt.Errorf("encode %s: %w", where, err)
		}
		wrote, err := r.cfg.Store.PutIfAbsent(ctx, key, body, archive.PieceMarker)
		if err != nil {
			return present, fmt.Errorf("archive %s (re-run to resume): %w", where, err)
		}
		if wrote {
			content.AddPiece(archive.PieceInfo{Key: key, Index: index, Events: len(recs), Bytes: len(body), SHA256: archive.SHA256Hex(body)}, ids)
			r.cfg.Progress.Files.Add(1)
			r.cfg.Progress.Events.Add(int64(len(recs)))
			r.mu.Lock()
			r.res.Files++
			r.res.Events += int64(len(recs))
			r.mu.Unlock()
			return present, nil
		}
		// Another run created this piece since the scan: what it holds is archived.
		info, theirIDs, err := archive.ReadPiece(ctx, r.cfg.Store, key, index)
		if err != nil {
			return present, fmt.Errorf("another run wrote the piece first (re-run to resume): %w", err)
		}
		if info.Unreadable != "" {
			return present, fmt.Errorf("read %s, which another run wrote: %s", key, info.Unreadable)
		}
		content.AddPiece(info, theirIDs)
		held := make(map[string]bool, len(theirIDs))
		for _, id := range theirIDs {
			held[id] = true
		}
		rest := recs[:0:0]
		for _, rec := range recs {
			if held[rec.id] {
				present++
			} else {
				rest = append(rest, rec)
			}
		}
		r.log.Info("another run wrote the next piece of the slice first; writing only what it lacks", "slice", s.start, "piece", index, "left", len(rest))
		recs = rest
	}
	return present, nil
}

// finish writes a window's manifest: its coverage (what the manifest holds
// now, and what this and earlier invocations read), and every piece of its
// slices with its SHA-256. Several runs may finish the same window at once
// (overlapping ranges, a re-run beside a deployed execution): the manifest
// is amended by compare-and-swap (archive.Update), so none of them loses
// what another one covered or wrote.
func (r *run) finish(ctx context.Context, w *window) error {
	r.mu.Lock()
	spans := coalesceSpans(w.read)
	r.mu.Unlock()
	var ws windowScan
	for _, ss := range w.slices {
		c, err := r.scanner.Slice(ctx, ss)
		if err != nil {
			return fmt.Errorf("read the trail files of %s/%s window %s (re-run to resume): %w", r.job.Account, r.job.Region, w.Start.Format(time.RFC3339), err)
		}
		native, _, b := c.Counts()
		ws.native += native
		ws.both += b
		for _, p := range c.PieceList() {
			ws.objects = append(ws.objects, archive.ManifestObject{Key: p.Key, Events: p.Events, Bytes: p.Bytes, SHA256: p.SHA256})
		}
	}
	key := archive.ManifestKey(r.job.Account, r.job.Region, w.Start)
	listed := false
	if r.planned != nil {
		_, listed = r.planned.Manifests[w.Start.Unix()]
	}
	var m *archive.Manifest
	err := archive.Update(ctx, r.cfg.Store, key, listed, func(old []byte) ([]byte, error) {
		var cur *archive.Manifest
		if old != nil {
			var err error
			if cur, err = archive.DecodeCloudTrailManifest(key, old); err != nil {
				return nil, err
			}
			if cur.OrgID != r.cfg.OrgID {
				return nil, fmt.Errorf("the archive's manifest %s is of the layout of organization %q, this run writes %q: use the same --org-id as the earlier runs (one archive holds one layout)", key, cur.OrgID, r.cfg.OrgID)
			}
		}
		m = r.windowManifest(w, cur, spans, ws)
		return archive.EncodeManifest(m)
	})
	if err != nil {
		return fmt.Errorf("write manifest of window %s in %s/%s (re-run to resume): %w", w.Start.Format(time.RFC3339), r.job.Account, r.job.Region, err)
	}
	for _, ss := range w.slices {
		r.scanner.Release(ss)
	}
	r.mu.Lock()
	w.done = true
	r.res.Windows++
	if !m.Settled() {
		r.res.Provisional++
	}
	if m.Settled() && m.Covers(w.From, w.To) {
		r.learned = append(r.learned, m.Covered...)
	}
	r.mu.Unlock()
	r.cfg.Progress.WindowsDone.Add(1)
	return nil
}

// windowScan is what the archive holds of a window's slices, as this run
// scanned and wrote them.
type windowScan struct {
	native, both int                      // events in native files; of those, also in pieces
	objects      []archive.ManifestObject // trailfill's pieces
}

// windowManifest is the manifest of a window: what cur (the manifest there
// now, if any) covers and lists, with what this run read and scanned. A
// manifest of another selection of events (--trail with other selectors)
// lends its pieces but not its coverage: the window is this selection's
// once this run has read it.
func (r *run) windowManifest(w *window, cur *archive.Manifest, spans []contract.Span, ws windowScan) *archive.Manifest {
	m := &archive.Manifest{
		Version:     archive.ManifestVersion,
		Account:     r.job.Account,
		Region:      r.job.Region,
		OrgID:       r.cfg.OrgID,
		WindowStart: w.Start,
		Filter:      r.filter,
		Objects:     []archive.ManifestObject{},
		Query: archive.ManifestQuery{
			API:        "cloudtrail:LookupEvents",
			StartTime:  w.From,
			EndTime:    w.To.Add(-time.Second),
			MaxResults: PageSize,
		},
		CompletedAt: r.now.Truncate(time.Second),
	}
	var covered, provisional []archive.Interval
	objects := map[string]archive.ManifestObject{}
	if cur != nil {
		if cur.Filter == "" || cur.Filter == r.filter {
			covered = append(covered, cur.Covered...)
			provisional = append(provisional, cur.Provisional...)
		}
		// Pieces are create-only: one that another run listed is there
		// (reconcile, which removes pieces, runs when no backfill does).
		for _, o := range cur.Objects {
			objects[o.Key] = o
		}
	}
	covered = append(covered, intervals(spans, true)...)
	m.Covered = archive.Coalesce(covered)
	for _, sp := range spans {
		if sp.Provisional {
			provisional = append(provisional, archive.Interval{From: sp.From, To: sp.To})
		}
	}
	for _, iv := range archive.Coalesce(provisional) {
		m.Provisional = append(m.Provisional, archive.Subtract(iv, m.Covered)...)
	}
	hull := archive.Coalesce(append(append([]archive.Interval(nil), m.Covered...), m.Provisional...))
	if len(hull) > 0 {
		m.From, m.To = hull[0].From, hull[len(hull)-1].To
	}
	for _, o := range ws.objects {
		objects[o.Key] = o
	}
	for _, o := range objects {
		m.Objects = append(m.Objects, o)
		m.Recovered += o.Events
	}
	sort.Slice(m.Objects, func(a, b int) bool { return m.Objects[a].Key < m.Objects[b].Key })
	m.Native = ws.native
	m.Events = m.Native + m.Recovered - ws.both
	return m
}

// readSpans are the spans of unfinished windows read completely: the job's
// and this run's, for the next invocation's cursor.
func (r *run) readSpans() []contract.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []contract.Span
	for _, w := range r.windows {
		if !w.done {
			all = append(all, w.read...)
		}
	}
	return coalesceSpans(all)
}
