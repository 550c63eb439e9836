package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/trail"
	"github.com/trailfill/trailfill/internal/validate"
)

// GapsReport is the document `trailfill gaps --json` prints.
type GapsReport struct {
	Archive          string                `json:"archive"`
	Start            string                `json:"start"`
	End              string                `json:"end"`
	ThresholdSeconds float64               `json:"threshold_seconds"`
	Trail            *trail.Trail          `json:"trail,omitempty"`
	Partitions       []trail.PartitionGaps `json:"partitions"`
	// Fills are the backfills that recover every gap, with their command
	// lines.
	Fills []GapFill `json:"fills"`
}

// GapFill is one backfill of gaps and the commands that run it.
type GapFill struct {
	trail.Fill
	Run          string `json:"run"`
	StartCommand string `json:"start_command"`
	// Unrecoverable: the range starts more than 90 days ago, beyond
	// LookupEvents.
	Unrecoverable bool `json:"unrecoverable,omitempty"`
}

// gaps reports the stretches of a trail's bucket without native delivery.
func (t *tree) gaps() *ffcli.Command {
	var f rangeFlags
	var asJSON bool
	var threshold time.Duration
	return t.add("trailfill", command{
		name:       "gaps",
		shortUsage: "gaps (--trail NAME|ARN | --out s3://bucket/prefix) [--start T] [--end T] [--accounts A,B] [--regions R1,R2|all] [--threshold 30m] [--json]",
		shortHelp:  "Find the stretches without native CloudTrail delivery in a trail's bucket, and the commands that fill them.",
		longHelp: `gaps lists the native trail files of each account and region (names only, by the
delivery time in their names; trailfill's own files are not native delivery) and
reports every stretch longer than --threshold without one, with the trail's last
delivery error (cloudtrail:GetTrailStatus) under --trail. It prints the run and start
command lines that fill exactly those stretches, rounded out to whole windows (events
native files already hold are not written again). The range defaults to the last 90
days, all LookupEvents keeps. A quiet region delivers only when it has events: its
stretches are reported too, and filling them costs a request or two.

Examples:
  trailfill gaps --trail arn:aws:cloudtrail:us-east-1:111111111111:trail/org-trail
  trailfill gaps --out s3://my-trail-bucket/prefix --accounts 111111111111 --regions us-east-1,eu-west-1 \
    --start 2025-04-01T00:00:00Z --end 2025-04-20T00:00:00Z --json`,
		flags: func(fs *flag.FlagSet) {
			f.register(fs, "")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
			fs.DurationVar(&threshold, "threshold", trail.DefaultGapThreshold, "report stretches longer than this without a native delivery")
			fs.Lookup("start").Usage = "start of the delivery times examined, RFC 3339 (default: 90 days ago)"
			fs.Lookup("end").Usage = "end of the delivery times examined, RFC 3339 (default: now)"
			fs.Lookup("out").Usage = "without --trail: the trail bucket, s3://bucket/prefix (or a local copy of it)"
			fs.Lookup("rate").Usage = "not used by gaps"
			fs.Lookup("window-minutes").Usage = "fill ranges are rounded out to windows of this many minutes (the unit of manifests)"
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("gaps", args); err != nil {
				return err
			}
			return t.gapsExec(ctx, &f, threshold, asJSON)
		},
	})
}

func (t *tree) gapsExec(ctx context.Context, f *rangeFlags, threshold time.Duration, asJSON bool) error {
	env := t.env
	now := env.Now().UTC().Truncate(time.Second)
	if f.trail == "" && f.out == "" {
		return usagef("give --trail NAME|ARN, or --out s3://bucket/prefix of the trail's bucket")
	}
	if threshold < time.Minute {
		return usagef("--threshold %s: give at least 1m (CloudTrail delivers about every 5 minutes)", threshold)
	}
	if f.start == "" {
		f.start = now.Add(-validate.Lookback).Truncate(time.Minute).Add(time.Minute).Format(time.RFC3339)
	}
	if f.end == "" {
		f.end = now.Format(time.RFC3339)
	}
	f.noLookback = true
	spec, err := f.spec(now, false)
	if err != nil {
		return err
	}
	t.deps.profile = spec.Profile
	if err := t.resolveTrail(ctx, f, &spec); err != nil {
		return err
	}
	store, err := t.deps.Store(ctx, spec.Dest, archive.S3Options{})
	if err != nil {
		return err
	}
	parts, err := t.gapPartitions(ctx, spec)
	if err != nil {
		return err
	}
	pg, err := trail.Gaps(ctx, store, parts, trail.GapOptions{Start: spec.Start, End: spec.End, Threshold: threshold, Window: spec.Window, OrgID: spec.OrgID})
	if err != nil {
		return err
	}
	report := &GapsReport{
		Archive: store.String(), Start: spec.Start.Format(time.RFC3339), End: spec.End.Format(time.RFC3339),
		ThresholdSeconds: threshold.Seconds(), Partitions: pg, Fills: []GapFill{},
	}
	if spec.Trail != nil {
		report.Trail = spec.Trail.Trail
	}
	for _, fl := range trail.Fills(pg) {
		report.Fills = append(report.Fills, GapFill{Fill: fl,
			Run: fillCommand("run", f, spec, fl), StartCommand: fillCommand("start", f, spec, fl),
			Unrecoverable: fl.Start.Before(now.Add(-validate.Lookback))})
	}
	if asJSON {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the report: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
		return nil
	}
	printGaps(env, report, threshold)
	return nil
}

// gapPartitions are the accounts x regions to examine: the trail's, or the
// flags' (the caller's account, each account's enabled regions).
func (t *tree) gapPartitions(ctx context.Context, spec rangeSpec) ([]contract.Partition, error) {
	if len(spec.Accounts) > 0 && len(spec.Regions) > 0 {
		return contract.Partitions(spec.Accounts, spec.Regions), nil
	}
	clients, err := t.deps.Clients(ctx, spec.RoleName, spec.Rate)
	if err != nil {
		return nil, err
	}
	parts, err := clients.Partitions(ctx, spec.Accounts, spec.Regions)
	if err != nil && len(spec.Regions) == 0 {
		return nil, fmt.Errorf("resolve --regions all (or pass --regions): %w", err)
	}
	return parts, err
}

// fillCommand is the command line of a backfill of fl.
func fillCommand(cmd string, f *rangeFlags, spec rangeSpec, fl trail.Fill) string {
	args := []string{"trailfill", cmd}
	switch {
	case spec.Trail != nil:
		args = append(args, "--trail", spec.Trail.Trail.ARN)
	case cmd == "run":
		args = append(args, "--out", spec.Dest.String())
		if spec.OrgID != "" {
			args = append(args, "--org-id", spec.OrgID)
		}
	}
	args = append(args, "--start", fl.Start.Format(time.RFC3339), "--end", fl.End.Format(time.RFC3339),
		"--accounts", strings.Join(fl.Accounts, ","), "--regions", strings.Join(fl.Regions, ","))
	if f.windowMinutes != contract.DefaultWindowMinutes {
		args = append(args, "--window-minutes", fmt.Sprint(f.windowMinutes))
	}
	if spec.Profile != "" {
		args = append(args, "--profile", spec.Profile)
	}
	return strings.Join(args, " ")
}

func printGaps(env *Env, r *GapsReport, threshold time.Duration) {
	w := env.Stdout
	fmt.Fprintf(w, "native deliveries in %s, %s .. %s (stretches over %s without one are gaps)\n", r.Archive, r.Start, r.End, threshold)
	if tr := r.Trail; tr != nil {
		st := tr.Status
		fmt.Fprintf(w, "trail %s: logging %t, last delivery %s", tr.ARN, st.IsLogging, trail.Stamp(st.LatestDeliveryTime))
		if st.LatestDeliveryError != "" {
			fmt.Fprintf(w, ", last delivery error %s (last attempt %s)", st.LatestDeliveryError, trail.Stamp(st.LatestDeliveryAttemptTime))
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tFILES\tMEDIAN INTERVAL\tFIRST\tLAST\tGAPS")
	n := 0
	for _, p := range r.Partitions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\n", p.Account, p.Region, p.NativeFiles,
			time.Duration(p.MedianIntervalSeconds*float64(time.Second)).Round(time.Second), trail.Stamp(p.FirstDelivery), trail.Stamp(p.LastDelivery), len(p.Gaps))
		n += len(p.Gaps)
	}
	_ = tw.Flush()
	if n == 0 {
		fmt.Fprintf(w, "\nno gaps: every stretch between native deliveries is %s or shorter\n", threshold)
		return
	}
	fmt.Fprintln(w, "\ngaps (last delivery before .. first delivery after):")
	for _, p := range r.Partitions {
		for _, g := range p.Gaps {
			fmt.Fprintf(w, "  %s/%s: %s .. %s (%s)\n", p.Account, p.Region, g.From.Format(time.RFC3339), g.To.Format(time.RFC3339), g.To.Sub(g.From))
		}
	}
	fmt.Fprintln(w, "\nto fill them, locally or on the deployed stack:")
	for _, fl := range r.Fills {
		if fl.Unrecoverable {
			fmt.Fprintf(w, "  (starts more than 90 days ago: LookupEvents keeps only the last 90 days)\n")
		}
		fmt.Fprintf(w, "  %s\n  %s\n", fl.Run, fl.StartCommand)
	}
}
