//go:build e2e

package plan

import "testing"

// TestPlanAtScale plans the organizations the scale issue names: every
// size under its quota and every history under 25,000 events in one
// execution. It executes all their stub children (85,000 for 5,000 accounts,
// about a minute), so it runs in make e2e.
func TestPlanAtScale(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		accounts, days int
	}{
		{"1,000 accounts x 17 regions x 90 days", 1000, 90},
		{"5,000 accounts x 17 regions x 90 days", 5000, 90},
	} {
		t.Run(tc.name, func(t *testing.T) { checkPlanAtScale(t, tc.accounts, tc.days) })
	}
}
