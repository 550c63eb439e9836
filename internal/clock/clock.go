// Package clock is trailfill's one source of waiting: a Clock (now and a
// context-aware sleep), the real clock, and the one jittered exponential
// backoff every retry loop uses. A Clock has the method set of the local
// state machine executor's Clock, so the same value drives both.
package clock

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock supplies the time and waits. Sleep returns early with the context's
// error when the context ends.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// System is the real clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx ends.
func (System) Sleep(ctx context.Context, d time.Duration) error { return Sleep(ctx, d) }

// Sleep waits for d or until ctx ends, whichever comes first; it returns
// ctx.Err() when the context ended first (also for d <= 0 on an ended
// context).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff is capped exponential backoff with full jitter, as the AWS
// Architecture Blog's "Exponential Backoff And Jitter" recommends and the
// AWS SDKs do (aws-sdk-go-v2 retry.ExponentialJitterBackoff): the wait
// before retry n (n >= 1) is uniform in [0, min(Max, Base*2^(n-1))).
type Backoff struct {
	Base time.Duration // ceiling of the first wait
	Max  time.Duration // largest ceiling
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// Ceiling is the upper bound of the wait before retry n.
func (b Backoff) Ceiling(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	c := b.Base
	for i := 1; i < n && c < b.Max; i++ {
		c *= 2
	}
	if b.Max > 0 && c > b.Max {
		c = b.Max
	}
	return c
}

// Delay is the wait before retry n: uniform in [0, Ceiling(n)).
func (b Backoff) Delay(n int) time.Duration {
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return time.Duration(r() * float64(b.Ceiling(n)))
}

// Wait sleeps Delay(n) on c (System if nil).
func (b Backoff) Wait(ctx context.Context, c Clock, n int) error {
	if c == nil {
		c = System{}
	}
	return c.Sleep(ctx, b.Delay(n))
}
