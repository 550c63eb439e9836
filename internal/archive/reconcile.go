package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"
)

// Reconcile removes trailfill's copies of events that native delivery brought
// after a backfill (CloudTrail's redelivery): for each window, every
// trailfill trail file that holds events a native file holds is replaced by
// a new piece without them (or none, when nothing is left), and the window's
// manifest is updated. Native files are never touched.
//
// It acts only on an object that carries trailfill's own key name (PieceKey),
// the piece marker set when it was created (PieceMarker: native files never
// have it, and the deployed roles cannot add it to an existing object), and
// the SHA-256 its window's manifest records: a forged manifest cannot make it
// delete anything else. It deletes objects under AWSLogs/, which the deployed
// roles may not: it runs with an operator's credentials.
//
// Crash safety: before changing anything in a window it writes an intent
// record (trailfill/reconcile/<account>/<region>/<window>.json) holding the
// replacement pieces; a later run finishes every intent it finds before
// anything else, so a crash loses nothing and leaves no duplicate behind.

// ReconcileOptions say what Reconcile does for one partition.
type ReconcileOptions struct {
	Account, Region string
	Windows         []Window // the windows of the range
	OrgID           string
	NativeLookahead time.Duration // as NativeLookahead reads it: 0 a day, negative none
	DryRun          bool          // report what would change, change nothing
	Now             func() time.Time
	Logger          *slog.Logger
}

// ReconcileReport is what Reconcile did (or would do) in one partition.
type ReconcileReport struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	// Windows with duplicated events, and how many events trailfill's files
	// held that native files hold too.
	Windows    int `json:"windows"`
	Duplicated int `json:"duplicated"`
	// Replaced trailfill files, and the new pieces written in their place.
	Removed []string `json:"removed"`
	Written []string `json:"written"`
	// Refused are objects a manifest lists that Reconcile did not touch,
	// with the reason (not trailfill's name, no marker, another SHA-256).
	Refused []ObjectProblem `json:"refused"`
	// Resumed counts intents of an earlier, interrupted run finished first.
	Resumed int `json:"resumed"`
}

const reconcileRoot = "trailfill/reconcile/"

func reconcilePrefix(account, region string) string {
	return reconcileRoot + account + "/" + region + "/"
}

// reconcileIntent is written before a window is changed.
type reconcileIntent struct {
	Version     int                 `json:"version"`
	Account     string              `json:"account"`
	Region      string              `json:"region"`
	WindowStart time.Time           `json:"window_start"`
	Remove      []ManifestObject    `json:"remove"` // trailfill's pieces to delete
	Write       []reconcileNewPiece `json:"write"`  // their replacements
	Duplicated  int                 `json:"duplicated"`
}

type reconcileNewPiece struct {
	ManifestObject
	Body []byte `json:"body"` // the gzip trail file (base64 in JSON)
}

func (i *reconcileIntent) key() string {
	return WindowManifestKey(reconcilePrefix(i.Account, i.Region), i.WindowStart)
}

// Reconcile reconciles one partition of s over o.Windows.
func Reconcile(ctx context.Context, s Store, o ReconcileOptions) (*ReconcileReport, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.NativeLookahead = NativeLookahead(o.NativeLookahead)
	rep := &ReconcileReport{Account: o.Account, Region: o.Region, Removed: []string{}, Written: []string{}, Refused: []ObjectProblem{}}
	if len(o.Windows) == 0 {
		return rep, nil
	}
	// First the intents an interrupted run left.
	if !o.DryRun {
		keys, err := s.List(ctx, reconcilePrefix(o.Account, o.Region))
		if err != nil {
			return nil, fmt.Errorf("list the reconcile intents of %s/%s: %w", o.Account, o.Region, err)
		}
		for _, k := range keys {
			b, err := s.Get(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("read reconcile intent %s: %w", k, err)
			}
			var in reconcileIntent
			if err := json.Unmarshal(b, &in); err != nil || in.key() != k {
				return nil, fmt.Errorf("reconcile intent %s is unreadable or was moved (delete it only if you know its window is consistent): %v", k, err)
			}
			if err := applyIntent(ctx, s, &in, o, rep); err != nil {
				return nil, err
			}
			rep.Resumed++
		}
	}

	from, to := o.Windows[0].Start, o.Windows[len(o.Windows)-1].Start.Add(time.Second)
	manifests, err := PartitionManifests(ctx, s, o.Account, o.Region, from, to)
	if err != nil {
		return nil, fmt.Errorf("read the manifests of %s/%s: %w", o.Account, o.Region, err)
	}
	var starts []time.Time
	for _, m := range manifests {
		for _, obj := range m.Objects {
			if f, ok := ParseTrailFileName(obj.Key); ok && f.Piece >= 0 {
				starts = append(starts, f.SliceStart)
			}
		}
	}
	scan := NewTrailScanner(s, ScanOptions{OrgID: o.OrgID, Account: o.Account, Region: o.Region, Native: true, Lookahead: o.NativeLookahead}, starts)
	for _, w := range o.Windows {
		m := manifests[w.Start.Unix()]
		if m == nil {
			continue
		}
		in, err := planWindow(ctx, s, scan, m, rep)
		if err != nil {
			return nil, err
		}
		if in == nil {
			continue
		}
		rep.Windows++
		rep.Duplicated += in.Duplicated
		if o.DryRun {
			for _, r := range in.Remove {
				rep.Removed = append(rep.Removed, r.Key)
			}
			for _, n := range in.Write {
				rep.Written = append(rep.Written, n.Key)
			}
			continue
		}
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode reconcile intent: %w", err)
		}
		if err := s.Put(ctx, in.key(), b); err != nil {
			return nil, fmt.Errorf("write reconcile intent %s: %w", in.key(), err)
		}
		if err := applyIntent(ctx, s, in, o, rep); err != nil {
			return nil, err
		}
	}
	sort.Strings(rep.Removed)
	sort.Strings(rep.Written)
	return rep, nil
}

// planWindow decides what reconciling a window changes; nil: nothing.
func planWindow(ctx context.Context, s Store, scan *TrailScanner, m *Manifest, rep *ReconcileReport) (*reconcileIntent, error) {
	type slicePlan struct {
		start  time.Time
		remove []ManifestObject
		keep   []json.RawMessage
		next   int
	}
	plans := map[int64]*slicePlan{}
	dup := 0
	for _, obj := range m.Objects {
		f, ok := ParseTrailFileName(obj.Key)
		if !ok || f.Piece < 0 || f.Account != m.Account || f.Region != m.Region {
			rep.Refused = append(rep.Refused, ObjectProblem{Key: obj.Key, Problem: "not a name trailfill gives its trail files"})
			continue
		}
		c, err := scan.Slice(ctx, f.SliceStart)
		if err != nil {
			return nil, err
		}
		var found *PieceInfo
		for _, p := range c.PieceList() {
			if p.Key == obj.Key {
				found = &p
			}
		}
		if _, _, both := c.Counts(); found == nil || both == 0 {
			continue // gone, or no event of the slice's pieces is native: nothing to read
		}
		if found.SHA256 != obj.SHA256 {
			rep.Refused = append(rep.Refused, ObjectProblem{Key: obj.Key, Problem: "its SHA-256 is not the one its manifest records"})
			continue
		}
		body, err := s.Get(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		if SHA256Hex(body) != obj.SHA256 {
			rep.Refused = append(rep.Refused, ObjectProblem{Key: obj.Key, Problem: "its SHA-256 is not the one its manifest records"})
			continue
		}
		recs, err := DecodeTrailFile(body)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", obj.Key, err)
		}
		var keep []json.RawMessage
		for _, r := range recs {
			var h struct {
				ID string `json:"eventID"`
			}
			if err := json.Unmarshal(r, &h); err != nil {
				return nil, fmt.Errorf("decode a record of %s: %w", obj.Key, err)
			}
			if !c.InNative(h.ID) {
				keep = append(keep, r)
			}
		}
		if len(keep) == len(recs) {
			continue // no duplicate in this piece
		}
		info, err := s.Head(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("read the metadata of %s: %w", obj.Key, err)
		}
		if !IsPiece(info.Metadata) {
			rep.Refused = append(rep.Refused, ObjectProblem{Key: obj.Key, Problem: "it lacks trailfill's marker (x-amz-meta-trailfill): not trailfill's"})
			continue
		}
		dup += len(recs) - len(keep)
		sp := plans[f.SliceStart.Unix()]
		if sp == nil {
			sp = &slicePlan{start: f.SliceStart, next: c.NextIndex()}
			plans[f.SliceStart.Unix()] = sp
		}
		sp.remove = append(sp.remove, obj)
		sp.keep = append(sp.keep, keep...)
	}
	if len(plans) == 0 {
		return nil, nil
	}
	in := &reconcileIntent{Version: 1, Account: m.Account, Region: m.Region, WindowStart: m.WindowStart, Duplicated: dup}
	starts := make([]int64, 0, len(plans))
	for k := range plans {
		starts = append(starts, k)
	}
	sort.Slice(starts, func(a, b int) bool { return starts[a] < starts[b] })
	for _, k := range starts {
		sp := plans[k]
		in.Remove = append(in.Remove, sp.remove...)
		if len(sp.keep) == 0 {
			continue
		}
		body, err := EncodeTrailFile(sp.keep)
		if err != nil {
			return nil, err
		}
		key := PieceKey(m.OrgID, m.Account, m.Region, sp.start, sp.next)
		in.Write = append(in.Write, reconcileNewPiece{ManifestObject: ManifestObject{Key: key, Events: len(sp.keep), Bytes: len(body), SHA256: SHA256Hex(body)}, Body: body})
	}
	return in, nil
}

// applyIntent makes a window what its intent says, step by step, each step
// safe to repeat: create the new pieces, rewrite the manifest, delete the old
// pieces, delete the intent.
func applyIntent(ctx context.Context, s Store, in *reconcileIntent, o ReconcileOptions, rep *ReconcileReport) error {
	where := fmt.Sprintf("%s/%s window %s", in.Account, in.Region, in.WindowStart.Format(time.RFC3339))
	for _, n := range in.Write {
		wrote, err := s.PutIfAbsent(ctx, n.Key, n.Body, PieceMarker)
		if err != nil {
			return fmt.Errorf("reconcile %s: write %s: %w", where, n.Key, err)
		}
		if !wrote {
			// Ours from an interrupted run, or another writer's.
			body, err := s.Get(ctx, n.Key)
			if err != nil {
				return fmt.Errorf("reconcile %s: read %s: %w", where, n.Key, err)
			}
			if SHA256Hex(body) != n.SHA256 {
				return fmt.Errorf("reconcile %s: %s was written by someone else (a backfill running now?): run reconcile again once no backfill writes this range", where, n.Key)
			}
		}
		rep.Written = append(rep.Written, n.Key)
	}
	m, err := ReadManifest(ctx, s, ManifestKey(in.Account, in.Region, in.WindowStart))
	if err != nil {
		return fmt.Errorf("reconcile %s: read its manifest: %w", where, err)
	}
	removed := map[string]bool{}
	for _, r := range in.Remove {
		removed[r.Key] = true
	}
	objs := []ManifestObject{}
	seen := map[string]bool{}
	for _, obj := range m.Objects {
		if !removed[obj.Key] {
			objs = append(objs, obj)
			seen[obj.Key] = true
		}
	}
	for _, n := range in.Write {
		if !seen[n.Key] {
			objs = append(objs, n.ManifestObject)
		}
	}
	sort.Slice(objs, func(a, b int) bool { return objs[a].Key < objs[b].Key })
	m.Objects = objs
	m.Recovered = 0
	for _, obj := range objs {
		m.Recovered += obj.Events
	}
	m.Events = m.Native + m.Recovered // reconciled: no event is in both any more
	m.CompletedAt = o.Now().UTC().Truncate(time.Second)
	if err := WriteManifest(ctx, s, m); err != nil {
		return fmt.Errorf("reconcile %s: write its manifest: %w", where, err)
	}
	for _, r := range in.Remove {
		// Checked again: the intent names only objects that were trailfill's.
		info, err := s.Head(ctx, r.Key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted before an interruption
		}
		if err != nil {
			return fmt.Errorf("reconcile %s: read the metadata of %s: %w", where, r.Key, err)
		}
		if !IsPiece(info.Metadata) || info.Size != int64(r.Bytes) {
			return fmt.Errorf("reconcile %s: %s is no longer the trail file the intent recorded: left alone; check the window", where, r.Key)
		}
		if err := s.Delete(ctx, r.Key); err != nil {
			return fmt.Errorf("reconcile %s: delete %s: %w", where, r.Key, err)
		}
		rep.Removed = append(rep.Removed, r.Key)
		o.Logger.Info("reconcile: removed trailfill's copy of events native delivery holds", "key", r.Key)
	}
	if err := s.Delete(ctx, in.key()); err != nil {
		return fmt.Errorf("reconcile %s: delete its intent: %w", where, err)
	}
	return nil
}
