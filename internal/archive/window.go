package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// The windowed archive: both sources (CloudTrail partitions and GitLab scopes)
// cut a range [start, end) into aligned windows and write one manifest per
// completed window at <manifest prefix>YYYY/MM/DD/<YYYYMMDDTHHmmZ>.json. This
// file holds what they share: windows and intervals, the manifest key scheme,
// the manifest header and its checks, and Index, which lists a prefix's
// manifests once and reads each of them once.

// Window is one aligned window of a range: Start names it (its manifest key),
// [From, To) is the part of the range it covers (the first and last window of
// a range may be partial).
type Window struct {
	Start time.Time
	From  time.Time
	To    time.Time
}

// Interval returns [From, To).
func (w Window) Interval() Interval { return Interval{From: w.From, To: w.To} }

// Windows cuts [start, end) into windows of the given length, aligned to
// multiples of length since the Unix epoch in UTC (for a length that divides a
// day: to UTC midnight, so no window crosses a day).
func Windows(start, end time.Time, length time.Duration) []Window {
	start, end = start.UTC(), end.UTC()
	var out []Window
	for ws := AlignDown(start, length); ws.Before(end); ws = ws.Add(length) {
		from, to := ws, ws.Add(length)
		if from.Before(start) {
			from = start
		}
		if to.After(end) {
			to = end
		}
		out = append(out, Window{Start: ws, From: from, To: to})
	}
	return out
}

// CountWindows is len(Windows(start, end, length)) without building the list.
func CountWindows(start, end time.Time, length time.Duration) int {
	if !start.Before(end) {
		return 0
	}
	first := AlignDown(start, length)
	return int((end.UTC().Sub(first) + length - 1) / length)
}

// AlignDown rounds t down to a multiple of d since the Unix epoch, in UTC.
func AlignDown(t time.Time, d time.Duration) time.Time {
	r := time.Duration(t.UnixNano()) % d
	if r < 0 {
		r += d
	}
	return t.Add(-r).UTC()
}

// Interval is a half-open interval of time [From, To).
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Empty reports whether the interval holds no instant.
func (iv Interval) Empty() bool { return !iv.From.Before(iv.To) }

// Intervals is a set of disjoint intervals in time order (see Coalesce).
type Intervals []Interval

// Coalesce sorts intervals and merges overlapping or adjacent ones; empty
// intervals are dropped.
func Coalesce(in []Interval) Intervals {
	s := make([]Interval, 0, len(in))
	for _, iv := range in {
		if !iv.Empty() {
			s = append(s, iv)
		}
	}
	sort.Slice(s, func(a, b int) bool { return s[a].From.Before(s[b].From) })
	var out Intervals
	for _, iv := range s {
		if n := len(out); n > 0 && !iv.From.After(out[n-1].To) {
			if iv.To.After(out[n-1].To) {
				out[n-1].To = iv.To
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// Subtract returns the parts of iv that no interval of done covers, in order.
func Subtract(iv Interval, done []Interval) Intervals {
	out := Intervals{iv}
	for _, d := range done {
		var next Intervals
		for _, o := range out {
			if !d.From.Before(o.To) || !o.From.Before(d.To) {
				next = append(next, o)
				continue
			}
			if o.From.Before(d.From) {
				next = append(next, Interval{o.From, d.From})
			}
			if d.To.Before(o.To) {
				next = append(next, Interval{d.To, o.To})
			}
		}
		out = next
	}
	return out
}

// Covers reports whether the set covers all of [from, to).
func (s Intervals) Covers(from, to time.Time) bool {
	return len(Subtract(Interval{from, to}, s)) == 0
}

// Duration is the total length of the set.
func (s Intervals) Duration() time.Duration {
	var d time.Duration
	for _, iv := range s {
		d += iv.To.Sub(iv.From)
	}
	return d
}

// manifestName is the file name of a window's manifest.
const manifestName = "20060102T1504Z.json"

// WindowManifestKey is the key of the manifest of the window starting at
// windowStart, under prefix (which ends in '/').
func WindowManifestKey(prefix string, windowStart time.Time) string {
	return prefix + windowStart.UTC().Format("2006/01/02/") + windowStart.UTC().Format(manifestName)
}

// ParseWindowManifestKey returns the window start a key under prefix names,
// or false when the key is not a window manifest's key.
func ParseWindowManifestKey(prefix, key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return time.Time{}, false
	}
	ws, err := time.Parse(manifestName, rest[strings.LastIndex(rest, "/")+1:])
	if err != nil || WindowManifestKey(prefix, ws) != key {
		return time.Time{}, false
	}
	return ws, true
}

// ManifestHeader is the part every manifest starts with.
type ManifestHeader struct {
	Version     int       `json:"version"`
	WindowStart time.Time `json:"window_start"` // aligned window start (names the key)
}

// ManifestDoc is a manifest of either source.
type ManifestDoc interface {
	// Header returns the manifest's header.
	Header() ManifestHeader
	// Key is where the manifest belongs, from its own fields.
	Key() string
}

// DecodeManifest decodes the manifest stored at key and checks that it is of
// the version this trailfill reads and describes the window its key names.
func DecodeManifest[T any, PT interface {
	*T
	ManifestDoc
}](key string, body []byte, version int) (PT, error) {
	m := PT(new(T))
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("decode manifest %s (delete it to redo its window): %w", key, err)
	}
	if v := m.Header().Version; v != version {
		return nil, fmt.Errorf("manifest %s has version %d, this trailfill reads %d: upgrade trailfill", key, v, version)
	}
	if got := m.Key(); got != key {
		return nil, fmt.Errorf("manifest %s describes the window of %s: it was moved or edited (delete it to redo its window)", key, got)
	}
	return m, nil
}

// WriteManifest stores a manifest as indented JSON at its key, replacing an
// earlier one.
func WriteManifest(ctx context.Context, s Store, m ManifestDoc) error {
	b, err := EncodeManifest(m)
	if err != nil {
		return err
	}
	return s.Put(ctx, m.Key(), b)
}

// EncodeManifest is a manifest's stored form: indented JSON and a newline.
func EncodeManifest(m ManifestDoc) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s: %w", m.Key(), err)
	}
	return append(b, '\n'), nil
}

// indexParallel is how many manifests Index reads at once.
const indexParallel = 16

// ManifestKeys lists the manifests under prefix whose window starts in
// [from, to), by window start (Unix seconds): one LIST per 1,000 keys, no GET.
func ManifestKeys(ctx context.Context, s Store, prefix string, from, to time.Time) (map[int64]string, error) {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := map[int64]string{}
	for _, k := range keys {
		ws, ok := ParseWindowManifestKey(prefix, k)
		if !ok || ws.Before(from) || !ws.Before(to) {
			continue
		}
		out[ws.Unix()] = k
	}
	return out, nil
}

// Index lists the manifests under prefix and reads each one whose window
// starts in [from, to) exactly once, several at a time, decoding it with
// decode. A manifest deleted between the listing and its read is left out.
// The result is keyed by window start (Unix seconds).
func Index[M any](ctx context.Context, s Store, prefix string, from, to time.Time, decode func(key string, body []byte) (M, error)) (map[int64]M, error) {
	keys, err := ManifestKeys(ctx, s, prefix, from, to)
	if err != nil {
		return nil, err
	}
	return ReadManifests(ctx, s, keys, decode)
}

// ReadManifests reads and decodes the manifests at keys (by window start),
// each once, several at a time.
func ReadManifests[M any](ctx context.Context, s Store, keys map[int64]string, decode func(key string, body []byte) (M, error)) (map[int64]M, error) {
	type found struct {
		ws int64
		m  M
		ok bool
	}
	starts := make([]int64, 0, len(keys))
	for ws := range keys {
		starts = append(starts, ws)
	}
	sort.Slice(starts, func(a, b int) bool { return starts[a] < starts[b] })
	res := make([]found, len(starts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(indexParallel)
	for i, ws := range starts {
		g.Go(func() error {
			key := keys[ws]
			body, err := s.Get(gctx, key)
			if errors.Is(err, ErrNotFound) {
				return nil // deleted since the listing
			}
			if err != nil {
				return fmt.Errorf("read manifest %s: %w", key, err)
			}
			m, err := decode(key, body)
			if err != nil {
				return err
			}
			res[i] = found{ws: ws, m: m, ok: true}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[int64]M, len(res))
	for _, f := range res {
		if f.ok {
			out[f.ws] = f.m
		}
	}
	return out, nil
}
