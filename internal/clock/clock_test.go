package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Max: 10 * time.Second}
	for _, tc := range []struct {
		name    string
		n       int
		ceiling time.Duration
	}{
		{"first", 1, time.Second},
		{"below first", 0, time.Second},
		{"second", 2, 2 * time.Second},
		{"fourth", 4, 8 * time.Second},
		{"capped", 5, 10 * time.Second},
		{"far", 60, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := b.Ceiling(tc.n); got != tc.ceiling {
				t.Errorf("Ceiling(%d) = %s, want %s", tc.n, got, tc.ceiling)
			}
			for _, r := range []float64{0, 0.5, 0.999} {
				jb := b
				jb.Rand = func() float64 { return r }
				if got, want := jb.Delay(tc.n), time.Duration(r*float64(tc.ceiling)); got != want {
					t.Errorf("Delay(%d) with rand %g = %s, want %s", tc.n, r, got, want)
				}
			}
		})
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		d    time.Duration
	}{{"long", time.Hour}, {"zero", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Sleep(ctx, tc.d); !errors.Is(err, context.Canceled) {
				t.Errorf("Sleep(%s) on a cancelled context = %v, want context.Canceled", tc.d, err)
			}
		})
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v", err)
	}
}
