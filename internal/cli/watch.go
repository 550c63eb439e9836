package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/statemachine/local"
)

// cmdWatch follows an execution of the deployed state machine until it ends.
//
// Each poll costs one DescribeExecution and one DescribeMapRun (ListMapRuns
// until the Map Run exists). Progress in windows and events comes from the
// archive's manifests: each poll lists the manifests of the partitions that
// are not complete yet (one LIST per 1,000 manifests) and reads each new
// manifest once, so over a whole watch every manifest is read once and a
// finished partition costs nothing more.
func cmdWatch(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "watch", "EXECUTION [--stack NAME] [--interval 5s]")
	stack := fs.String("stack", stackFlag(env), "the deployed trailfill stack: resolves an execution name and locates the archive for progress ($"+contract.EnvStack+" sets the default)")
	interval := fs.Duration("interval", 5*time.Second, "how often to poll the execution")
	profile := fs.String("profile", "", "AWS shared-config profile (default: AWS_PROFILE or default)")
	// Flags may come before or after EXECUTION.
	var pos []string
	rest := args
	for {
		if err := parse(env, fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) == 0 {
		return usagef("missing EXECUTION: give the execution ARN (or name) that trailfill start printed")
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q: watch follows one execution", pos[1])
	}
	exec := pos[0]
	if *interval <= 0 {
		return usagef("--interval %s: give a positive duration such as 5s", *interval)
	}
	if err := checkStackName(*stack); err != nil {
		return err
	}
	isArn := strings.HasPrefix(exec, "arn:")
	if isArn {
		if _, ok := parseExecutionArn(exec); !ok {
			return usagef("%q is not an execution ARN (arn:aws:states:<region>:<account>:execution:<state machine>:<name>): give the ARN trailfill start printed", exec)
		}
	} else if !validExecutionRef(exec) {
		return usagef("%q is neither an execution ARN nor an execution name: give what trailfill start printed", exec)
	}

	cfg, err := awsconf.Load(ctx, *profile)
	if err != nil {
		return err
	}
	if isArn {
		cfg.Region = mustRegion(exec, cfg.Region)
	}
	dep, derr := readDeployment(ctx, cloudformation.NewFromConfig(cfg), *stack, cfg.Region)
	arn := exec
	if !isArn {
		if derr != nil {
			return derr
		}
		arn = executionArnOf(dep.StateMachineArn, exec)
	}
	w := newWatcher(env, sfn.NewFromConfig(cfg), dep, cfg, *interval)
	switch {
	case derr != nil:
		w.note = fmt.Sprintf("archive progress not shown: %v", oneLine(derr.Error()))
	case stateMachineOf(arn) != dep.StateMachineArn:
		w.store, w.note = nil, fmt.Sprintf("archive progress not shown: the execution does not belong to stack %s (pass --stack)", dep.Stack)
	}
	return w.watch(ctx, arn)
}

// executionArnParts is a parsed execution ARN.
type executionArnParts struct{ Region, Machine, Name string }

func parseExecutionArn(arn string) (executionArnParts, bool) {
	p := strings.Split(arn, ":")
	if len(p) != 8 || p[0] != "arn" || !strings.HasPrefix(p[1], "aws") || p[2] != "states" || p[3] == "" || len(p[4]) != 12 || p[5] != "execution" || p[6] == "" || p[7] == "" {
		return executionArnParts{}, false
	}
	return executionArnParts{Region: p[3], Machine: p[6], Name: p[7]}, true
}

// stateMachineOf is the ARN of an execution's state machine.
func stateMachineOf(executionArn string) string {
	i := strings.LastIndex(executionArn, ":")
	if i < 0 {
		return ""
	}
	return strings.Replace(executionArn[:i], ":execution:", ":stateMachine:", 1)
}

// validExecutionRef accepts what Step Functions accepts as an execution name.
func validExecutionRef(n string) bool {
	if n == "" || len([]rune(n)) > maxExecutionName {
		return false
	}
	return !strings.ContainsAny(n, " \t\r\n<>{}[]?*\"#%\\^|~`$&,;:/")
}

// watcher follows one execution.
type watcher struct {
	env      *Env
	sfn      StepFunctionsAPI
	store    archive.Store // nil: no archive progress
	note     string        // why store is nil, if it matters
	interval time.Duration
	stack    string
}

func newWatcher(env *Env, client StepFunctionsAPI, dep *deployment, cfg aws.Config, interval time.Duration) *watcher {
	w := &watcher{env: env, sfn: client, interval: interval}
	if dep != nil {
		w.stack = dep.Stack
		if dep.Archive.IsS3() {
			store, err := archive.Open(dep.Archive, awsconf.NewS3(cfg), archive.S3Options{})
			if err == nil {
				w.store = store
			}
		} else {
			w.note = fmt.Sprintf("archive progress not shown: stack %s names no archive", dep.Stack)
		}
	}
	return w
}

// snapshot is what one poll saw.
type snapshot struct {
	status       string
	items        *sfntypes.MapRunItemCounts // nil until the Map Run exists
	windowsDone  int64
	windowsTotal int64 // 0: unknown
	events       int64 // -1: unknown
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
	desc, err := w.describe(ctx, arn)
	if err != nil {
		return err
	}
	name := aws.ToString(desc.Name)
	var in contract.ExecutionInput
	var scan *archiveScanner
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
				scan = newArchiveScanner(w.store, in.Partitions, start, end, window)
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
	for {
		snap := snapshot{status: string(desc.Status), windowsTotal: total, events: -1}
		if mapRunArn == "" {
			mapRunArn = w.findMapRun(ctx, arn)
		}
		if mapRunArn != "" {
			if mr, err := w.sfn.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: aws.String(mapRunArn)}); err == nil {
				snap.items = mr.ItemCounts
			}
		}
		if scan != nil {
			done, events, err := scan.scan(ctx)
			if err != nil {
				fmt.Fprintf(env.Stderr, "  archive progress not shown: reading the manifests failed (grant s3:ListBucket and s3:GetObject on the archive): %s\n", oneLine(err.Error()))
				scan = nil
			} else {
				snap.windowsDone, snap.events = done, events
			}
		}
		if scan == nil {
			snap.windowsTotal = 0
		}
		if first == nil {
			first = &snap
		}
		running := desc.Status == sfntypes.ExecutionStatusRunning || desc.Status == sfntypes.ExecutionStatusPendingRedrive
		d.show(snap, eta(*first, snap, time.Since(began)), !running)
		if !running {
			break
		}
		if err := (local.SystemClock{}).Sleep(ctx, w.interval); err != nil {
			return failedError{fmt.Sprintf("stopped watching; the execution continues: trailfill watch %s", arn)}
		}
		if desc, err = w.describe(ctx, arn); err != nil {
			return err
		}
	}
	return w.outcome(ctx, desc)
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
func (w *watcher) outcome(ctx context.Context, desc *sfn.DescribeExecutionOutput) error {
	env := w.env
	took := ""
	if desc.StartDate != nil && desc.StopDate != nil {
		took = " after " + desc.StopDate.Sub(*desc.StartDate).Round(time.Second).String()
	}
	name := aws.ToString(desc.Name)
	if desc.Status == sfntypes.ExecutionStatusSucceeded {
		var out struct {
			Partitions []contract.PartitionSummary `json:"partitions"`
			Events     int64                       `json:"events"`
		}
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

// eta estimates the time left from the progress made since the watch began.
func eta(first, now snapshot, elapsed time.Duration) string {
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

// archiveScanner counts the windows and events of a backfill found in the
// archive's manifests, reading each manifest once and listing only the
// partitions that are not complete yet.
type archiveScanner struct {
	store   archive.Store
	parts   []contract.Partition
	windows map[int64]archive.Window // by aligned start
	from    time.Time
	to      time.Time

	mu    sync.Mutex
	state map[contract.Partition]*partitionScan
}

type partitionScan struct {
	counted map[string]bool // manifests counted
	windows int64
	events  int64
	done    bool
}

func newArchiveScanner(store archive.Store, parts []contract.Partition, start, end time.Time, window time.Duration) *archiveScanner {
	a := &archiveScanner{store: store, parts: parts, windows: map[int64]archive.Window{}, state: map[contract.Partition]*partitionScan{}}
	ws := archive.Windows(start, end, window)
	for _, w := range ws {
		a.windows[w.Start.Unix()] = w
	}
	if len(ws) > 0 {
		a.from, a.to = ws[0].Start, ws[len(ws)-1].Start
	}
	for _, p := range parts {
		a.state[p] = &partitionScan{counted: map[string]bool{}}
	}
	return a
}

// scan returns the windows archived and the events they hold, over all
// partitions.
func (a *archiveScanner) scan(ctx context.Context) (windows, events int64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range a.parts {
		a.mu.Lock()
		st := a.state[p]
		done := st.done
		a.mu.Unlock()
		if done {
			continue
		}
		g.Go(func() error { return a.scanPartition(gctx, p, st) })
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.state {
		windows += st.windows
		events += st.events
	}
	return windows, events, nil
}

func (a *archiveScanner) scanPartition(ctx context.Context, p contract.Partition, st *partitionScan) error {
	keys, err := archive.ManifestKeys(ctx, a.store, archive.ManifestPrefix(p.Account, p.Region), a.from, a.to.Add(time.Second))
	if err != nil {
		return err
	}
	a.mu.Lock()
	for ws, k := range keys {
		if _, ok := a.windows[ws]; !ok || st.counted[k] {
			delete(keys, ws)
		}
	}
	a.mu.Unlock()
	ms, err := archive.ReadManifests(ctx, a.store, keys, archive.DecodeCloudTrailManifest)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ws, m := range ms {
		w := a.windows[ws]
		if !m.Covers(w.From, w.To) {
			continue // a narrower earlier run: read it again when it is rewritten
		}
		st.counted[keys[ws]] = true
		st.windows++
		st.events += int64(m.Events)
	}
	st.done = st.windows == int64(len(a.windows))
	return nil
}
