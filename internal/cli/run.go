package cli

import (
	"context"
	"flag"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
)

func (t *tree) run() *ffcli.Command {
	var f rangeFlags
	return t.add("trailfill", command{
		name:       "run",
		shortUsage: "run --start T --end T [--accounts A,B] [--regions R1,R2|all] [--out DIR|s3://bucket/prefix] [flags]",
		shortHelp:  "Execute the backfill state machine locally, with your AWS credentials; nothing is deployed.",
		longHelp: `run executes the same state machine definition the stack deploys, in-process, with its
task bound to the backfill Lambda's handler. Accounts other than the caller's are read
through arn:<partition>:iam::<account>:role/<--role-name>. Re-running the same command
resumes: windows with a manifest are skipped.

Examples:
  trailfill run --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z
  trailfill run --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z \
    --accounts 111111111111,222222222222 --regions all --out s3://my-trail-bucket/recovered`,
		flags: func(fs *flag.FlagSet) { f.register(fs, "./archive") },
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("run", args); err != nil {
				return err
			}
			spec, err := f.spec(t.env.Now(), true)
			if err != nil {
				return err
			}
			t.deps.profile = spec.Profile
			_, err = t.backfillLocally(ctx, spec)
			return err
		},
	})
}

// backfillLocally resolves the partitions of spec, runs the backfill
// in-process (backfill.RunLocal) with progress on stderr, and prints the
// summary: `run` and `demo`.
func (t *tree) backfillLocally(ctx context.Context, spec rangeSpec) (*backfill.RunSummary, error) {
	env := t.env
	clients, err := t.deps.Clients(ctx, spec.RoleName, spec.Rate)
	if err != nil {
		return nil, err
	}
	store, err := t.deps.Store(ctx, spec.Dest, archive.S3Options{})
	if err != nil {
		return nil, err
	}
	parts, err := clients.Partitions(ctx, spec.Accounts, spec.Regions)
	if err != nil {
		return nil, err
	}
	t.warnExpiry(spec, len(parts), len(parts), 0)
	total := int64(archive.CountWindows(spec.Start, spec.End, spec.Window) * len(parts))
	fmt.Fprintf(env.Stderr, "trailfill: backfilling %s .. %s, %d partition(s), %d window(s), into %s\n",
		spec.Start.Format(time.RFC3339), spec.End.Format(time.RFC3339), len(parts), total, store)
	progress := &engine.Progress{}
	stop := startProgress(env, progress, total)
	sum, err := backfill.RunLocal(ctx, backfill.RunOptions{
		Input:    spec.input(parts, store.String(), len(parts)),
		Store:    store,
		Clients:  clients,
		OrgID:    spec.OrgID,
		Logger:   env.Logger,
		Progress: progress,
		Clock:    env.Clock,
	})
	stop()
	if err != nil {
		return nil, err
	}
	if !sum.Succeeded() {
		status := strings.ToLower(sum.Status)
		fmt.Fprintf(env.Stderr, "trailfill: execution %s: %s\n", status, sum.Error)
		if _, err := printFailure(env.Stderr, sum.Error, sum.Cause); err != nil {
			return sum, err
		}
		return sum, failedError{fmt.Sprintf("backfill %s: %s; archived windows are kept, re-run the same command to resume", status, sum.Error)}
	}
	printSummary(env, spec, store.String(), sum)
	return sum, nil
}

func printSummary(env *Env, spec rangeSpec, archiveName string, s *backfill.RunSummary) {
	w := env.Stderr
	fmt.Fprintf(w, "trailfill: archived %d events in %d files; %d windows done, %d already archived, over %d partition(s)\n",
		s.Events, s.Files, s.Windows, s.Skipped, len(s.Partitions))
	rate := 0.0
	if s.Wall > 0 {
		rate = float64(s.Events) / s.Wall.Seconds()
	}
	fmt.Fprintf(w, "  requests %d (throttled %d), wall time %s, %.1f events/s\n", s.Requests, s.Throttled, s.Wall.Round(10*time.Millisecond), rate)
	if busiest, ok := busiestPartition(s.Partitions); ok && busiest.Events > 0 {
		ideal := idealTime(busiest.Events, spec.Rate)
		fmt.Fprintf(w, "  efficiency %.0f%% of the quota ceiling (%.0f events/s per partition at %g req/s): busiest partition %s/%s, %d events, ideal %s\n",
			100*ideal.Seconds()/s.Wall.Seconds(), spec.Rate*engine.PageSize, spec.Rate, busiest.Account, busiest.Region, busiest.Events, ideal.Round(100*time.Millisecond))
	}
	fmt.Fprintf(w, "  archive: %s (trail files under AWSLogs/, manifests under %s)\n", archiveName, archive.ManifestRoot)
}

// idealTime is the least time LookupEvents can deliver n events in at rate
// requests/s (full pages back to back).
func idealTime(n int64, rate float64) time.Duration {
	pages := math.Ceil(float64(n) / engine.PageSize)
	return time.Duration(pages / rate * float64(time.Second))
}

func busiestPartition(ps []contract.PartitionSummary) (contract.PartitionSummary, bool) {
	if len(ps) == 0 {
		return contract.PartitionSummary{}, false
	}
	sorted := append([]contract.PartitionSummary(nil), ps...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].Events > sorted[b].Events })
	return sorted[0], true
}
