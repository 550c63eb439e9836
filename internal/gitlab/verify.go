package gitlab

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
)

// VerifyOptions say what Verify checks: the windows of [Start, End) of one
// scope, in one layout, as the backfill cut them.
type VerifyOptions struct {
	Store  archive.Store
	Layout Layout // LayoutDefault if empty
	Source string // DefaultSource if empty (default layout only)
	Scope  Scope
	Start  time.Time
	End    time.Time
	Window time.Duration // DefaultWindow if 0: the --window the backfill used
	// Parallel is how many windows are checked at once (default 8).
	Parallel int
}

// VerifyReport is what Verify found (the document `trailfill gitlab verify
// --json` prints). A window is archived when a manifest of the layout covers
// it and every object it lists is present with the size and SHA-256 the
// manifest records; missing when no manifest of the layout covers it (a
// manifest covering only part of it, from a run whose range ended inside it,
// counts as missing); corrupt when its manifest is unreadable or disagrees
// with itself, or an object it lists is missing or changed.
type VerifyReport struct {
	Archive  string    `json:"archive"`
	Layout   Layout    `json:"layout"`
	Source   string    `json:"source,omitempty"`
	Scope    string    `json:"scope"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Window   string    `json:"window"`
	Complete bool      `json:"complete"`
	Windows  int       `json:"windows"`
	Archived int       `json:"archived"`
	Missing  int       `json:"missing"`
	Corrupt  int       `json:"corrupt"`
	// Events and Objects count what the archived windows hold; Native the
	// events of them that GitLab's own S3 destination delivered.
	Events  int `json:"events"`
	Native  int `json:"native"`
	Objects int `json:"objects"`
	// MissingWindows are the aligned starts of the missing windows.
	MissingWindows []time.Time             `json:"missing_windows"`
	CorruptWindows []archive.CorruptWindow `json:"corrupt_windows"`
	// OtherLayoutWindows are missing windows that a manifest of the other
	// layout covers: archived, but not in this layout.
	OtherLayoutWindows []time.Time `json:"other_layout_windows"`
}

// ExitCode is the exit code of `trailfill gitlab verify`: 0 when every window
// is archived, 1 otherwise.
func (r *VerifyReport) ExitCode() int {
	if r.Complete {
		return 0
	}
	return 1
}

// Verify checks the archive of one scope over the windows of [Start, End) in
// one layout: one LIST of the layout's manifests (and, for windows missing
// there, one LIST and a GET per missing window of the other layout's, to name
// windows archived only there), one GET per manifest in the
// range, one LIST per folder holding a listed object (existence is judged by
// listings, never by a failed GET, which S3 answers with 403 to a caller
// without s3:ListBucket), and one GET per listed object (several events of a
// GitLab batch share one). An error means the archive could not be read, not
// that it is incomplete.
func Verify(ctx context.Context, o VerifyOptions) (*VerifyReport, error) {
	if o.Store == nil {
		return nil, errors.New("verify needs an archive store")
	}
	layout, err := ParseLayout(string(o.Layout))
	if err != nil {
		return nil, err
	}
	source := o.Source
	if source == "" {
		source = DefaultSource
	}
	if err := ValidateSource(source); err != nil {
		return nil, err
	}
	if err := o.Scope.Validate(); err != nil {
		return nil, err
	}
	window := o.Window
	if window == 0 {
		window = DefaultWindow
	}
	if err := ValidateWindow(window); err != nil {
		return nil, err
	}
	if !o.End.After(o.Start) {
		return nil, fmt.Errorf("end %s is not after start %s", o.End.Format(time.RFC3339), o.Start.Format(time.RFC3339))
	}
	mSource := source
	if layout == LayoutGitLabS3 {
		mSource = ""
	}
	windows := archive.Windows(o.Start, o.End, window)
	r := &VerifyReport{
		Archive: o.Store.String(), Layout: layout, Source: mSource, Scope: o.Scope.Segment(),
		Start: o.Start.UTC(), End: o.End.UTC(), Window: window.String(), Windows: len(windows),
		MissingWindows: []time.Time{}, CorruptWindows: []archive.CorruptWindow{}, OtherLayoutWindows: []time.Time{},
	}
	from, to := windows[0].Start, windows[len(windows)-1].Start.Add(time.Second)
	keys, err := archive.ManifestKeys(ctx, o.Store, layout.ManifestPrefix(mSource, o.Scope), from, to)
	if err != nil {
		return nil, fmt.Errorf("list the manifests of %s: %w", o.Scope, err)
	}

	type result struct {
		m        *Manifest
		problems []archive.ObjectProblem
	}
	results := make([]*result, len(windows))
	lists := &folderLists{store: o.Store, keys: map[string]map[string]bool{}}
	parallel := o.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, w := range windows {
		key, ok := keys[w.Start.Unix()]
		if !ok {
			continue
		}
		g.Go(func() error {
			m, problems, err := checkManifest(gctx, o.Store, lists, key)
			results[i] = &result{m, problems}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	var missing []archive.Window
	for i, w := range windows {
		res := results[i]
		switch {
		case res == nil || (len(res.problems) == 0 && !res.m.Covers(w.From, w.To)):
			r.Missing++
			r.MissingWindows = append(r.MissingWindows, w.Start)
			missing = append(missing, w)
		case len(res.problems) > 0:
			r.Corrupt++
			r.CorruptWindows = append(r.CorruptWindows, archive.CorruptWindow{Window: w.Start, Manifest: keys[w.Start.Unix()], Problems: res.problems})
		default:
			r.Archived++
			r.Events += res.m.Events
			r.Native += res.m.Native
			r.Objects += len(res.m.Objects)
		}
	}
	r.Complete = r.Missing == 0 && r.Corrupt == 0
	if len(missing) > 0 {
		if err := otherLayoutWindows(ctx, o.Store, layout, source, o.Scope, missing, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// otherLayoutWindows adds to r the missing windows that a manifest of the
// other layout covers.
func otherLayoutWindows(ctx context.Context, s archive.Store, layout Layout, source string, scope Scope, missing []archive.Window, r *VerifyReport) error {
	other, oSource := LayoutGitLabS3, ""
	if layout == LayoutGitLabS3 {
		other, oSource = LayoutDefault, source
	}
	from, to := missing[0].Start, missing[len(missing)-1].Start.Add(time.Second)
	keys, err := archive.ManifestKeys(ctx, s, other.ManifestPrefix(oSource, scope), from, to)
	if err != nil {
		return fmt.Errorf("list the %s manifests of %s: %w", other, scope, err)
	}
	// Only the missing windows' manifests are read; one that cannot be
	// decoded covers nothing (it is the other layout's to verify).
	want := map[int64]string{}
	for _, w := range missing {
		if k, ok := keys[w.Start.Unix()]; ok {
			want[w.Start.Unix()] = k
		}
	}
	ms, err := archive.ReadManifests(ctx, s, want, func(key string, body []byte) (*Manifest, error) {
		m, err := DecodeManifest(key, body)
		if err != nil {
			return nil, nil
		}
		return m, nil
	})
	if err != nil {
		return fmt.Errorf("read the %s manifests of %s: %w", other, scope, err)
	}
	for _, w := range missing {
		if m := ms[w.Start.Unix()]; m != nil && m.Covers(w.From, w.To) {
			r.OtherLayoutWindows = append(r.OtherLayoutWindows, w.Start)
		}
	}
	return nil
}

// folderLists lists folders of the archive, each once.
type folderLists struct {
	store archive.Store
	mu    sync.Mutex
	keys  map[string]map[string]bool
}

// exists reports whether key is listed in its folder.
func (f *folderLists) exists(ctx context.Context, key string) (bool, error) {
	folder := key[:strings.LastIndexByte(key, '/')+1]
	f.mu.Lock()
	defer f.mu.Unlock() // listings are few; holding the lock keeps each one single
	set, ok := f.keys[folder]
	if !ok {
		keys, err := f.store.List(ctx, folder)
		if err != nil {
			return false, fmt.Errorf("list %s: %w", folder, err)
		}
		set = make(map[string]bool, len(keys))
		for _, k := range keys {
			set[k] = true
		}
		f.keys[folder] = set
	}
	return set[key], nil
}

// checkManifest reads the manifest at key and checks each object it lists
// (once per object). An unreadable manifest or a missing or changed object is
// a problem of the window; a failed read of the archive is an error.
func checkManifest(ctx context.Context, s archive.Store, lists *folderLists, key string) (*Manifest, []archive.ObjectProblem, error) {
	body, err := s.Get(ctx, key)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, []archive.ObjectProblem{{Key: key, Problem: "manifest deleted while verifying"}}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	m, err := DecodeManifest(key, body)
	if err != nil {
		return nil, []archive.ObjectProblem{{Key: key, Problem: "unreadable manifest: " + err.Error()}}, nil
	}
	var problems []archive.ObjectProblem
	if m.Events != len(m.Objects) {
		problems = append(problems, archive.ObjectProblem{Key: key, Problem: fmt.Sprintf("the manifest counts %d events but lists %d", m.Events, len(m.Objects))})
	}
	checked := map[string]bool{}
	ids := map[string]bool{}
	for _, obj := range m.Objects {
		if ids[obj.ID] {
			problems = append(problems, archive.ObjectProblem{Key: obj.Key, Problem: "event " + obj.ID + " listed twice"})
		}
		ids[obj.ID] = true
		if checked[obj.Key] {
			continue // a batch holding several events of the window
		}
		checked[obj.Key] = true
		ok, err := lists.exists(ctx, obj.Key)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			problems = append(problems, archive.ObjectProblem{Key: obj.Key, Problem: archive.ProblemMissing})
			continue
		}
		b, err := s.Get(ctx, obj.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s listed by manifest %s: %w", obj.Key, key, err)
		}
		switch {
		case len(b) != obj.Bytes:
			problems = append(problems, archive.ObjectProblem{Key: obj.Key, Problem: fmt.Sprintf("%s: %d bytes, the manifest records %d", archive.ProblemSize, len(b), obj.Bytes)})
		case archive.SHA256Hex(b) != obj.SHA256:
			problems = append(problems, archive.ObjectProblem{Key: obj.Key, Problem: archive.ProblemSHA256})
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Key < problems[j].Key })
	return m, problems, nil
}
