package cli

import (
	"fmt"

	"github.com/trailfill/trailfill/internal/plan"
)

// warnExpiry prints one line when, at the quota, LookupEvents' 90 days run
// out before the backfill reads the oldest events of its range
// (plan.ExpiryOf: partitions in waves of concurrency, each at spec.Rate,
// eventsPerHour per partition or the minimum of one request each).
func (t *tree) warnExpiry(spec rangeSpec, partitions, concurrency int, eventsPerHour float64) {
	if w := plan.ExpiryOf(spec.Start, spec.End, t.env.Now(), partitions, concurrency, spec.Rate, eventsPerHour).Warning(); w != "" {
		fmt.Fprintln(t.env.Stderr, w)
	}
}
