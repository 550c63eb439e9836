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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
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
	// FailedPartitions are the partitions that --execution failed, read
	// from its child results in the stack's staging bucket.
	FailedPartitions []contract.PartitionFailure `json:"failed_partitions,omitempty"`
}

// VerifyTotals adds up the partitions of a VerifyReport.
type VerifyTotals struct {
	Partitions int `json:"partitions"`
	archive.VerifyCounts
	UnlistedObjects int `json:"unlisted_objects"`
}

// verify checks the archive of a range, per partition and window (archive.VerifyPartitions):
// archived (a settled manifest covers the window and every object it lists is
// there with its recorded size and SHA-256), provisional (archived too near
// the present), missing (no manifest covers it) or corrupt (the manifest is
// unreadable, or an object is missing or changed); and, over every trail file
// of the range including CloudTrail's own, which events native files hold,
// which trailfill's files hold, and which both (native delivery brought them
// after the backfill: `trailfill reconcile` removes trailfill's copies). Exit 0
// when every window is archived and no event is there twice, 1 otherwise.
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
	var stack, execution string
	var asJSON bool
	var fs *flag.FlagSet
	return t.add("trailfill", command{
		name:       "verify",
		shortUsage: "verify [--trail NAME|ARN] --start T --end T [--out DIR|s3://bucket/prefix | --stack NAME] [--accounts A,B] [--regions R1,R2|all|archived] [--json]",
		shortHelp:  "Check every window of a range against the manifests and objects (SHA-256); exit 1 if anything is missing or changed.",
		longHelp: `verify reads each window's manifest and every trail file that can hold events of the
range (trailfill's and, unless --ignore-native, CloudTrail's own, up to --native-lookahead
after it), and reports per window what is archived, provisional, missing or changed, and
the events native delivery and trailfill both hold (run trailfill reconcile for those).
The archive is --out, or the stack's (--stack). --regions archived takes each account's
regions from the archive's manifests and needs no AWS call but the archive's.

Examples:
  trailfill verify --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --out ./archive --regions archived
  trailfill verify --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --accounts 111111111111 --json`,
		flags: func(set *flag.FlagSet) {
			fs = set
			f.register(fs, "")
			fs.StringVar(&stack, "stack", stackDefault(t.env), "without --out: verify this deployed stack's archive ($"+contract.EnvStack+" sets the default)")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
			fs.StringVar(&execution, "execution", "", "also report the partitions this execution of the stack failed (ARN or name, as trailfill start printed it), read from its results in the staging bucket")
			fs.Lookup("regions").Usage = "comma-separated regions; all (each account's enabled regions, as run resolves them); or archived (the regions with manifests in the archive: no AWS call but the archive's)"
			fs.Lookup("out").Usage = "the archive: a local folder or s3://bucket/prefix (default: the stack's archive)"
			fs.Lookup("org-id").Usage = "organization ID (o-...) of the layout AWSLogs/<o-id>/<account>/... (default: the manifests' own)"
			fs.Lookup("rate").Usage = "not used by verify"
			fs.Lookup("no-lookback-limit").Usage = "not needed by verify: archives of any age are verified"
			fs.Lookup("window-minutes").Usage = "window length in minutes the archive was written with"
			fs.Lookup("settle-margin").Usage = "not used by verify"
			fs.Lookup("kms-key").Usage = "not used by verify"
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("verify", args); err != nil {
				return err
			}
			return t.verifyExec(ctx, fs, f, stack, execution, asJSON)
		},
	})
}

func (t *tree) verifyExec(ctx context.Context, fs *flag.FlagSet, f rangeFlags, stack, execution string, asJSON bool) error {
	env := t.env
	if execution != "" && !strings.HasPrefix(execution, "arn:") && !validExecutionRef(execution) {
		return usagef("--execution %q is neither an execution ARN nor an execution name: give what trailfill start printed", execution)
	}
	spec, store, parts, err := t.archivedRange(ctx, fs, f, stack)
	if err != nil {
		return err
	}
	var failed []contract.PartitionFailure
	if execution != "" {
		if failed, err = t.executionFailures(ctx, stack, execution); err != nil {
			return err
		}
	}
	report, err := verifyArchive(ctx, store, spec, parts)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		report.FailedPartitions, report.Complete = failed, false
	}
	if asJSON {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the report: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	} else {
		printVerifyTable(env, report)
		if len(failed) > 0 {
			fmt.Fprintf(env.Stdout, "\npartitions execution %s failed (from its results):\n", execution)
			for _, p := range failed {
				fmt.Fprintf(env.Stdout, "  %s/%s: %s: %s\n", p.Account, p.Region, p.Error, oneLine(p.Message))
			}
		}
	}
	tot := report.Totals
	if !report.Complete {
		var what, fix []string
		if tot.Missing > 0 {
			what = append(what, fmt.Sprintf("%d window(s) missing", tot.Missing))
			fix = append(fix, "start the same backfill again to archive the missing windows")
		}
		if tot.Provisional > 0 {
			what = append(what, fmt.Sprintf("%d window(s) provisional", tot.Provisional))
			fix = append(fix, "run the backfill again once the provisional windows are past the settling margin")
		}
		if tot.Corrupt > 0 {
			what = append(what, fmt.Sprintf("%d window(s) corrupt", tot.Corrupt))
			fix = append(fix, "for corrupt windows delete their manifests (listed above), then start again")
		}
		if len(failed) > 0 {
			what = append(what, fmt.Sprintf("%d partition(s) failed in execution %s", len(failed), execution))
			fix = append(fix, "fix the failures listed above and start the same backfill again")
		}
		if tot.PieceDuplicates > 0 {
			what = append(what, fmt.Sprintf("%d event(s) in more than one of trailfill's files", tot.PieceDuplicates))
			fix = append(fix, "trailfill never writes an event twice: report it with the windows' manifests")
		}
		if tot.Duplicated > 0 {
			what = append(what, fmt.Sprintf("%d event(s) in native and trailfill's files", tot.Duplicated))
			fix = append(fix, "run trailfill reconcile with the same range to remove trailfill's copies")
		}
		return failedError{fmt.Sprintf("archive incomplete: %s (of %d window(s) in %d partition(s)): %s", strings.Join(what, ", "), tot.Windows, tot.Partitions, strings.Join(fix, "; "))}
	}
	fmt.Fprintf(env.Stderr, "trailfill: archive complete: %d window(s) in %d partition(s), %d events once each (%d delivered by CloudTrail, %d recovered in %d objects), every SHA-256 matches\n",
		tot.Windows, tot.Partitions, tot.Events, tot.Native, tot.Recovered, tot.Objects)
	if tot.NativeDuplicates > 0 {
		fmt.Fprintf(env.Stderr, "  CloudTrail's own files hold %d record(s) twice (its delivery is at least once; tools deduplicate on eventID): left as they are\n", tot.NativeDuplicates)
	}
	return nil
}

// executionFailures reads the partitions an execution of the stack failed
// from its child results in the staging bucket (typed JSON, not its cause's
// prose); none for an execution that did not fail in its partitions.
func (t *tree) executionFailures(ctx context.Context, stack, execution string) ([]contract.PartitionFailure, error) {
	var ref awsconf.ExecutionARN
	if strings.HasPrefix(execution, "arn:") {
		var err error
		if ref, err = awsconf.ParseExecutionARN(execution); err != nil {
			return nil, usagef("--execution: %w: give the ARN trailfill start printed", err)
		}
	}
	cfn, region, err := t.deps.CloudFormation(ctx, ref.Region)
	if err != nil {
		return nil, err
	}
	dep, err := readDeployment(ctx, cfn, stack, region)
	if err != nil {
		return nil, err
	}
	if ref.Name == "" {
		ref = dep.StateMachine.Execution(execution)
	}
	client, err := t.deps.StepFunctions(ctx, ref.Region)
	if err != nil {
		return nil, err
	}
	desc, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(ref.String())})
	if err != nil {
		return nil, fmt.Errorf("describe execution %s with states:DescribeExecution: %w", ref, err)
	}
	if aws.ToString(desc.Error) != contract.ErrorPartitionsFailed {
		return nil, nil
	}
	fc, err := contract.DecodeFailureCause(aws.ToString(desc.Cause))
	if err != nil {
		return nil, fmt.Errorf("execution %s failed, but its cause is not the state machine's (redeploy the stack with this trailfill): %w", ref, err)
	}
	staging, err := t.deps.Staging(ctx, dep.Staging, dep.StateMachine.Region)
	if err != nil {
		return nil, err
	}
	res, err := backfill.ReadResults(ctx, stagingReader{staging}, fc.Results, false)
	if err != nil {
		return nil, fmt.Errorf("read the results of execution %s (grant s3:GetObject on the staging bucket's %s*): %w", ref, contract.StagingResultsFolder, err)
	}
	return res.Failed, nil
}

// archivedRange resolves what verify and reconcile work on: the range (no
// lookback limit: archives of any age), the archive (--out, or the deployed
// stack's) and the partitions (--accounts x --regions, where "archived"
// takes each account's regions from the archive's manifests).
func (t *tree) archivedRange(ctx context.Context, fs *flag.FlagSet, f rangeFlags, stack string) (rangeSpec, archive.Store, []contract.Partition, error) {
	archived := f.regions == regionsArchived
	if archived {
		f.regions = "all"
	}
	f.noLookback = true
	spec, err := f.spec(t.env.Now(), false)
	if err != nil {
		return spec, nil, nil, err
	}
	if f.out == "" {
		if err := checkStackName(stack); err != nil {
			return spec, nil, nil, err
		}
	}
	// AWS is needed for S3, the stack, the trail, the caller's account or
	// --regions all; deps loads the configuration only then.
	t.deps.profile = spec.Profile
	roleName := spec.RoleName
	if err := t.resolveTrail(ctx, &f, &spec); err != nil {
		return spec, nil, nil, err
	}
	printTrailNotes(t.env.Stderr, spec.Trail)
	if f.out == "" && spec.Trail == nil {
		cfn, region, err := t.deps.CloudFormation(ctx, "")
		if err != nil {
			return spec, nil, nil, err
		}
		dep, err := readDeployment(ctx, cfn, stack, region)
		if err != nil {
			return spec, nil, nil, err
		}
		if !dep.Archive.IsS3() {
			return spec, nil, nil, usagef("stack %s names no archive: pass --out s3://bucket/prefix", dep.Stack)
		}
		spec.Dest = dep.Archive
		if dep.ReadRoleName != "" && !flagGiven(fs, "role-name") {
			roleName = dep.ReadRoleName
		}
	}
	store, err := t.deps.Store(ctx, spec.Dest, archive.S3Options{KMSKeyID: spec.KMSKeyID})
	if err != nil {
		return spec, nil, nil, err
	}
	var parts []contract.Partition
	switch {
	case len(spec.Accounts) > 0 && len(spec.Regions) > 0:
		parts = contract.Partitions(spec.Accounts, spec.Regions)
	default:
		clients, err := t.deps.Clients(ctx, roleName, spec.Rate)
		if err != nil {
			return spec, nil, nil, err
		}
		if archived {
			parts, err = archivedPartitions(ctx, store, spec, clients)
		} else {
			parts, err = clients.Partitions(ctx, spec.Accounts, spec.Regions)
		}
		if err != nil {
			if len(spec.Regions) == 0 && !archived {
				return spec, nil, nil, fmt.Errorf("resolve --regions all (or pass --regions, or --regions archived to take them from the archive): %w", err)
			}
			return spec, nil, nil, err
		}
	}
	return spec, store, parts, nil
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
	opts := archive.VerifyOptions{Windows: archive.Windows(spec.Start, spec.End, spec.Window), OrgID: spec.OrgID,
		IgnoreNative: spec.IgnoreNative, NativeLookahead: spec.NativeLookahead, Filter: spec.filter()}
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
		t.Add(p.VerifyCounts)
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
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tWINDOWS\tARCHIVED\tPROVISIONAL\tMISSING\tCORRUPT\tEVENTS\tNATIVE\tRECOVERED\tBOTH\tOBJECTS\tUNLISTED")
	for _, p := range r.Partitions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Account, p.Region, p.Windows, p.Archived, p.Provisional, p.Missing, p.Corrupt,
			p.Events, p.Native, p.Recovered, p.Duplicated, p.Objects, len(p.Unlisted))
	}
	t := r.Totals
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", t.Windows, t.Archived, t.Provisional, t.Missing, t.Corrupt,
		t.Events, t.Native, t.Recovered, t.Duplicated, t.Objects, t.UnlistedObjects)
	_ = tw.Flush()
	window := time.Duration(r.WindowMinutes) * time.Minute
	end, _ := time.Parse(time.RFC3339, r.End)
	runs := func(title string, starts func(*archive.PartitionReport) []time.Time) {
		fmt.Fprintln(w, "\n"+title)
		for _, p := range r.Partitions {
			for _, run := range windowRuns(starts(p), window, end) {
				fmt.Fprintf(w, "  %s/%s: %s\n", p.Account, p.Region, run)
			}
		}
	}
	if t.Missing > 0 {
		runs("missing windows:", func(p *archive.PartitionReport) []time.Time { return p.MissingWindows })
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
	if t.Provisional > 0 {
		runs("provisional windows (archived less than the settling margin after their end; run the backfill again later):",
			func(p *archive.PartitionReport) []time.Time { return p.ProvisionalWindows })
	}
	if t.Duplicated > 0 {
		fmt.Fprintln(w, "\nwindows whose events native delivery and trailfill both hold (run trailfill reconcile):")
		for _, p := range r.Partitions {
			for _, d := range p.DuplicatedWindows {
				fmt.Fprintf(w, "  %s/%s %s: %d in both (%d native, %d recovered)\n", p.Account, p.Region, d.Window.Format("2006-01-02T15:04Z"), d.Both, d.Native, d.Recovered)
			}
		}
	}
	if t.UnlistedObjects > 0 {
		fmt.Fprintln(w, "\ntrailfill's trail files that no manifest lists (a run that has not finished, or a concurrent run's; their events are counted):")
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
