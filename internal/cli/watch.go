package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/schollz/progressbar/v3"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/clock"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/pace"
)

// defaultScanInterval is how often watch reads the archive's manifests.
const defaultScanInterval = time.Minute

// watch follows an execution of the deployed state machine until it ends.
//
// Each poll costs one DescribeExecution and one DescribeMapRun (ListMapRuns
// until the Map Run exists): the partition counts come from the Map Run.
// For a backfill of at most maxScanPartitions partitions, progress in
// windows and events also comes from the archive's manifests, read far less
// often: on the first poll, then every --scan-interval (a whole number of
// polls), and on the last (backfill.ArchiveProgress: one LIST per 1,000
// manifests of each partition not complete yet, and one GET per manifest
// over the whole watch); the partitions are read once from the staging
// bucket. At the end the outcome is read from the child results in the
// staging bucket (the results manifest, and the FAILED files or, after a
// success, the SUCCEEDED files).
func (t *tree) watch() *ffcli.Command {
	var stack, profile string
	var interval, scanInterval time.Duration
	var fs *flag.FlagSet
	return t.add("trailfill", command{
		name:       "watch",
		shortUsage: "watch EXECUTION [--stack NAME] [--interval 5s] [--scan-interval 1m]",
		shortHelp:  "Follow an execution (Map Run counters, windows and events archived, ETA); the exit code is its outcome.",
		longHelp: `EXECUTION is the execution ARN trailfill start printed, or its name (resolved against the
state machine of --stack). The execution and its Map Run are polled every --interval;
for up to 200 partitions the archive's manifests are read every --scan-interval (and
at the start and the end), which keeps the S3 requests of a long watch low. At the end
watch reads the partitions' results from the stack's staging bucket and prints each
failed partition with its account, region and cause (s3:GetObject on the staging
bucket's inputs/* and results/*: docs/deploy.md section 8).
Exit code: 0 when the execution succeeded, 1 otherwise.

Examples:
  trailfill watch arn:aws:states:eu-west-1:111122223333:execution:trailfill-backfill:tf-111122223333-20250417T0000Z-20250420T0000Z-20251123T201500Z
  trailfill watch tf-111122223333-20250417T0000Z-20250420T0000Z-20251123T201500Z --interval 30s`,
		flags: func(set *flag.FlagSet) {
			fs = set
			fs.StringVar(&stack, "stack", stackDefault(t.env), "the deployed trailfill stack: resolves an execution name and locates the archive for progress ($"+contract.EnvStack+" sets the default)")
			fs.DurationVar(&interval, "interval", 5*time.Second, "how often to poll the execution")
			fs.DurationVar(&scanInterval, "scan-interval", defaultScanInterval, "how often to read the archive's manifests for progress (at least --interval)")
			fs.StringVar(&profile, "profile", "", "AWS shared-config profile (default: AWS_PROFILE or default)")
		},
		exec: func(ctx context.Context, args []string) error {
			// Flags may come before or after EXECUTION.
			pos, err := parseInterspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usagef("missing EXECUTION: give the execution ARN (or name) that trailfill start printed")
			}
			if len(pos) > 1 {
				return usagef("unexpected argument %q: watch follows one execution", pos[1])
			}
			if interval <= 0 {
				return usagef("--interval %s: give a positive duration such as 5s", interval)
			}
			if scanInterval < interval {
				return usagef("--scan-interval %s: give at least --interval (%s)", scanInterval, interval)
			}
			if err := checkStackName(stack); err != nil {
				return err
			}
			t.deps.profile = profile
			return t.watchExec(ctx, pos[0], stack, interval, scanInterval)
		},
	})
}

func (t *tree) watchExec(ctx context.Context, exec, stack string, interval, scanInterval time.Duration) error {
	var ref awsconf.ExecutionARN
	isArn := strings.HasPrefix(exec, "arn:")
	if isArn {
		var err error
		if ref, err = awsconf.ParseExecutionARN(exec); err != nil {
			return usagef("%w: give the ARN trailfill start printed", err)
		}
	} else if !validExecutionRef(exec) {
		return usagef("%q is neither an execution ARN nor an execution name: give what trailfill start printed", exec)
	}
	cfn, region, err := t.deps.CloudFormation(ctx, ref.Region)
	if err != nil {
		return err
	}
	dep, derr := readDeployment(ctx, cfn, stack, region)
	if !isArn {
		if derr != nil {
			return derr
		}
		ref = dep.StateMachine.Execution(exec)
	}
	client, err := t.deps.StepFunctions(ctx, ref.Region)
	if err != nil {
		return err
	}
	var w *watcher
	switch {
	case derr != nil:
		w = &watcher{env: t.env, sfn: client, interval: interval, scanEvery: scanEvery(interval, scanInterval),
			note: fmt.Sprintf("archive progress not shown: %v", oneLine(derr.Error()))}
	case ref.StateMachine() != dep.StateMachine:
		w = &watcher{env: t.env, sfn: client, interval: interval, scanEvery: scanEvery(interval, scanInterval),
			note: fmt.Sprintf("archive progress not shown: the execution does not belong to stack %s (pass --stack)", dep.Stack)}
	default:
		if w, err = t.newWatcher(ctx, client, dep, interval, scanInterval); err != nil {
			return err
		}
	}
	return w.watch(ctx, ref.String())
}

// scanEvery is the number of polls between manifest scans.
func scanEvery(interval, scanInterval time.Duration) int {
	return max(1, int((scanInterval+interval-1)/interval))
}

// watcher follows one execution.
type watcher struct {
	env   *Env
	sfn   StepFunctionsAPI
	store archive.Store // nil: no archive progress
	note  string        // why store is nil, if it matters
	// staging reads the staging bucket (partitions, child results); nil
	// when the stack is unknown.
	staging   backfill.ObjectGetter
	bucket    string // the staging bucket
	interval  time.Duration
	scanEvery int         // polls between manifest scans (1: every poll)
	clock     clock.Clock // nil: real time
}

func (t *tree) newWatcher(ctx context.Context, client StepFunctionsAPI, dep *deployment, interval, scanInterval time.Duration) (*watcher, error) {
	w := &watcher{env: t.env, sfn: client, interval: interval, scanEvery: scanEvery(interval, scanInterval)}
	if dep.Staging != "" {
		staging, err := t.deps.Staging(ctx, dep.Staging, dep.StateMachine.Region)
		if err != nil {
			return nil, err
		}
		w.staging, w.bucket = stagingReader{staging}, dep.Staging
	}
	if !dep.Archive.IsS3() {
		w.note = fmt.Sprintf("archive progress not shown: stack %s names no archive", dep.Stack)
		return w, nil
	}
	store, err := t.deps.Store(ctx, dep.Archive, archive.S3Options{})
	if err != nil {
		return nil, err
	}
	w.store = store
	return w, nil
}

// stagingReader reads the stack's staging bucket.
type stagingReader struct{ store *archive.S3Store }

func (r stagingReader) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	if bucket != r.store.Bucket {
		return nil, fmt.Errorf("s3://%s/%s is not in the stack's staging bucket %s: watch the execution with the --stack that started it", bucket, key, r.store.Bucket)
	}
	return r.store.Get(ctx, key)
}

// maxScanPartitions is the largest backfill whose archive watch scans for
// progress: a scan lists every unfinished partition's manifests (a LIST per
// 1,000 of them, 5 for a partition's 90 days), so at 85,000 partitions one
// scan would be some 425,000 requests. Above it the Map Run's counts show
// the progress, and verify checks the archive once the execution ended.
const maxScanPartitions = 200

// snapshot is what one poll saw.
type snapshot struct {
	status       string
	items        *sfntypes.MapRunItemCounts // nil until the Map Run exists
	windowsDone  int64
	windowsTotal int64 // 0: unknown
	events       int64 // -1: unknown
	// work is what the manifests show of each partition's reading (nil:
	// no archive), read by at most slots partitions at once (0: all).
	work  []backfill.Work
	slots int
}

func (s snapshot) partitions() string {
	if s.items == nil {
		return "starting the partitions"
	}
	// A partition that fails for good fails its child execution: the Map
	// Run counts it failed (it tolerates any number, and the execution
	// fails at the end when any did).
	i := s.items
	text := fmt.Sprintf("partitions %d/%d finished, %d running", finished(i), i.Total, i.Running)
	if bad := i.Failed + i.Aborted + i.TimedOut; bad > 0 {
		text += fmt.Sprintf(", %d failed", bad)
	}
	return text
}

func (s snapshot) describe() string {
	var b strings.Builder
	b.WriteString(s.partitions())
	if s.windowsTotal > 0 {
		fmt.Fprintf(&b, "; windows %d/%d", s.windowsDone, s.windowsTotal)
	}
	if s.events >= 0 {
		fmt.Fprintf(&b, "; %d events archived", s.events)
	}
	return b.String()
}

// watch polls the execution until it ends and reports its outcome: nil for
// SUCCEEDED, failedError (exit 1) otherwise.
func (w *watcher) watch(ctx context.Context, arn string) error {
	env := w.env
	wait := w.clock
	if wait == nil {
		wait = clock.System{}
	}
	desc, err := w.describe(ctx, arn)
	if err != nil {
		return err
	}
	name := aws.ToString(desc.Name)
	var in contract.ExecutionInput
	var scan *backfill.ArchiveProgress
	var total int64
	if json.Unmarshal([]byte(aws.ToString(desc.Input)), &in) == nil && in.Partitions > 0 {
		start, serr := time.Parse(time.RFC3339, in.Start)
		end, eerr := time.Parse(time.RFC3339, in.End)
		window := time.Duration(in.WindowMinutes) * time.Minute
		if in.WindowMinutes == 0 {
			window = engine.DefaultWindow
		}
		if serr == nil && eerr == nil && engine.CheckWindow(window) == nil {
			total = int64(archive.CountWindows(start, end, window) * in.Partitions)
			fmt.Fprintf(env.Stderr, "trailfill: watching %s: %s .. %s, %d partition(s), %d window(s)\n", name, in.Start, in.End, in.Partitions, total)
			scan = w.archiveProgress(ctx, in, start, end, window)
		}
	}
	if total == 0 {
		fmt.Fprintf(env.Stderr, "trailfill: watching %s\n", name)
	}
	if w.note != "" {
		fmt.Fprintf(env.Stderr, "  %s\n", w.note)
	}

	d := &display{env: env}
	began := time.Now()
	var mapRunArn string
	var first *snapshot
	windowsDone, events := int64(0), int64(-1)
	every := max(1, w.scanEvery)
	for poll := 0; ; poll++ {
		running := desc.Status == sfntypes.ExecutionStatusRunning || desc.Status == sfntypes.ExecutionStatusPendingRedrive
		snap := snapshot{status: string(desc.Status), windowsTotal: total}
		if mapRunArn == "" {
			mapRunArn = w.findMapRun(ctx, arn)
		}
		if mapRunArn != "" {
			if mr, err := w.sfn.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: aws.String(mapRunArn)}); err == nil {
				snap.items = mr.ItemCounts
			}
		}
		if scan != nil && (poll%every == 0 || !running) {
			done, n, err := scan.Scan(ctx)
			if err != nil {
				fmt.Fprintf(env.Stderr, "  archive progress not shown: reading the manifests failed (grant s3:ListBucket and s3:GetObject on the archive): %s\n", oneLine(err.Error()))
				scan = nil
			} else {
				windowsDone, events = done, n
			}
		}
		snap.windowsDone, snap.events = windowsDone, events
		if scan == nil {
			snap.windowsTotal, snap.events = 0, -1
		} else {
			snap.work, snap.slots = backfill.WorkFromArchive(scan.Partitions(), pace.MaxRate), in.MaxConcurrency
		}
		if first == nil {
			first = &snap
		}
		d.show(snap, eta(*first, snap, time.Since(began)), !running)
		if !running {
			break
		}
		if err := wait.Sleep(ctx, w.interval); err != nil {
			return failedError{fmt.Sprintf("stopped watching; the execution continues: trailfill watch %s", arn)}
		}
		if desc, err = w.describe(ctx, arn); err != nil {
			return err
		}
	}
	return w.outcome(ctx, desc)
}

// archiveProgress follows the archive's manifests of the execution's
// partitions (read from the staging bucket), or returns nil (and says why
// when it matters).
func (w *watcher) archiveProgress(ctx context.Context, in contract.ExecutionInput, start, end time.Time, window time.Duration) *backfill.ArchiveProgress {
	switch {
	case w.store == nil:
		return nil
	case in.Partitions > maxScanPartitions:
		w.note = fmt.Sprintf("archive progress not shown for more than %d partitions (each scan would list every partition's manifests): progress in partitions; run trailfill verify once it ended", maxScanPartitions)
		return nil
	case w.staging == nil:
		return nil
	}
	body, err := w.staging.GetObject(ctx, w.bucket, in.PartitionsKey)
	var parts []contract.Partition
	if err == nil {
		err = json.Unmarshal(body, &parts)
	}
	if err != nil {
		w.note = fmt.Sprintf("archive progress not shown: reading the partitions failed (grant s3:GetObject on the staging bucket's %s*): %s", contract.StagingInputsFolder, oneLine(err.Error()))
		return nil
	}
	return backfill.NewArchiveProgress(w.store, parts, start, end, window)
}

func (w *watcher) describe(ctx context.Context, arn string) (*sfn.DescribeExecutionOutput, error) {
	desc, err := w.sfn.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		var missing *sfntypes.ExecutionDoesNotExist
		var invalid *sfntypes.InvalidArn
		switch {
		case errors.As(err, &missing):
			return nil, usagef("execution %s does not exist: check the ARN or name that trailfill start printed, and the region (AWS_REGION)", arn)
		case errors.As(err, &invalid):
			return nil, usagef("%s is not a valid execution ARN: give the ARN trailfill start printed", arn)
		}
		return nil, fmt.Errorf("describe execution %s with states:DescribeExecution (check credentials and permissions): %w", arn, err)
	}
	return desc, nil
}

// findMapRun returns the execution's Map Run ARN, or "" while it has none.
func (w *watcher) findMapRun(ctx context.Context, arn string) string {
	out, err := w.sfn.ListMapRuns(ctx, &sfn.ListMapRunsInput{ExecutionArn: aws.String(arn)})
	if err != nil || len(out.MapRuns) == 0 {
		return ""
	}
	return aws.ToString(out.MapRuns[len(out.MapRuns)-1].MapRunArn)
}

// outcome prints how the execution ended and returns its exit status. The
// outcome's details come from the child results in the staging bucket: the
// totals of the SUCCEEDED files after a success, each failed partition of
// the FAILED files after a failure.
func (w *watcher) outcome(ctx context.Context, desc *sfn.DescribeExecutionOutput) error {
	env := w.env
	took := ""
	if desc.StartDate != nil && desc.StopDate != nil {
		took = " after " + desc.StopDate.Sub(*desc.StartDate).Round(time.Second).String()
	}
	name := aws.ToString(desc.Name)
	if desc.Status == sfntypes.ExecutionStatusSucceeded {
		var out contract.ExecutionOutput
		if json.Unmarshal([]byte(aws.ToString(desc.Output)), &out) != nil || out.Results.Manifest == "" {
			fmt.Fprintf(env.Stderr, "trailfill: execution %s succeeded%s\n", name, took)
			return nil
		}
		res, err := w.results(ctx, out.Results, true)
		if err != nil {
			fmt.Fprintf(env.Stderr, "trailfill: execution %s succeeded%s: %d partition(s)\n  %s\n", name, took, out.Partitions, oneLine(err.Error()))
			return nil
		}
		events, windows, skipped := backfill.Totals(res.Succeeded)
		fmt.Fprintf(env.Stderr, "trailfill: execution %s succeeded%s: %d partition(s), %d window(s) archived, %d already archived, %d events\n",
			name, took, out.Partitions, windows, skipped, events)
		return nil
	}
	status := strings.ToLower(strings.ReplaceAll(string(desc.Status), "_", " "))
	errName, cause := aws.ToString(desc.Error), aws.ToString(desc.Cause)
	fmt.Fprintf(env.Stderr, "trailfill: execution %s %s%s: %s\n", name, status, took, errName)
	if errName != contract.ErrorPartitionsFailed {
		// A timeout, an abort, a Map Run error: the cause says what happened.
		if c := oneLine(cause); c != "" {
			fmt.Fprintf(env.Stderr, "  %s\n", c)
		}
		return failedError{fmt.Sprintf("execution %s %s: fix the cause above and start the same backfill again (archived windows are skipped)", name, status)}
	}
	fc, err := contract.DecodeFailureCause(cause)
	if err != nil {
		return fmt.Errorf("execution %s %s: its cause is not the state machine's (redeploy the stack with this trailfill): %w", name, status, err)
	}
	res, err := w.results(ctx, fc.Results, false)
	if err != nil {
		fmt.Fprintf(env.Stderr, "  %s\n  %s\n", fc.Message, oneLine(err.Error()))
	} else {
		printFailures(env.Stderr, res.Failed, fc.Failed, fc.Results)
	}
	return failedError{fmt.Sprintf("execution %s %s: %d partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)", name, status, fc.Failed)}
}

// results reads the child results of the execution.
func (w *watcher) results(ctx context.Context, loc contract.ResultsLocation, succeeded bool) (*backfill.Results, error) {
	if w.staging == nil {
		return nil, fmt.Errorf("the partitions' results are in %s (FAILED files): pass the --stack that started the execution to read them", loc.URL())
	}
	res, err := backfill.ReadResults(ctx, w.staging, loc, succeeded)
	if err != nil {
		return nil, fmt.Errorf("the partitions' results could not be read (grant s3:GetObject on the staging bucket's %s*): %w", contract.StagingResultsFolder, err)
	}
	return res, nil
}

// maxFailureLines is how many failed partitions are printed one per line;
// the rest are counted, and all are in the FAILED files.
const maxFailureLines = 100

// printFailures prints each failed partition (at most maxFailureLines) with
// its account, region, error and message, read from the FAILED files of
// the child results at loc; failed is the Map Run's count.
func printFailures(w io.Writer, failures []contract.PartitionFailure, failed int, loc contract.ResultsLocation) {
	for i, f := range failures {
		if i == maxFailureLines {
			fmt.Fprintf(w, "  ... and %d more failed partition(s): every failure is in the FAILED files %s lists\n", len(failures)-i, loc.URL())
			break
		}
		fmt.Fprintf(w, "  failed %s/%s: %s: %s\n", f.Account, f.Region, f.Error, oneLine(f.Message))
	}
	if len(failures) < failed {
		fmt.Fprintf(w, "  %d failed partition(s) are missing from the results %s\n", failed-len(failures), loc.URL())
	}
}

// eta estimates the time left. With the archive's manifests it is each
// partition's windows left at the density of what it has archived, at the
// quota, partitions in waves of the Map's concurrency (backfill.Estimate: a
// range, or a lower bound while partitions have archived nothing); without
// them, the windows or partitions finished since the watch began, projected.
func eta(first, now snapshot, elapsed time.Duration) string {
	if now.work != nil {
		return backfill.Estimate(now.work, now.slots).String()
	}
	done0, done, total := first.windowsDone, now.windowsDone, now.windowsTotal
	if total == 0 && now.items != nil {
		f := func(s snapshot) int64 {
			if s.items == nil {
				return 0
			}
			return finished(s.items)
		}
		done0, done, total = f(first), f(now), now.items.Total
	}
	if total == 0 || done <= done0 || elapsed <= 0 {
		return "unknown"
	}
	if done >= total {
		return "0s"
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done-done0))
	return left.Round(time.Second).String()
}

// display shows snapshots: a progress bar on a terminal, plain lines
// otherwise (the first, then at most one per Env.ProgressEvery, and the last).
type display struct {
	env  *Env
	bar  *progressbar.ProgressBar
	max  int64
	last time.Time
}

func (d *display) show(s snapshot, eta string, final bool) {
	if !d.env.Interactive {
		if final || d.last.IsZero() || time.Since(d.last) >= d.env.ProgressEvery {
			fmt.Fprintf(d.env.Stderr, "progress: %s, %s, ETA %s\n", strings.ToLower(s.status), s.describe(), eta)
			d.last = time.Now()
		}
		return
	}
	max, done := s.windowsTotal, s.windowsDone
	if max == 0 && s.items != nil {
		max, done = s.items.Total, finished(s.items)
	}
	if max > 0 && d.bar == nil {
		d.max = max
		d.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(d.env.Stderr),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(200*time.Millisecond),
		)
	}
	if d.bar != nil {
		_ = d.bar.Set64(min(done, d.max))
		d.bar.Describe(fmt.Sprintf("%s, ETA %s", s.describe(), eta))
		if final {
			_ = d.bar.Finish()
			fmt.Fprintln(d.env.Stderr)
		}
	} else if final {
		fmt.Fprintf(d.env.Stderr, "%s, %s\n", strings.ToLower(s.status), s.describe())
	}
}

// finished is how many of a Map Run's items have ended, one way or another.
func finished(i *sfntypes.MapRunItemCounts) int64 {
	return i.Succeeded + i.Failed + i.Aborted + i.TimedOut
}
