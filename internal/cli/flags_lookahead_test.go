package cli

import (
	"flag"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
)

// --native-lookahead means the same in every command: the state machine's
// input (run, start) and the archive's options (verify, reconcile) read the
// spec's value alike.
func TestNativeLookaheadMeansTheSameEverywhere(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flag    string
		scan    time.Duration // what every command's scan reads
		minutes int           // in the execution input
	}{
		{"24h", 24 * time.Hour, 1440},
		{"72h", 72 * time.Hour, 4320},
		{"0", 0, -1},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			var f rangeFlags
			fs := flag.NewFlagSet("verify", flag.ContinueOnError)
			f.register(fs, "./archive")
			if err := fs.Parse([]string{"--start", "2025-11-22T00:00:00Z", "--end", "2025-11-22T01:00:00Z", "--native-lookahead", tc.flag}); err != nil {
				t.Fatal(err)
			}
			s, err := f.spec(time.Date(2025, 11, 23, 0, 0, 0, 0, time.UTC), false)
			if err != nil {
				t.Fatal(err)
			}
			if got := archive.NativeLookahead(s.NativeLookahead); got != tc.scan {
				t.Errorf("verify and reconcile scan %s after a slice, want %s", got, tc.scan)
			}
			if got := s.input("", 1).NativeLookaheadMinutes; got != tc.minutes {
				t.Errorf("the execution input says %d minutes, want %d", got, tc.minutes)
			}
		})
	}
}
