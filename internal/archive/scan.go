package archive

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// ScanOptions say which trail files a TrailScanner reads for one partition.
type ScanOptions struct {
	OrgID, Account, Region string
	// Native: read native trail files too (false: only trailfill's pieces,
	// as with --ignore-native).
	Native bool
	// Lookahead is how long after an event a native file holding it may be
	// named: CloudTrail names and folders files by delivery time, usually
	// minutes after the events, days after them when it redelivers. Folders
	// up to Lookahead past a slice's end are read for it.
	Lookahead time.Duration
}

// scanParallel is how many trail files a scan reads at once.
const scanParallel = 8

// DefaultNativeLookahead is how far after a slice native trail files that
// can hold its events are looked for: CloudTrail delivers within minutes,
// "not guaranteed" (facts.md), and a file delivered at 00:03 of day DD+1
// holds events of DD.
const DefaultNativeLookahead = 24 * time.Hour

// NativeLookahead is the ScanOptions.Lookahead of an option that every
// caller (engine, verify, reconcile) reads the same way: zero is
// DefaultNativeLookahead, negative is none (the slice's own day folder).
func NativeLookahead(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultNativeLookahead
	case d < 0:
		return 0
	}
	return d
}

// Event sources in a SliceContent.
const (
	fromNative uint8 = 1 << iota
	fromPiece
)

// SliceContent is what the archive already holds of one 5-minute slice: the
// IDs of its events in any trail file (native or trailfill's), and
// trailfill's pieces of it.
type SliceContent struct {
	Start time.Time

	mu     sync.Mutex
	ids    map[string]uint8
	Pieces []PieceInfo // by index; read with PieceList when others may write
	// NativeDuplicates counts records of the slice that native files hold
	// more than once (native delivery's own duplicates: reported, never
	// "fixed").
	NativeDuplicates int
	// PieceDuplicates counts events trailfill's pieces hold more than once
	// (there should be none).
	PieceDuplicates int
	// UnreadableNative lists native trail files that can hold events of
	// the slice but could not be decoded.
	UnreadableNative []string
}

// PieceInfo is one of trailfill's trail files of a slice.
type PieceInfo struct {
	Key    string
	Index  int
	Events int
	Bytes  int
	SHA256 string
	// Unreadable says why the file could not be decoded (its events are
	// unknown); empty for a good file.
	Unreadable string
}

// Has reports whether any trail file holds the event.
func (c *SliceContent) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id] != 0
}

// InNative reports whether a native trail file holds the event.
func (c *SliceContent) InNative(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]&fromNative != 0
}

// PieceList returns a copy of the pieces, by index.
func (c *SliceContent) PieceList() []PieceInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]PieceInfo(nil), c.Pieces...)
}

// Counts returns the distinct events of the slice found in native files, in
// trailfill's pieces, and in both.
func (c *SliceContent) Counts() (native, pieces, both int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, src := range c.ids {
		if src&fromNative != 0 {
			native++
		}
		if src&fromPiece != 0 {
			pieces++
		}
		if src == fromNative|fromPiece {
			both++
		}
	}
	return native, pieces, both
}

// NextIndex is the index for a new piece: after every piece seen.
func (c *SliceContent) NextIndex() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.Pieces) == 0 {
		return 0
	}
	return c.Pieces[len(c.Pieces)-1].Index + 1
}

func (c *SliceContent) addNative(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		return // released
	}
	if c.ids[id]&fromNative != 0 {
		c.NativeDuplicates++
	}
	c.ids[id] |= fromNative
}

// AddPiece records a piece of the slice (found by the scan, written, or
// found written by someone else) and the IDs it holds.
func (c *SliceContent) AddPiece(p PieceInfo, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		return // released
	}
	for _, q := range c.Pieces {
		if q.Index == p.Index {
			return // already known
		}
	}
	for _, id := range ids {
		if c.ids[id]&fromPiece != 0 {
			c.PieceDuplicates++
		}
		c.ids[id] |= fromPiece
	}
	c.Pieces = append(c.Pieces, p)
	sort.Slice(c.Pieces, func(a, b int) bool { return c.Pieces[a].Index < c.Pieces[b].Index })
}

// TrailScanner finds what the archive already holds for a set of slices of
// one partition: it lists the day folders that can hold their events (the
// slice's day and up to Lookahead after it, in the plain or organization
// layout) and reads each trail file there once, keeping only event IDs, for
// the slices asked for. Folders are read on demand (Slice) or ahead of need
// (Prefetch); a slice's data is dropped with Release.
type TrailScanner struct {
	store  Store
	o      ScanOptions
	first  time.Time // earliest slice start of interest
	last   time.Time // latest slice end of interest
	folder sync.Map  // day (Unix s) -> *folderScan

	mu     sync.Mutex
	slices map[int64]*SliceContent
	reads  int // trail files read
}

type folderScan struct {
	once sync.Once
	err  error
}

// NewTrailScanner prepares a scan for the slices starting at starts.
func NewTrailScanner(s Store, o ScanOptions, starts []time.Time) *TrailScanner {
	t := &TrailScanner{store: s, o: o, slices: make(map[int64]*SliceContent, len(starts))}
	for _, ss := range starts {
		ss = ss.UTC().Truncate(SliceLength)
		t.slices[ss.Unix()] = &SliceContent{Start: ss, ids: map[string]uint8{}}
		if t.first.IsZero() || ss.Before(t.first) {
			t.first = ss
		}
		if end := ss.Add(SliceLength); end.After(t.last) {
			t.last = end
		}
	}
	return t
}

// Reads is the number of trail files read so far.
func (t *TrailScanner) Reads() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reads
}

// days are the folders that can hold events of the slice starting at ss.
func (t *TrailScanner) days(ss time.Time) []time.Time {
	var out []time.Time
	last := ss.Add(SliceLength)
	if t.o.Native {
		last = last.Add(t.o.Lookahead)
	}
	for d := ss.Truncate(24 * time.Hour); !d.After(last); d = d.Add(24 * time.Hour) {
		out = append(out, d)
	}
	return out
}

// Slice returns what the archive holds for the slice starting at ss, after
// reading every folder that can hold its events.
func (t *TrailScanner) Slice(ctx context.Context, ss time.Time) (*SliceContent, error) {
	ss = ss.UTC()
	for _, d := range t.days(ss) {
		if err := t.readFolder(ctx, d); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.slices[ss.Unix()]
	if c == nil {
		return nil, fmt.Errorf("slice %s was not part of the scan", ss.Format(time.RFC3339))
	}
	return c, nil
}

// Prefetch reads the folders of the given slices' days in order, so that
// later Slice calls find them read. It stops at the first error (which the
// Slice calls will report).
func (t *TrailScanner) Prefetch(ctx context.Context, starts []time.Time) {
	seen := map[int64]bool{}
	for _, ss := range starts {
		for _, d := range t.days(ss.UTC()) {
			if seen[d.Unix()] {
				continue
			}
			seen[d.Unix()] = true
			if t.readFolder(ctx, d) != nil {
				return
			}
		}
	}
}

// Release drops the data of the slice starting at ss.
func (t *TrailScanner) Release(ss time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.slices[ss.UTC().Unix()]; c != nil {
		c.mu.Lock()
		c.ids, c.Pieces = nil, nil
		c.mu.Unlock()
	}
}

// readFolder reads the trail files of one day folder once.
func (t *TrailScanner) readFolder(ctx context.Context, day time.Time) error {
	v, _ := t.folder.LoadOrStore(day.Unix(), &folderScan{})
	fs := v.(*folderScan)
	fs.once.Do(func() { fs.err = t.scanFolder(ctx, day) })
	return fs.err
}

func (t *TrailScanner) scanFolder(ctx context.Context, day time.Time) error {
	prefix := TrailDayPrefix(t.o.OrgID, t.o.Account, t.o.Region, day)
	keys, err := t.store.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list the trail files of %s/%s in %s: %w", t.o.Account, t.o.Region, prefix, err)
	}
	// A native file holds events from before its delivery time, mostly the
	// minutes before it: only files delivered after the first slice of
	// interest started and within Lookahead of the last one's end matter.
	lo, hi := t.first.Truncate(time.Minute), t.last.Add(t.o.Lookahead)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(scanParallel)
	for _, k := range keys {
		f, ok := ParseTrailFileName(k)
		if !ok || f.Account != t.o.Account || f.Region != t.o.Region {
			continue
		}
		if f.Piece >= 0 {
			t.mu.Lock()
			c := t.slices[f.SliceStart.Unix()]
			t.mu.Unlock()
			if c == nil {
				continue // a piece of a slice not asked for
			}
			g.Go(func() error { return t.readPiece(gctx, k, f) })
			continue
		}
		if !t.o.Native || f.Stamp.Before(lo) || f.Stamp.After(hi) {
			continue
		}
		g.Go(func() error { return t.readNative(gctx, k, f) })
	}
	return g.Wait()
}

// ReadPiece reads trailfill's piece index at key: its size, SHA-256 and the
// IDs of its events (none, with Unreadable set, when it cannot be decoded).
func ReadPiece(ctx context.Context, s Store, key string, index int) (PieceInfo, []string, error) {
	body, err := s.Get(ctx, key)
	if err != nil {
		return PieceInfo{}, nil, fmt.Errorf("read trail file %s: %w", key, err)
	}
	info := PieceInfo{Key: key, Index: index, Bytes: len(body), SHA256: SHA256Hex(body)}
	var ids []string
	if _, err := ScanTrailFile(body, func(r RecordRef) { ids = append(ids, r.ID) }); err != nil {
		info.Unreadable, ids = err.Error(), nil
	}
	info.Events = len(ids)
	return info, ids, nil
}

func (t *TrailScanner) readPiece(ctx context.Context, key string, f TrailFile) error {
	info, ids, err := ReadPiece(ctx, t.store, key, f.Piece)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.reads++
	c := t.slices[f.SliceStart.Unix()]
	t.mu.Unlock()
	if c != nil {
		c.AddPiece(info, ids)
	}
	return nil
}

func (t *TrailScanner) readNative(ctx context.Context, key string, f TrailFile) error {
	body, err := t.store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read trail file %s: %w", key, err)
	}
	var refs []RecordRef
	_, serr := ScanTrailFile(body, func(r RecordRef) {
		if !r.Time.Before(t.first) && r.Time.Before(t.last) {
			refs = append(refs, r)
		}
	})
	t.mu.Lock()
	t.reads++
	var cs []*SliceContent
	for _, r := range refs {
		cs = append(cs, t.slices[r.Time.Truncate(SliceLength).Unix()])
	}
	var near []*SliceContent
	if serr != nil {
		// Its events are unknown: the slices it could hold events of say so.
		for _, c := range t.slices {
			if !c.Start.After(f.Stamp) && c.Start.Add(SliceLength+t.o.Lookahead).After(f.Stamp) {
				near = append(near, c)
			}
		}
	}
	t.mu.Unlock()
	for i, r := range refs {
		if cs[i] != nil {
			cs[i].addNative(r.ID)
		}
	}
	for _, c := range near {
		c.mu.Lock()
		c.UnreadableNative = append(c.UnreadableNative, key)
		c.mu.Unlock()
	}
	return nil
}
