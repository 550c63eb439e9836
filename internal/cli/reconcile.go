package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
)

// ReconcileReport is the document `trailfill reconcile --json` prints.
type ReconcileReport struct {
	Archive    string                     `json:"archive"`
	Start      string                     `json:"start"`
	End        string                     `json:"end"`
	DryRun     bool                       `json:"dry_run"`
	Partitions []*archive.ReconcileReport `json:"partitions"`
}

// reconcile removes trailfill's copies of events that native delivery
// brought after a backfill (archive.Reconcile). It runs with the operator's
// credentials: the deployed roles may not delete anything under AWSLogs/.
func (t *tree) reconcile() *ffcli.Command {
	var f rangeFlags
	var stack string
	var asJSON, dryRun bool
	var fs *flag.FlagSet
	return t.add("trailfill", command{
		name:       "reconcile",
		shortUsage: "reconcile --start T --end T [--out DIR|s3://bucket/prefix | --stack NAME] [--accounts A,B] [--regions R1,R2|all|archived] [--dry-run] [--json]",
		shortHelp:  "Remove trailfill's copies of events CloudTrail delivered itself after the backfill (redelivery).",
		longHelp: `reconcile finds, per window, the events that both CloudTrail's own trail files and
trailfill's hold (CloudTrail redelivered them after the backfill), and replaces each of
trailfill's files holding some by a new piece without them (or removes it), updating the
window's manifest. CloudTrail's files are never touched: reconcile acts only on objects
that carry trailfill's name, trailfill's marker (x-amz-meta-trailfill) and the SHA-256
their manifest records. An intent record written before each window's change makes an
interrupted run safe: run it again and it finishes the job.

It deletes objects under AWSLogs/, which the deployed roles cannot: run it with your own
credentials (docs/deploy.md lists the permissions), and not while a backfill of the same
range runs.

Examples:
  trailfill verify    --start 2025-04-17T00:00:00Z --end 2025-04-20T00:00:00Z --out s3://trail-bucket --regions archived
  trailfill reconcile --start 2025-04-17T00:00:00Z --end 2025-04-20T00:00:00Z --out s3://trail-bucket --regions archived --dry-run
  trailfill reconcile --start 2025-04-17T00:00:00Z --end 2025-04-20T00:00:00Z --out s3://trail-bucket --regions archived`,
		flags: func(set *flag.FlagSet) {
			fs = set
			f.register(fs, "")
			fs.StringVar(&stack, "stack", stackDefault(t.env), "without --out: reconcile this deployed stack's archive ($"+contract.EnvStack+" sets the default)")
			fs.BoolVar(&dryRun, "dry-run", false, "report what would change and change nothing")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
			fs.Lookup("regions").Usage = "comma-separated regions; all (each account's enabled regions); or archived (the regions with manifests in the archive)"
			fs.Lookup("out").Usage = "the archive: a local folder or s3://bucket/prefix (default: the stack's archive)"
			for _, n := range []string{"rate", "no-lookback-limit", "settle-margin", "ignore-native"} {
				fs.Lookup(n).Usage = "not used by reconcile"
			}
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("reconcile", args); err != nil {
				return err
			}
			if flagGiven(fs, "ignore-native") {
				return usagef("--ignore-native: reconcile compares trailfill's files with the native ones, it cannot ignore them")
			}
			return t.reconcileExec(ctx, fs, f, stack, dryRun, asJSON)
		},
	})
}

func (t *tree) reconcileExec(ctx context.Context, fs *flag.FlagSet, f rangeFlags, stack string, dryRun, asJSON bool) error {
	env := t.env
	spec, store, parts, err := t.archivedRange(ctx, fs, f, stack)
	if err != nil {
		return err
	}
	windows := archive.Windows(spec.Start, spec.End, spec.Window)
	reports := make([]*archive.ReconcileReport, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, p := range parts {
		g.Go(func() error {
			r, err := archive.Reconcile(gctx, store, archive.ReconcileOptions{
				Account: p.Account, Region: p.Region, Windows: windows, OrgID: spec.OrgID,
				NativeLookahead: spec.NativeLookahead, DryRun: dryRun, Now: env.Now, Logger: env.Logger,
			})
			reports[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("reconcile %s (re-run the same command to finish; it resumes): %w", store, err)
	}
	rep := &ReconcileReport{Archive: store.String(), Start: spec.Start.Format("2006-01-02T15:04:05Z07:00"), End: spec.End.Format("2006-01-02T15:04:05Z07:00"), DryRun: dryRun, Partitions: reports}
	if asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the report: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	} else {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tREGION\tWINDOWS\tDUPLICATED\tREMOVED\tWRITTEN\tREFUSED\tRESUMED")
		for _, r := range reports {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Account, r.Region, r.Windows, r.Duplicated, len(r.Removed), len(r.Written), len(r.Refused), r.Resumed)
		}
		_ = tw.Flush()
		for _, r := range reports {
			for _, p := range r.Refused {
				fmt.Fprintf(env.Stdout, "  left alone: %s: %s\n", p.Key, p.Problem)
			}
		}
	}
	dup, removed := 0, 0
	for _, r := range reports {
		dup += r.Duplicated
		removed += len(r.Removed)
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(env.Stderr, "trailfill: reconcile %s %d duplicated event(s) from %d of trailfill's file(s) in %s; CloudTrail's files untouched\n", verb, dup, removed, store)
	return nil
}
