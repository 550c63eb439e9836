package engine

import (
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
)

// sliceState is where a slice is in its run.
type sliceState uint8

const (
	// reading: parts of what the run must read of the slice are not read yet.
	reading sliceState = iota
	// ready: everything pending is read; the slice waits for its writer.
	ready
	// written: its missing events are in the archive (or there were none).
	written
	// partial: the run stopped early; what it read of the slice is written,
	// the rest is for the next invocation.
	partial
)

// slice is one 5-minute slice with something to read in this run.
type slice struct {
	start   time.Time // aligned slice start
	win     *window
	pending archive.Intervals // what this run must read of it
	covered archive.Intervals // what it has read completely
	state   sliceState
	spool   *spool // records read and not yet written (nil: none yet)
}

// wants reports whether an event at t is one this run reads into the slice.
func (s *slice) wants(t time.Time) bool {
	for _, iv := range s.pending {
		if !t.Before(iv.From) && t.Before(iv.To) {
			return true
		}
	}
	return false
}

// cover records that [from, to) is read completely and reports whether that
// completed the slice (every pending part read).
func (s *slice) cover(from, to time.Time) bool {
	var add []archive.Interval
	for _, iv := range s.pending {
		lo, hi := maxTime(from, iv.From), minTime(to, iv.To)
		if lo.Before(hi) {
			add = append(add, archive.Interval{From: lo, To: hi})
		}
	}
	if len(add) == 0 {
		return false
	}
	s.covered = archive.Coalesce(append(s.covered, add...))
	return s.complete()
}

// complete reports whether every pending part is covered.
func (s *slice) complete() bool {
	for _, iv := range s.pending {
		if !s.covered.Covers(iv.From, iv.To) {
			return false
		}
	}
	return true
}

func (s *slice) closeSpool() {
	if s.spool != nil {
		s.spool.close()
		s.spool = nil
	}
}

// window is one window with something left to do in this run.
type window struct {
	archive.Window
	// pending is what this run reads of it: the part of the range it covers,
	// less what its manifest covers (settled) and what earlier invocations read.
	pending archive.Intervals
	// read are the spans read completely and written: by earlier invocations
	// (the job's Read) and by this run.
	read []contract.Span
	// slices are the starts of every slice of the window the manifest speaks
	// of (the range's part and the manifest's coverage).
	slices     []time.Time
	slicesLeft int // slices this run must still write
	done       bool
}

// spansWithin returns the parts of spans inside [from, to).
func spansWithin(spans []contract.Span, from, to time.Time) []contract.Span {
	var out []contract.Span
	for _, sp := range spans {
		lo, hi := maxTime(sp.From, from), minTime(sp.To, to)
		if lo.Before(hi) {
			out = append(out, contract.Span{From: lo, To: hi, Provisional: sp.Provisional})
		}
	}
	return out
}

// coalesceSpans merges spans, keeping settled and provisional ones apart (a
// settled span wins where they overlap).
func coalesceSpans(spans []contract.Span) []contract.Span {
	var settled, prov []archive.Interval
	for _, sp := range spans {
		iv := archive.Interval{From: sp.From, To: sp.To}
		if sp.Provisional {
			prov = append(prov, iv)
		} else {
			settled = append(settled, iv)
		}
	}
	st := archive.Coalesce(settled)
	out := make([]contract.Span, 0, len(st))
	for _, iv := range st {
		out = append(out, contract.Span{From: iv.From, To: iv.To})
	}
	for _, iv := range archive.Coalesce(prov) {
		for _, part := range archive.Subtract(iv, st) {
			out = append(out, contract.Span{From: part.From, To: part.To, Provisional: true})
		}
	}
	return out
}

// intervals are the spans as intervals, optionally only the settled ones.
func intervals(spans []contract.Span, settledOnly bool) []archive.Interval {
	var out []archive.Interval
	for _, sp := range spans {
		if settledOnly && sp.Provisional {
			continue
		}
		out = append(out, archive.Interval{From: sp.From, To: sp.To})
	}
	return out
}
