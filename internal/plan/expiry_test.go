package plan

import (
	"strings"
	"testing"
	"time"
)

func TestExpiryOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 11, 23, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name                    string
		start, end              time.Time
		partitions, concurrency int
		rate, eventsPerHour     float64
		wantDuration, wantLost  time.Duration
	}{
		{
			// 9 days x 20,000 events/h = 86,400 pages: 12 h at 2 requests/s;
			// the oldest part, read first, expires in a day.
			name:  "a dense range near the edge, read oldest first, loses nothing",
			start: now.Add(-89 * day), end: now.Add(-80 * day), partitions: 1, concurrency: 1, rate: 2, eventsPerHour: 20000,
			wantDuration: 12 * time.Hour,
		},
		{
			// 10 days x 12,000 events/h = 57,600 pages: 8 h. The oldest part
			// is read after about 10 minutes, but expires in 5: the offsets x
			// with 10m + 8h*x/10d > 5m + x, x < 5m / (1 - 1/30) = 5m10.3s.
			name:  "the oldest part expires before the first part is read",
			start: now.Add(-Retention + 5*time.Minute), end: now.Add(-80*day + 5*time.Minute), partitions: 1, concurrency: 1, rate: 2, eventsPerHour: 12000,
			wantDuration: 8 * time.Hour, wantLost: 310344827586,
		},
		{
			// 89 days x 10 events/h = 428 pages: 214 s per partition; 25
			// waves of 40: the last starts after 85m36s, and the oldest part
			// (expiring in 24 h) is safe.
			name:  "waves of partitions, a day of margin",
			start: now.Add(-89 * day), end: now, partitions: 1000, concurrency: 40, rate: 2, eventsPerHour: 10,
			wantDuration: 25 * 214 * time.Second,
		},
		{
			// 17,000 partitions, 425 waves of 214 s: the last starts after
			// 424 x 214 s = 25h12m16s and has read all by 25h15m50s; with a
			// day of margin, the oldest 1h15m50s expire first.
			name:  "waves of partitions: the last ones start after the oldest events expired",
			start: now.Add(-89 * day), end: now, partitions: 17000, concurrency: 40, rate: 2, eventsPerHour: 10,
			wantDuration: 425 * 214 * time.Second, wantLost: 4550 * time.Second,
		},
		{
			name:  "sparse partitions, all at once: a request each",
			start: now.Add(-89 * day), end: now, partitions: 17, concurrency: 40, rate: 2,
			wantDuration: 500 * time.Millisecond,
		},
		{
			name:  "already outside the 90 days (--no-lookback-limit): nothing to say",
			start: now.Add(-100 * day), end: now.Add(-95 * day), partitions: 1, concurrency: 1, rate: 2, eventsPerHour: 1000,
			wantDuration: 1200 * time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ExpiryOf(tc.start, tc.end, now, tc.partitions, tc.concurrency, tc.rate, tc.eventsPerHour)
			if e.Duration != tc.wantDuration {
				t.Errorf("duration %s, want %s", e.Duration, tc.wantDuration)
			}
			if d := e.Lost - tc.wantLost; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("lost %s (%d), want %s", e.Lost, e.Lost, tc.wantLost)
			}
			w := e.Warning()
			if (w != "") != (tc.wantLost > 0) {
				t.Errorf("warning %q with %s lost", w, tc.wantLost)
			}
			if w != "" && (!strings.Contains(w, "the oldest "+round(e.Lost).String()) || !strings.Contains(w, round(e.Duration).String())) {
				t.Errorf("warning %q does not give the figures", w)
			}
		})
	}
}
