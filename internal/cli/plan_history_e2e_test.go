//go:build e2e

package cli

import "testing"

// Ninety days, 17 regions, 14 accounts, in one execution: the largest history
// (a busy partition's child execution) stays far under the 25,000-event
// limit. In make e2e: 127,092 invocations of the stub task through the local
// executor take about a minute.
func TestPlanNinetyDaysOfAnOrganizationFitsOneExecution(t *testing.T) {
	p := runPlan(t, "--start", "2025-08-25T20:00:00Z", "--end", "2025-11-23T20:00:00Z", "--accounts", fourteenAccounts, "--events-per-hour", "20000")
	if p.Partitions != 238 || p.Windows != 238*4320 || p.WindowsPerPartition != 4320 {
		t.Fatalf("partitions %d, windows %d (%d per partition): want 238, %d, 4320", p.Partitions, p.Windows, p.WindowsPerPartition, 238*4320)
	}
	// 20,000 events/hour for 2,160 hours: 864,000 requests per partition, 1,620 per
	// 810-second invocation: 534 invocations per partition.
	if p.MinimumRequests != 238*864000 || p.LambdaInvocations != 238*534 {
		t.Fatalf("requests %d, invocations %d: want %d, %d", p.MinimumRequests, p.LambdaInvocations, 238*864000, 238*534)
	}
	if p.Executions != 239 {
		t.Fatalf("executions %d, want 239 (the parent and a child per partition)", p.Executions)
	}
	if p.MaxHistoryEvents >= 25000 || p.MaxHistoryEvents < 7*534 {
		t.Fatalf("max history events %d: want at least 7 per invocation and under 25,000", p.MaxHistoryEvents)
	}
	t.Logf("max history %d events per execution, %d transitions, $%.2f", p.MaxHistoryEvents, p.StateTransitions, p.Cost.Total)
}
