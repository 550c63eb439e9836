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
