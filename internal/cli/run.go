package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/statemachine/local"
)

func (t *tree) run() *ffcli.Command {
	var f rangeFlags
	return t.add("trailfill", command{
		name:       "run",
		shortUsage: "run [--trail NAME|ARN] --start T --end T [--accounts A,B] [--regions R1,R2|all] [--out DIR|s3://bucket/prefix] [flags]",
		shortHelp:  "Execute the backfill state machine locally, with your AWS credentials; nothing is deployed.",
		longHelp: `run executes the same state machine definition the stack deploys, in-process, with its
task bound to the backfill Lambda's handler. Accounts other than the caller's are read
through arn:<partition>:iam::<account>:role/<--role-name>. Re-running the same command
resumes: windows with a manifest are skipped. --trail recovers what that trail would
have delivered: into its bucket and prefix, in its layout, over the accounts and regions
it covers, only the management events its selectors log (docs/trail.md).

As on Step Functions, the partitions are staged in a folder the Distributed Map reads
them from, and the partitions' results are written back to it: beside a local archive
in <archive>/trailfill/staging/ (kept: the FAILED files name every failed partition),
for an S3 archive in a temporary folder removed after the run. The summary is read
from those results.

Examples:
  trailfill run --trail org-trail --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z
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
			if err := t.resolveTrail(ctx, &f, &spec); err != nil {
				return err
			}
			printTrailNotes(t.env.Stderr, spec.Trail)
			_, err = t.backfillLocally(ctx, spec)
			return err
		},
	})
}

// backfillLocally resolves the partitions of spec, runs the backfill
// in-process (backfill.RunLocal) with progress on stderr, and prints the
// summary, read from the child results: `run` and `demo`.
func (t *tree) backfillLocally(ctx context.Context, spec rangeSpec) (*backfill.RunSummary, error) {
	env := t.env
	clients, err := t.deps.Clients(ctx, spec.RoleName, spec.Rate)
	if err != nil {
		return nil, err
	}
	store, err := t.deps.Store(ctx, spec.Dest, archive.S3Options{KMSKeyID: spec.KMSKeyID})
	if err != nil {
		return nil, err
	}
	parts, err := clients.Partitions(ctx, spec.Accounts, spec.Regions)
	if err != nil {
		return nil, err
	}
	staging, err := openLocalStaging(spec.Dest)
	if err != nil {
		return nil, err
	}
	defer staging.close(env)
	t.warnExpiry(spec, len(parts), len(parts), 0)
	total := int64(archive.CountWindows(spec.Start, spec.End, spec.Window) * len(parts))
	fmt.Fprintf(env.Stderr, "trailfill: backfilling %s .. %s, %d partition(s), %d window(s), into %s\n",
		spec.Start.Format(time.RFC3339), spec.End.Format(time.RFC3339), len(parts), total, store)
	fmt.Fprintf(env.Stderr, "  staging: %s (%s)\n", staging.dir, staging.why)
	progress := &engine.Progress{}
	stop := startProgress(env, progress, total)
	sum, err := backfill.RunLocal(ctx, backfill.RunOptions{
		Name:       localExecutionName(parts, spec.Start, spec.End, env.Now()),
		Input:      spec.input(store.String(), len(parts)),
		Partitions: parts,
		Staging:    staging.s3,
		Store:      store,
		Clients:    clients,
		OrgID:      spec.OrgID,
		Logger:     env.Logger,
		Progress:   progress,
		Clock:      env.Clock,
	})
	stop()
	if err != nil {
		return nil, err
	}
	if !sum.Succeeded() {
		status := strings.ToLower(sum.Status)
		if sum.Outcome != nil {
			printSummary(env, spec, store.String(), sum)
		}
		fmt.Fprintf(env.Stderr, "trailfill: execution %s: %s\n", status, sum.Error)
		if sum.Outcome != nil {
			printFailures(env.Stderr, sum.Failures, sum.Outcome.Failed, sum.Outcome.Results)
		} else if c := oneLine(sum.Cause); c != "" {
			fmt.Fprintf(env.Stderr, "  %s\n", c)
		}
		return sum, failedError{fmt.Sprintf("backfill %s: %s; archived windows are kept, re-run the same command to resume", status, sum.Error)}
	}
	printSummary(env, spec, store.String(), sum)
	printTrailSummary(env.Stderr, spec.Trail)
	return sum, nil
}

// archiveStateFolder is the archive's folder of trailfill's own state
// (archive.ManifestRoot is inside it): a local run's staging folder is its
// subfolder contract.LocalStagingBucket.
const archiveStateFolder = "trailfill"

// localStaging is the staging bucket of a local run: a folder served by
// local.DirS3, as the stack's staging bucket serves the deployed state
// machine.
type localStaging struct {
	s3        local.DirS3
	dir       string // the bucket's folder
	why       string
	temporary bool
}

// openLocalStaging chooses the staging folder. Beside a local archive it is
// <archive>/trailfill/staging/, kept: each run's partitions and child
// results stay with the archive for inspection (FAILED files name every
// failure), outside AWSLogs/ and the manifests, which nothing else reads.
// For an S3 archive it is a temporary folder, removed after the run:
// nothing of a run's bookkeeping is written into someone's bucket, and
// the summary printed is read from it before it goes.
func openLocalStaging(dest archive.Destination) (*localStaging, error) {
	if !dest.IsS3() {
		root := filepath.Join(dest.Dir, archiveStateFolder)
		return &localStaging{s3: local.DirS3{Root: root}, dir: filepath.Join(root, contract.LocalStagingBucket),
			why: "the partitions and child results of each run, kept beside the archive"}, nil
	}
	root, err := os.MkdirTemp("", "trailfill-staging-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary staging folder (set TMPDIR to a writable folder): %w", err)
	}
	return &localStaging{s3: local.DirS3{Root: root}, dir: filepath.Join(root, contract.LocalStagingBucket), temporary: true,
		why: "a temporary folder for the partitions and child results, removed after the run"}, nil
}

func (s *localStaging) close(env *Env) {
	if !s.temporary {
		return
	}
	if err := os.RemoveAll(s.s3.Root); err != nil {
		fmt.Fprintf(env.Stderr, "trailfill: could not remove the temporary staging folder %s: %v\n", s.s3.Root, err)
	}
}

// localExecutionName names a local execution as start names a deployed
// one, with a random suffix: two runs in the same second never share a
// staging folder.
func localExecutionName(parts []contract.Partition, start, end, now time.Time) string {
	name := executionName(parts, start, end, now)
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return name[:min(len(name), maxExecutionName-7)] + "-" + hex.EncodeToString(b[:])
}

func printSummary(env *Env, spec rangeSpec, archiveName string, s *backfill.RunSummary) {
	w := env.Stderr
	fmt.Fprintf(w, "trailfill: archived %d events in %d files; %d windows done, %d already archived, over %d partition(s)",
		s.Events, s.Files, s.Windows, s.Skipped, len(s.Partitions))
	if len(s.Failures) > 0 {
		fmt.Fprintf(w, "; %d partition(s) failed", len(s.Failures))
	}
	fmt.Fprintln(w)
	var native, present int64
	provisional := 0
	for _, p := range s.Partitions {
		native, present, provisional = native+p.Native, present+p.Present, provisional+p.Provisional
	}
	if native > 0 || present > 0 {
		fmt.Fprintf(w, "  not written again: %d events already in the trail's own files, %d in trailfill's files of an earlier or concurrent run\n", native, present)
	}
	if provisional > 0 {
		fmt.Fprintf(w, "  %d window(s) end less than %s before now: archived provisionally; run the same command again later to add what LookupEvents still receives\n", provisional, spec.SettleMargin)
	}
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
