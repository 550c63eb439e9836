// Package pace keeps LookupEvents within its quota of 2 requests per second per
// account and region. One Limiter serves one partition (account, region) and is
// shared by every pager reading it. It paces every attempt the SDK makes, retries
// included (see Middleware), and adapts: a ThrottlingException (another caller is
// using the same quota) lowers the rate multiplicatively; successes restore it
// additively up to the configured maximum.
package pace

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// MaxRate is CloudTrail's LookupEvents quota per account and region (not adjustable).
const MaxRate = 2.0

// Limiter is an adaptive token bucket (burst 1) for one partition.
type Limiter struct {
	lim *rate.Limiter

	mu           sync.Mutex
	max          float64
	cur          float64
	lastDecrease time.Time
	now          func() time.Time

	attempts  atomic.Int64 // every attempt sent
	throttled atomic.Int64 // attempts answered ThrottlingException

	// Round trips of answered attempts: exponentially weighted mean and mean
	// absolute deviation, in seconds, and how many were observed.
	latMean, latDev float64
	latN            int64
}

// NewLimiter returns a limiter at r requests per second; r <= 0 means MaxRate.
// Callers facing AWS keep r <= MaxRate (the commands and the Lambda check it);
// tests scale time by using higher rates against the emulator.
func NewLimiter(r float64) *Limiter {
	if r <= 0 {
		r = MaxRate
	}
	return &Limiter{lim: rate.NewLimiter(rate.Limit(r), 1), max: r, cur: r, now: time.Now}
}

// Wait blocks until the next request may be sent, or ctx ends. Unlike
// rate.Limiter.Wait it does not fail early when the slot lies beyond ctx's
// deadline: a Lambda stops at its own soft deadline (by cancelling), and an early
// "would exceed context deadline" would look like a failure.
func (l *Limiter) Wait(ctx context.Context) error {
	r := l.lim.Reserve()
	if d := r.Delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			return ctx.Err()
		}
	}
	l.attempts.Add(1)
	return nil
}

// Throttled records a ThrottlingException: the rate drops to 80% (at most once per
// second, so a burst of throttles answering requests already in flight counts once),
// never below 5% of the maximum.
func (l *Limiter) Throttled() {
	l.throttled.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastDecrease) < time.Second {
		return
	}
	l.lastDecrease = now
	l.cur = max(l.cur*0.8, l.max*0.05)
	l.lim.SetLimitAt(now, rate.Limit(l.cur))
}

// Succeeded records a successful answer: the rate climbs back by 4% of the maximum,
// so a lone throttle (timing jitter against a strict bucket) costs a few requests'
// worth of pace, while a competitor holding part of the quota keeps it lower.
func (l *Limiter) Succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur >= l.max {
		return
	}
	l.cur = min(l.max, l.cur+l.max*0.04)
	l.lim.SetLimitAt(l.now(), rate.Limit(l.cur))
}

// latencyWeight is the weight of the newest round trip in the running mean:
// about the last ten answers count.
const latencyWeight = 0.1

// Observe records the round trip of an attempt the API answered, measured from
// the moment the limiter let it out (Middleware does this for every attempt).
func (l *Limiter) Observe(d time.Duration) {
	s := d.Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latN++
	if l.latN == 1 {
		// One sample says nothing about the spread: assume a twentieth of it
		// (the high estimate is then a tenth above it).
		l.latMean, l.latDev = s, s/20
		return
	}
	w := max(latencyWeight, 1/float64(l.latN))
	dev := s - l.latMean
	l.latMean += w * dev
	l.latDev += w * (max(dev, -dev) - l.latDev)
}

// Latency returns the mean round trip of the answered attempts and a high
// estimate (the mean plus two mean absolute deviations: most answers take no
// longer); ok is false before the first answer. Several jobs of one partition
// (successive invocations in one process) share what earlier ones measured.
func (l *Limiter) Latency() (mean, high time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latN == 0 {
		return 0, 0, false
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return sec(l.latMean), sec(l.latMean + 2*l.latDev), true
}

// Rate is the current rate in requests per second.
func (l *Limiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// Max is the configured maximum rate.
func (l *Limiter) Max() float64 { return l.max }

// Attempts is the number of requests sent through the limiter.
func (l *Limiter) Attempts() int64 { return l.attempts.Load() }

// ThrottledCount is the number of attempts answered with ThrottlingException.
func (l *Limiter) ThrottledCount() int64 { return l.throttled.Load() }
