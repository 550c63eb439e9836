package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/validate"
)

// regionsArchived is the --regions value of verify that takes each account's
// regions from the manifests in the archive instead of account:ListRegions.
const regionsArchived = "archived"

// VerifyReport is the document `trailfill verify --json` prints.
type VerifyReport struct {
	Archive       string                     `json:"archive"`
	Start         string                     `json:"start"`
	End           string                     `json:"end"`
	WindowMinutes int                        `json:"window_minutes"`
	Complete      bool                       `json:"complete"`
	Totals        VerifyTotals               `json:"totals"`
	Partitions    []*archive.PartitionReport `json:"partitions"`
}

// VerifyTotals adds up the partitions of a VerifyReport.
type VerifyTotals struct {
	Partitions      int   `json:"partitions"`
	Windows         int   `json:"windows"`
	Archived        int   `json:"archived"`
	Missing         int   `json:"missing"`
	Corrupt         int   `json:"corrupt"`
	Events          int64 `json:"events"`
	Objects         int   `json:"objects"`
	UnlistedObjects int   `json:"unlisted_objects"`
}

// verify checks the archive of a range, per partition and window (archive.VerifyPartitions):
// archived (a manifest covers the window and every object it lists is there
// with its recorded size and SHA-256), missing (no manifest covers it) or
// corrupt (the manifest is unreadable, or an object is missing or changed).
// It reads every object the manifests list. Exit 0 when every window is
// archived, 1 otherwise.
//
// The archive is --out, or the deployed stack's (--stack). Partitions are
// --accounts (default: the caller's account) x --regions: "all" lists each
// account's enabled regions as run and start do (assuming the read role in
// other accounts), "archived" takes the regions that have manifests in the
// archive and needs no AWS call but the archive's (a region with nothing
// archived then goes unnoticed). The 90-day lookback does not apply: old
// archives can be verified.
func (t *tree) verify() *ffcli.Command {
	var f rangeFlags
	var stack string
	var asJSON bool
	var fs *flag.FlagSet
	return t.add("trailfill", command{
		name:       "verify",
		shortUsage: "verify [--trail NAME|ARN] --start T --end T [--out DIR|s3://bucket/prefix | --stack NAME] [--accounts A,B] [--regions R1,R2|all|archived] [--json]",
		shortHelp:  "Check every window of a range against the manifests and objects (SHA-256); exit 1 if anything is missing or changed.",
		longHelp: `verify reads each window's manifest and every object it lists, and lists the day folders
of the range for trail files no manifest lists. The archive is --out, or the stack's
(--stack). --regions archived takes each account's regions from the archive's manifests
and needs no AWS call but the archive's.

Examples:
  trailfill verify --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --out ./archive --regions archived
  trailfill verify --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --accounts 111111111111 --json`,
		flags: func(set *flag.FlagSet) {
			fs = set
			f.register(fs, "")
			fs.StringVar(&stack, "stack", stackDefault(t.env), "without --out: verify this deployed stack's archive ($"+contract.EnvStack+" sets the default)")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
			fs.Lookup("regions").Usage = "comma-separated regions; all (each account's enabled regions, as run resolves them); or archived (the regions with manifests in the archive: no AWS call but the archive's)"
			fs.Lookup("out").Usage = "the archive: a local folder or s3://bucket/prefix (default: the stack's archive)"
			fs.Lookup("org-id").Usage = "organization ID (o-...) of the layout AWSLogs/<o-id>/<account>/... (default: the manifests' own)"
			fs.Lookup("rate").Usage = "not used by verify"
			fs.Lookup("no-lookback-limit").Usage = "not needed by verify: archives of any age are verified"
			fs.Lookup("window-minutes").Usage = "window length in minutes the archive was written with"
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("verify", args); err != nil {
				return err
			}
			return t.verifyExec(ctx, fs, f, stack, asJSON)
		},
	})
}

func (t *tree) verifyExec(ctx context.Context, fs *flag.FlagSet, f rangeFlags, stack string, asJSON bool) error {
	env := t.env
	archived := f.regions == regionsArchived
	if archived {
		f.regions = "all"
	}
	f.noLookback = true
	spec, err := f.spec(env.Now(), false)
	if err != nil {
		return err
	}
	if f.out == "" {
		if err := checkStackName(stack); err != nil {
			return err
		}
	}
	// AWS is needed for S3, the stack, the caller's account or --regions
	// all; deps loads the configuration only then.
	t.deps.profile = spec.Profile
	roleName := spec.RoleName
	if err := t.resolveTrail(ctx, &f, &spec); err != nil {
		return err
	}
	printTrailNotes(env.Stderr, spec.Trail)
	if f.out == "" && spec.Trail == nil {
		cfn, region, err := t.deps.CloudFormation(ctx, "")
		if err != nil {
			return err
		}
		dep, err := readDeployment(ctx, cfn, stack, region)
		if err != nil {
			return err
		}
		if !dep.Archive.IsS3() {
			return usagef("stack %s names no archive: pass --out s3://bucket/prefix", dep.Stack)
		}
		spec.Dest = dep.Archive
		if dep.ReadRoleName != "" && !flagGiven(fs, "role-name") {
			roleName = dep.ReadRoleName
		}
	}
	store, err := t.deps.Store(ctx, spec.Dest, archive.S3Options{})
	if err != nil {
		return err
	}

	var parts []contract.Partition
	switch {
	case len(spec.Accounts) > 0 && len(spec.Regions) > 0:
		for _, a := range spec.Accounts {
			for _, r := range spec.Regions {
				parts = append(parts, contract.Partition{Account: a, Region: r})
			}
		}
	default:
		clients, err := t.deps.Clients(ctx, roleName, spec.Rate)
		if err != nil {
			return err
		}
		if archived {
			parts, err = archivedPartitions(ctx, store, spec, clients)
		} else {
			parts, err = clients.Partitions(ctx, spec.Accounts, spec.Regions)
		}
		if err != nil {
			if len(spec.Regions) == 0 && !archived {
				return fmt.Errorf("resolve --regions all (or pass --regions, or --regions archived to take them from the archive): %w", err)
			}
			return err
		}
	}

	report, err := verifyArchive(ctx, store, spec, parts)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the report: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	} else {
		printVerifyTable(env, report)
	}
	tot := report.Totals
	if !report.Complete {
		what := []string{}
		if tot.Missing > 0 {
			what = append(what, fmt.Sprintf("%d missing", tot.Missing))
		}
		if tot.Corrupt > 0 {
			what = append(what, fmt.Sprintf("%d corrupt", tot.Corrupt))
		}
		fix := "start the same backfill again to archive the missing windows"
		if tot.Corrupt > 0 {
			fix += "; for corrupt windows delete their manifests first (listed above), then start again"
		}
		return failedError{fmt.Sprintf("archive incomplete: %s of %d window(s) in %d partition(s): %s", strings.Join(what, " and "), tot.Windows, tot.Partitions, fix)}
	}
	fmt.Fprintf(env.Stderr, "trailfill: archive complete: %d window(s) in %d partition(s), %d events in %d objects, every SHA-256 matches\n",
		tot.Windows, tot.Partitions, tot.Events, tot.Objects)
	return nil
}

// archivedPartitions is --accounts (or the caller's account) x the regions
// that have manifests under trailfill/manifests/<account>/.
func archivedPartitions(ctx context.Context, store archive.Store, spec rangeSpec, clients *awsconf.Clients) ([]contract.Partition, error) {
	accounts := spec.Accounts
	if len(accounts) == 0 {
		caller, err := clients.CallerAccount(ctx)
		if err != nil {
			return nil, err
		}
		accounts = []string{caller}
	}
	var parts []contract.Partition
	for _, a := range accounts {
		prefix := archive.ManifestRoot + a + "/"
		keys, err := store.List(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("list the manifests of account %s: %w", a, err)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			region, _, ok := strings.Cut(strings.TrimPrefix(k, prefix), "/")
			if ok && !seen[region] && validate.Region(region) == nil {
				seen[region] = true
				parts = append(parts, contract.Partition{Account: a, Region: region})
			}
		}
		if len(seen) == 0 {
			return nil, usagef("--regions archived: the archive %s holds no manifests of account %s: check --out/--stack and --accounts, or pass --regions", store, a)
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Account != parts[j].Account {
			return parts[i].Account < parts[j].Account
		}
		return parts[i].Region < parts[j].Region
	})
	return parts, nil
}

// verifyArchive verifies every partition, four at a time.
func verifyArchive(ctx context.Context, store archive.Store, spec rangeSpec, parts []contract.Partition) (*VerifyReport, error) {
	opts := archive.VerifyOptions{Windows: archive.Windows(spec.Start, spec.End, spec.Window), OrgID: spec.OrgID, Filter: spec.filter()}
	reports, err := archive.VerifyPartitions(ctx, store, parts, opts)
	if err != nil {
		return nil, err
	}
	r := &VerifyReport{
		Archive:       store.String(),
		Start:         spec.Start.Format(time.RFC3339),
		End:           spec.End.Format(time.RFC3339),
		WindowMinutes: int(spec.Window / time.Minute),
		Complete:      true,
		Partitions:    reports,
	}
	for _, p := range reports {
		t := &r.Totals
		t.Partitions++
		t.Windows += p.Windows
		t.Archived += p.Archived
		t.Missing += p.Missing
		t.Corrupt += p.Corrupt
		t.Events += p.Events
		t.Objects += p.Objects
		t.UnlistedObjects += len(p.Unlisted)
		if !p.Complete() {
			r.Complete = false
		}
	}
	return r, nil
}

// printVerifyTable prints the report for people: one row per partition, then
// the missing windows (as ranges), the corrupt windows and the unlisted files.
func printVerifyTable(env *Env, r *VerifyReport) {
	w := env.Stdout
	fmt.Fprintf(w, "archive %s, %s .. %s, %d-minute windows\n", r.Archive, r.Start, r.End, r.WindowMinutes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tWINDOWS\tARCHIVED\tMISSING\tCORRUPT\tEVENTS\tOBJECTS\tUNLISTED")
	for _, p := range r.Partitions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Account, p.Region, p.Windows, p.Archived, p.Missing, p.Corrupt, p.Events, p.Objects, len(p.Unlisted))
	}
	t := r.Totals
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", t.Windows, t.Archived, t.Missing, t.Corrupt, t.Events, t.Objects, t.UnlistedObjects)
	_ = tw.Flush()
	window := time.Duration(r.WindowMinutes) * time.Minute
	end, _ := time.Parse(time.RFC3339, r.End)
	if t.Missing > 0 {
		fmt.Fprintln(w, "\nmissing windows:")
		for _, p := range r.Partitions {
			for _, run := range windowRuns(p.MissingWindows, window, end) {
				fmt.Fprintf(w, "  %s/%s: %s\n", p.Account, p.Region, run)
			}
		}
	}
	if t.Corrupt > 0 {
		fmt.Fprintln(w, "\ncorrupt windows (manifest, then each object that fails):")
		for _, p := range r.Partitions {
			for _, c := range p.CorruptWindows {
				fmt.Fprintf(w, "  %s/%s %s: %s\n", p.Account, p.Region, c.Window.Format("2006-01-02T15:04Z"), c.Manifest)
				for _, o := range c.Problems {
					fmt.Fprintf(w, "    %s: %s\n", o.Key, o.Problem)
				}
			}
		}
	}
	if t.UnlistedObjects > 0 {
		fmt.Fprintln(w, "\ntrail files of the range that no manifest lists (a duplicate left by another run, or CloudTrail's own delivery):")
		for _, p := range r.Partitions {
			for _, k := range p.Unlisted {
				fmt.Fprintf(w, "  %s\n", k)
			}
		}
	}
}

// windowRuns groups consecutive window starts into ranges for display.
func windowRuns(starts []time.Time, window time.Duration, end time.Time) []string {
	var out []string
	for i := 0; i < len(starts); {
		j := i
		for j+1 < len(starts) && starts[j+1].Equal(starts[j].Add(window)) {
			j++
		}
		from, to := starts[i], starts[j].Add(window)
		if to.After(end) {
			to = end
		}
		out = append(out, fmt.Sprintf("%s .. %s (%d window(s))", from.Format("2006-01-02T15:04Z"), to.Format("2006-01-02T15:04Z"), j-i+1))
		i = j + 1
	}
	return out
}
