package plan

import (
	"fmt"
	"math"
	"time"

	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/validate"
)

// Retention is how long LookupEvents keeps an event (validate.Lookback, the
// last 90 days: facts.md section 1). An event older than that while a
// backfill runs is gone before it is read.
const Retention = validate.Lookback

// firstChunk is how soon a partition reads its oldest part once it starts:
// trailfill hands out the oldest part of a partition first, but reads each
// pager's part newest first (LookupEvents' order), so the oldest events come
// at the end of the first parts, within about ten minutes.
const firstChunk = 10 * time.Minute

// Expiry is what LookupEvents' 90-day window means for a backfill read at the
// quota, as ExpiryOf models it: partitions in waves of Concurrency, each
// partition reading its pages at Rate requests/s, oldest part first.
type Expiry struct {
	Start, End    time.Time
	Partitions    int
	Concurrency   int
	Rate          float64
	EventsPerHour float64 // per partition; 0: the minimum, one request each
	// Margin is how long after now the oldest events of the range expire.
	Margin time.Duration
	// Duration is how long the backfill reads at the quota, all waves.
	Duration time.Duration
	// Lost is how much event time at the start of the range expires before
	// it is read (0: none).
	Lost time.Duration
}

// ExpiryOf models the backfill of [start, end) at now: partitions read in
// waves of concurrency (0: all at once), each partition's pages (the
// assumed events per partition and hour, or one request) at rate requests/s.
// A partition reads its oldest part first: the events at offset x from start
// are read at the partition's start plus firstChunk plus the time the pages
// of [start, start+x) take, and expire Margin + x from now.
func ExpiryOf(start, end, now time.Time, partitions, concurrency int, rate, eventsPerHour float64) Expiry {
	e := Expiry{Start: start, End: end, Partitions: partitions, Concurrency: concurrency, Rate: rate, EventsPerHour: eventsPerHour,
		Margin: start.Add(Retention).Sub(now)}
	span := end.Sub(start)
	if partitions <= 0 || span <= 0 || rate <= 0 {
		return e
	}
	if concurrency <= 0 || concurrency > partitions {
		concurrency = partitions
	}
	e.Concurrency = concurrency
	pages := math.Max(1, math.Ceil(eventsPerHour*span.Hours()/engine.PageSize))
	read := time.Duration(pages / rate * float64(time.Second)) // one partition
	waves := (partitions + concurrency - 1) / concurrency
	e.Duration = time.Duration(waves) * read
	if e.Margin < 0 {
		return e // already outside the 90 days: the caller said so (--no-lookback-limit)
	}
	last := time.Duration(waves-1) * read // when the last wave starts
	e.Lost = lostSpan(last.Seconds(), read.Seconds(), firstChunk.Seconds(), e.Margin.Seconds(), span.Seconds())
	return e
}

// lostSpan is how far into a range of span seconds events expire before they
// are read, for a partition that starts reading at last, reads for read
// seconds, its oldest part first (offset x read at last + min(read, chunk +
// read*x/span)), when offset x expires at margin + x (all in seconds from
// now). The read time is piecewise linear in x: the lost offsets are
// found on each piece, and the furthest is returned.
func lostSpan(last, read, chunk, margin, span float64) time.Duration {
	lost := 0.0
	r := read / span
	// Piece a: [0, xa], read at last + chunk + r*x.
	xa := span
	if read > chunk {
		xa = min(span, (read-chunk)/r)
	} else {
		xa = 0
	}
	if xa > 0 {
		c, k := last+chunk-margin, r-1 // lost where c + k*x > 0
		switch {
		case k < 0 && c > 0:
			lost = max(lost, min(xa, c/-k))
		case k >= 0 && (c > 0 || c+k*xa > 0):
			lost = max(lost, xa)
		}
	}
	// Piece b: [xa, span], read at last + read.
	if b := last + read - margin; b > xa {
		lost = max(lost, min(span, b))
	}
	return time.Duration(lost * float64(time.Second))
}

// Warning is one line for the commands when events expire before they are
// read, with the figures; "" when none do.
func (e Expiry) Warning() string {
	if e.Lost <= 0 {
		return ""
	}
	assumed := "the minimum of one request per partition"
	if e.EventsPerHour > 0 {
		assumed = fmt.Sprintf("%g events per partition and hour", e.EventsPerHour)
	}
	lost := round(e.Lost)
	until := e.Start.Add(lost).UTC().Format(time.RFC3339)
	return fmt.Sprintf("trailfill: warning: events of %s .. %s (the oldest %s of the range) leave LookupEvents' 90 days, starting in %s, before the last partitions read them: at %g requests/s per partition, %d partition(s), %d at once, reading takes %s (assuming %s); start at %s or later, or back up fewer partitions per execution",
		e.Start.UTC().Format(time.RFC3339), until, lost, round(e.Margin), e.Rate, e.Partitions, e.Concurrency, round(e.Duration), assumed, until)
}

// round keeps durations readable: whole seconds, whole minutes above an hour.
func round(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
