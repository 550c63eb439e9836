package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// plan warns, with the figures, when events expire before the backfill reads
// them at the quota; a range well inside the 90 days gets no warning.
func TestPlanWarnsOfEventsExpiringBeforeTheyAreRead(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 11, 23, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fourteen accounts of busy regions from the 90-day edge",
			[]string{"--start", "2025-08-26T00:00:00Z", "--end", "2025-11-23T00:00:00Z", "--accounts", fourteenAccounts, "--events-per-hour", "2000"},
			"trailfill: warning: events of 2025-08-26T00:00:00Z .. "},
		{"a busy week inside the 90 days",
			[]string{"--start", "2025-11-01T00:00:00Z", "--end", "2025-11-08T00:00:00Z", "--accounts", fourteenAccounts, "--events-per-hour", "2000"},
			""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"plan"}, tc.args...), &Env{Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return now }})
			if code != ExitOK {
				t.Fatalf("plan: exit %d: %s", code, stderr.String())
			}
			got := stderr.String()
			if tc.want == "" {
				if got != "" {
					t.Fatalf("plan warned: %q", got)
				}
				return
			}
			if !strings.HasPrefix(got, tc.want) || strings.Count(got, "\n") != 1 || !strings.Contains(got, "238 partition(s), 40 at once") || !strings.Contains(got, "2000 events per partition and hour") {
				t.Fatalf("plan stderr %q, want one line starting %q with the figures", got, tc.want)
			}
			t.Log(got)
		})
	}
}
