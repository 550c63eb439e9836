package engine

import (
	"fmt"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
)

// DefaultWindow is the span of one window: the unit of manifests and resume.
const DefaultWindow = 30 * time.Minute

// CheckWindow validates a window length: a whole number of 5-minute slices that
// divides a day, so windows align to the clock and never cross midnight UTC.
func CheckWindow(w time.Duration) error {
	if w < archive.SliceLength || w%archive.SliceLength != 0 || (24*time.Hour)%w != 0 {
		return fmt.Errorf("window %s must be a multiple of 5m that divides 24h (e.g. 30m)", w)
	}
	return nil
}

// Window is one clock-aligned window, clipped to the backfill range.
type Window struct {
	Start time.Time // aligned start; names the manifest
	From  time.Time // clipped interval [From, To)
	To    time.Time
}

// Windows lists the windows covering [start, end), aligned to multiples of w.
func Windows(start, end time.Time, w time.Duration) []Window {
	var out []Window
	start, end = start.UTC(), end.UTC()
	for ws := start.Truncate(w); ws.Before(end); ws = ws.Add(w) {
		from, to := ws, ws.Add(w)
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

// CountWindows is len(Windows(start, end, w)) without building the list.
func CountWindows(start, end time.Time, w time.Duration) int {
	if !start.Before(end) {
		return 0
	}
	first := start.UTC().Truncate(w)
	return int((end.UTC().Sub(first) + w - 1) / w)
}

// Interval is a half-open interval of event time [From, To).
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// coalesce merges sorted, possibly adjacent intervals.
func coalesce(in []Interval) []Interval {
	var out []Interval
	for _, iv := range in {
		if !iv.From.Before(iv.To) {
			continue
		}
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

// subtract returns the parts of iv not covered by done (sorted, disjoint).
func subtract(iv Interval, done []Interval) []Interval {
	out := []Interval{iv}
	for _, d := range done {
		var next []Interval
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
