package gitlab

import (
	"fmt"
	"time"
)

// DefaultWindow is the default backfill window: one UTC day. A day is cheap to
// redo if a run stops in it, keeps one manifest per day folder, and is far
// below the API's 30-day query limit.
const DefaultWindow = 24 * time.Hour

const day = 24 * time.Hour

// ValidateWindow checks a window length: a whole number of minutes that
// divides a day (1m ... 24h) or a whole number of days up to 30, so that every
// window is aligned to UTC days and fits one API query.
func ValidateWindow(w time.Duration) error {
	switch {
	case w < time.Minute || w%time.Minute != 0:
		return fmt.Errorf("invalid window %s: use whole minutes, at least 1m", w)
	case w <= day && day%w != 0:
		return fmt.Errorf("invalid window %s: it must divide 24h (like 1h, 6h, 24h) so windows align to UTC days", w)
	case w > day && w%day != 0:
		return fmt.Errorf("invalid window %s: above a day use whole days (like 48h, 168h)", w)
	case w > MaxQueryRange:
		return fmt.Errorf("invalid window %s: the GitLab API answers at most 30 days (720h) per query", w)
	}
	return nil
}

// Window is one part of a backfill range: events created in [From, To).
// Start is the aligned start that names it (From may be later for the first
// window, To earlier than Start+length for the last).
type Window struct {
	Start    time.Time
	From, To time.Time
}

// Windows splits [start, end) into windows of length w aligned to multiples of
// w since the Unix epoch (UTC midnight for any w dividing a day).
func Windows(start, end time.Time, w time.Duration) []Window {
	start, end = start.UTC(), end.UTC()
	var out []Window
	for ws := alignDown(start, w); ws.Before(end); ws = ws.Add(w) {
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

func alignDown(t time.Time, w time.Duration) time.Time {
	d := time.Duration(t.UnixNano()) % w
	if d < 0 {
		d += w
	}
	return t.Add(-d).UTC()
}

// queryBounds are the API's inclusive created_after/created_before for
// [from, to): from rounded down and to rounded up to whole seconds (the API
// takes seconds). Events outside [from, to) are then dropped client-side, so
// adjacent windows neither lose nor repeat an event at their boundary.
func queryBounds(from, to time.Time) (after, before time.Time) {
	after = from.Truncate(time.Second)
	before = to.Truncate(time.Second)
	if before.Before(to) {
		before = before.Add(time.Second)
	}
	return after, before
}
