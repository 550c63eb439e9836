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
// until the Map Run exists). Progress in windows and events comes from the
// archive's manifests, read far less often: on the first poll, then every
// --scan-interval (a whole number of polls), and on the last
// (backfill.ArchiveProgress: one LIST per 1,000 manifests of each partition
// not complete yet, and one GET per manifest over the whole watch).
func (t *tree) watch() *ffcli.Command {
	var stack, profile string
	var interval, scanInterval time.Duration
	var fs *flag.FlagSet
	return t.add("trailfill", command{
		name:       "watch",
		shortUsage: "watch EXECUTION [--stack NAME] [--interval 5s] [--scan-interval 1m]",
		shortHelp:  "Follow an execution (Map Run counters, windows and events archived, ETA); the exit code is its outcome.",
		longHelp: `EXECUTION is the execution ARN trailfill start printed, or its name (resolved against the
state machine of --stack). The execution is polled every --interval; the archive's
manifests are read every --scan-interval (and at the start and the end), which keeps
the S3 requests of a long watch low (docs/deploy.md section 8).
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
	env       *Env
	sfn       StepFunctionsAPI
	store     archive.Store // nil: no archive progress
	note      string        // why store is nil, if it matters
	interval  time.Duration
	scanEvery int         // polls between manifest scans (1: every poll)
	clock     clock.Clock // nil: real time
}

func (t *tree) newWatcher(ctx context.Context, client StepFunctionsAPI, dep *deployment, interval, scanInterval time.Duration) (*watcher, error) {
	w := &watcher{env: t.env, sfn: client, interval: interval, scanEvery: scanEvery(interval, scanInterval)}
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
	// A partition that fails in the backfill function is caught inside its
	// child execution, which then succeeds: the Map Run counts it finished, and
	// the outcome lists it. Failed children are those the state machine could
	// not catch (an abort, a full history).
	i := s.items
	text := fmt.Sprintf("partitions %d/%d finished, %d running", i.Succeeded+i.Failed+i.Aborted+i.TimedOut, i.Total, i.Running)
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
	if json.Unmarshal([]byte(aws.ToString(desc.Input)), &in) == nil && len(in.Partitions) > 0 {
		start, serr := time.Parse(time.RFC3339, in.Start)
		end, eerr := time.Parse(time.RFC3339, in.End)
		window := time.Duration(in.WindowMinutes) * time.Minute
		if in.WindowMinutes == 0 {
			window = engine.DefaultWindow
		}
		if serr == nil && eerr == nil && engine.CheckWindow(window) == nil {
			total = int64(archive.CountWindows(start, end, window) * len(in.Partitions))
			fmt.Fprintf(env.Stderr, "trailfill: watching %s: %s .. %s, %d partition(s), %d window(s)\n", name, in.Start, in.End, len(in.Partitions), total)
			if w.store != nil {
				scan = backfill.NewArchiveProgress(w.store, in.Partitions, start, end, window)
			}
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
	return w.outcome(desc)
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

// outcome prints how the execution ended and returns its exit status.
func (w *watcher) outcome(desc *sfn.DescribeExecutionOutput) error {
	env := w.env
	took := ""
	if desc.StartDate != nil && desc.StopDate != nil {
		took = " after " + desc.StopDate.Sub(*desc.StartDate).Round(time.Second).String()
	}
	name := aws.ToString(desc.Name)
	if desc.Status == sfntypes.ExecutionStatusSucceeded {
		var out contract.ExecutionOutput
		if json.Unmarshal([]byte(aws.ToString(desc.Output)), &out) != nil || out.Partitions == nil {
			fmt.Fprintf(env.Stderr, "trailfill: execution %s succeeded%s\n", name, took)
			return nil
		}
		windows, skipped := 0, 0
		for _, p := range out.Partitions {
			windows += p.Windows
			skipped += p.WindowsSkipped
		}
		fmt.Fprintf(env.Stderr, "trailfill: execution %s succeeded%s: %d partition(s), %d window(s) archived, %d already archived, %d events\n",
			name, took, len(out.Partitions), windows, skipped, out.Events)
		return nil
	}
	status := strings.ToLower(strings.ReplaceAll(string(desc.Status), "_", " "))
	fmt.Fprintf(env.Stderr, "trailfill: execution %s %s%s: %s\n", name, status, took, aws.ToString(desc.Error))
	failed, err := printFailure(env.Stderr, aws.ToString(desc.Error), aws.ToString(desc.Cause))
	if err != nil {
		return fmt.Errorf("execution %s %s: %w", name, status, err)
	}
	if failed == 0 {
		return failedError{fmt.Sprintf("execution %s %s: fix the cause above and start the same backfill again (archived windows are skipped)", name, status)}
	}
	return failedError{fmt.Sprintf("execution %s %s: %d partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)", name, status, failed)}
}

// printFailure prints why an execution failed, one line per failed
// partition when the state machine failed it for its partitions (the typed
// cause of contract.ErrorPartitionsFailed), else the cause as it is. It
// returns the number of failed partitions (0: not a partition failure).
func printFailure(w io.Writer, errName, cause string) (int, error) {
	if errName != contract.ErrorPartitionsFailed {
		// A timeout, an abort, a Map Run error: the cause says what happened.
		if c := oneLine(cause); c != "" {
			fmt.Fprintf(w, "  %s\n", c)
		}
		return 0, nil
	}
	fc, err := contract.DecodeFailureCause(cause)
	if err != nil {
		return 0, fmt.Errorf("its cause is not the state machine's (redeploy the stack with this trailfill): %w", err)
	}
	for _, p := range fc.Partitions {
		fmt.Fprintf(w, "  failed %s/%s: %s: %s\n", p.Account, p.Region, p.Error, oneLine(contract.CauseMessage(p.Cause)))
	}
	return fc.Failed, nil
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
			return s.items.Succeeded + s.items.Failed + s.items.Aborted + s.items.TimedOut
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
		max, done = s.items.Total, s.items.Succeeded+s.items.Failed+s.items.Aborted+s.items.TimedOut
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
