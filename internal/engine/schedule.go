package engine

import (
	"math"
	"time"
)

// Scheduling: how many pagers a partition keeps busy, where their ranges are
// cut, and which part is read first. The functions here are pure (the run
// calls them under its lock with what it has observed) and table tested;
// pager.go applies them.
//
// The model. A pager waits a full round trip for each page (the next page
// needs the previous page's NextToken), so rate x latency pagers keep the
// quota busy (facts.md section 1: 2 requests/s per account and region,
// answers in 0.2 s to 4 s). Every pager's range ends in a partly filled
// page: the page that reaches its lower bound also holds events of the range
// below, or fewer than 50 events. With events at random times the fill of
// that page is uniform, so a cut costs half a request on average wherever it
// is made. Hence:
//   - cuts are made only as often as the latency needs: no more pagers than
//     rate x latency (concurrency), and no more ranges than pages
//     (maxChains);
//   - cuts are sized by the observed density so that every pager ends in the
//     same round: a pager left with more than the others would read it alone
//     at one page per round trip while the quota idles; a pager that comes
//     free takes part of the range with most left (donor, giveEvents); near
//     the end, where a part is a page or two and its count is nearly known,
//     cuts are placed at page multiples (alignedEvents);
//   - before the first answer nothing is known about the density: a range
//     whose first answer is late is cut blind into at most specPieces pieces,
//     which bounds what a sparse or empty range costs;
//   - the oldest part is handed out first: LookupEvents forgets events older
//     than 90 days while the run proceeds, and reads newest first within a
//     query;
//   - where the density changes sharply (a burst begins or ends), the range
//     is probed: its unread part is halved and the older half read at once,
//     so that its first page shows the density there (isUncertain); a few
//     such requests tell where the burst ends, and keep the time left
//     estimated honestly.

const (
	// specPieces is how many ranges are read at once before the first answer
	// says how dense they are: a sparse or empty range costs at most this
	// many requests.
	specPieces = 3
	// minSpecDelay: blind pieces start only when the first answer is later
	// than this (and than one request interval): below it one pager keeps
	// the quota busy anyway, and a quick answer about a sparse range saves
	// the blind requests.
	minSpecDelay = 250 * time.Millisecond
	// alignPages: parts of at most this many pages are cut at page
	// multiples; the count of larger ones is uncertain by more than the
	// margin.
	alignPages = 2.5
	// priorEvents is the weight, in events, of the partition's density in a
	// range's own density estimate: a range's first page moves it halfway.
	priorEvents = PageSize
	// minCutSpan is the shortest range a cut leaves on either side.
	minCutSpan = 2 * time.Second
	// probeRatio: a range whose latest pages are this many times denser or
	// sparser than what lies ahead of it is probed (isUncertain).
	probeRatio = 4
	// probePages and probeShare: a range is probed only when its unread
	// part, at the higher of the two densities, holds at least this many
	// pages, and this share of the partition's remaining pages.
	probePages = 3
	probeShare = 0.3
)

// maxChunkPages caps a pager's share of a long backlog, so that the rest is
// handed out oldest first as pagers come free, rather than all of it at once
// in parts read newest first: at 2 requests/s and nine pagers, a chunk is
// read in about nine minutes. (A variable only so that a test can make a
// backlog long with fewer events.)
var maxChunkPages = 120.0

// concurrency is how many pagers keep rate requests/s busy when an answer
// takes up to high: a pager may send again only after its answer, so its turn
// at the quota must come no sooner than that.
func concurrency(rate float64, high time.Duration, maxPagers int) int {
	k := int(math.Ceil(rate*high.Seconds() - 1e-9))
	return min(max(k, 1), max(maxPagers, 1))
}

// maxChains is how many ranges a run of pages pages in all (read and still to
// read) may be cut into: one per page at most (a range costs at least a
// request).
func maxChains(pages float64) int {
	return max(1, int(pages))
}

// specDelay is how long the first answer may take before the next blind piece
// starts: one request interval at the rate, and at least minSpecDelay.
func specDelay(rate float64) time.Duration {
	if rate <= 0 {
		return minSpecDelay
	}
	return max(time.Duration(float64(time.Second)/rate), minSpecDelay)
}

// blindCuts cuts [lo, hi) into n pieces of equal time at whole seconds,
// returning the n-1 inner cut points in ascending order; no piece is shorter
// than minCutSpan (fewer cuts are returned for a short range).
func blindCuts(lo, hi time.Time, n int) []time.Time {
	span := hi.Sub(lo)
	n = min(n, int(span/minCutSpan))
	var cuts []time.Time
	for i := 1; i < n; i++ {
		c := lo.Add(span * time.Duration(i) / time.Duration(n)).Truncate(time.Second)
		if c.Sub(lo) >= minCutSpan && hi.Sub(c) >= minCutSpan && (len(cuts) == 0 || c.Sub(cuts[len(cuts)-1]) >= minCutSpan) {
			cuts = append(cuts, c)
		}
	}
	return cuts
}

// density estimates the events per second of a range that has received events
// over seconds of time read completely, shrunk towards the partition's
// density (prior) with the weight of priorEvents, so that one page of a
// sparse stretch does not make a whole range look empty, nor one crowded
// second a whole range look dense.
func density(events int, seconds, prior float64) float64 {
	if prior <= 0 {
		if seconds <= 0 {
			return 0
		}
		return float64(events) / seconds
	}
	return (float64(events) + priorEvents) / (seconds + priorEvents/prior)
}

// chainPages is the share of the remaining pages each of want pagers should
// read, at most maxChunkPages.
func chainPages(remainingPages float64, want int) float64 {
	return min(remainingPages/float64(max(want, 1)), maxChunkPages)
}

// parts is how many pagers' shares a range of events holds: at least 1, and
// at most one per page.
func parts(events, share float64) int {
	if share <= 0 {
		return 1
	}
	pages := events / PageSize
	return max(1, int(min(math.Round(pages/share), math.Floor(pages))))
}

// giveEvents is how many of its estimated events a range gives to a free
// pager when each pager's share is share pages: the range is to be read by
// as many pagers as it holds shares (parts), so it gives one part. A part of
// a page or two is rounded to page multiples (alignedEvents): near the end
// that saves the partly filled page a cut costs. A range of less than two
// pages gives one page only when that leaves it a page less to read (the
// page that ends it then holds what it keeps); else nothing.
func giveEvents(events, share float64) float64 {
	if share <= 0 || events <= PageSize {
		return 0
	}
	if n := parts(events, share); n >= 2 {
		if give := events / float64(n); give > alignPages*PageSize {
			return give
		}
		return alignedEvents(events / float64(n))
	}
	give := alignedEvents(PageSize)
	if pagesFor(events-give+2*math.Sqrt(events)) < pagesFor(events) {
		return give
	}
	return 0
}

// alignedEvents rounds a number of events to whole pages, less a margin of
// two standard deviations of a count of random arrivals (twice its square
// root) and at most half a page, so that a range cut to hold them most likely
// takes exactly that many pages.
func alignedEvents(events float64) float64 {
	k := max(1, math.Round(events/PageSize))
	return k*PageSize - min(PageSize/2, 2*math.Sqrt(k*PageSize))
}

// pagesFor is how many pages a range of events takes.
func pagesFor(events float64) float64 { return math.Ceil(events / PageSize) }

// isUncertain reports whether the density ahead of a range (below its floor,
// over unread seconds) is too uncertain to estimate its time left: its recent
// density and the density ahead, as far as known, differ by probeRatio or
// more, and the unread part holds, at the higher of them, probePages or more
// and probeShare or more of the partition's remaining pages (below that the
// estimate is close enough, and a probe's partly filled page costs more than
// it tells).
func isUncertain(recent, ahead, unread, remainingPages float64) bool {
	hi, lo := max(recent, ahead), min(recent, ahead)
	pages := hi * unread / PageSize
	return hi > 0 && hi >= probeRatio*lo && pages >= probePages && pages >= probeShare*remainingPages
}

// candidate is what the scheduler knows of a range being read.
type candidate struct {
	lo       time.Time // where it stops: the oldest time it still reads
	events   float64   // estimated events left to read
	answered bool      // it has had an answer (its density is its own)
}

// donor picks the range that gives part of itself to a free pager: among
// ranges with an answer (the density of the others is a guess, and their
// answer is at most a round trip away), the oldest of those holding two
// shares or more, else the one holding most. It returns -1 when none has
// had an answer.
func donor(cs []candidate, share float64) int {
	best := -1
	for i, c := range cs {
		if !c.answered {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := cs[best]
		big, bestBig := c.events >= 2*share*PageSize, b.events >= 2*share*PageSize
		switch {
		case big && !bestBig:
			best = i
		case big && bestBig && c.lo.Before(b.lo):
			best = i
		case !big && !bestBig && c.events > b.events:
			best = i
		}
	}
	return best
}

// cutAt is the whole second below hi that leaves about events in [cut, hi)
// at the given density; ok is false when that would leave less than
// minCutSpan on either side.
func cutAt(lo, hi time.Time, events, perSecond float64) (time.Time, bool) {
	if perSecond <= 0 || events <= 0 {
		return time.Time{}, false
	}
	secs := events / perSecond
	if secs >= hi.Sub(lo).Seconds() {
		return time.Time{}, false
	}
	c := hi.Add(-time.Duration(secs * float64(time.Second))).Truncate(time.Second)
	if c.Sub(lo) < minCutSpan || hi.Sub(c) < minCutSpan {
		return time.Time{}, false
	}
	return c, true
}

// cutAbove is the whole second above lo that leaves about events in [lo, cut)
// at the given density; ok is false when that would leave less than
// minCutSpan on either side.
func cutAbove(lo, hi time.Time, events, perSecond float64) (time.Time, bool) {
	if perSecond <= 0 || events <= 0 {
		return time.Time{}, false
	}
	secs := events / perSecond
	if secs >= hi.Sub(lo).Seconds() {
		return time.Time{}, false
	}
	c := lo.Add(time.Duration(secs * float64(time.Second))).Truncate(time.Second)
	if c.Sub(lo) < minCutSpan || hi.Sub(c) < minCutSpan {
		return time.Time{}, false
	}
	return c, true
}
