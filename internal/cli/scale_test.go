package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

// One execution at scale: 2,000 partitions (200 accounts x 10 regions) with
// a few events each over one window, 50 of them failing (the 5 accounts
// whose read role was never deployed). make test runs the same tests over 12
// accounts (120 partitions, 10 failing); make e2e (scale_e2e_test.go) over
// the 200.
var scaleAccounts = 12

const (
	// scaleStateBound bounds every state output, task request and result of
	// every execution, and the parent's output and cause: a few hundred
	// bytes whatever the partition count (the 256 KiB quota is 128 times
	// more).
	scaleStateBound = 2048
)

var (
	scaleRegions = []string{"ap-northeast-1", "ap-south-1", "ap-southeast-2", "eu-central-1", "eu-west-1", "eu-west-2", "us-east-1", "us-east-2", "us-west-1", "us-west-2"}
	scaleEnd     = tfStart.Add(30 * time.Minute)
)

func scaleAccount(i int) string { return fmt.Sprintf("%012d", 200000000000+i) }

// scaleNoRole: every 40th account (7, 47, ...) has no read role.
func scaleNoRole(i int) bool { return i%40 == 7 }

// scale is the emulated deployment with the scale's accounts and events.
type scale struct {
	*deployed
	accounts []string
	good     []testkit.Event // the events of the partitions that can be read
	failing  []string        // account/region of the failing partitions, sorted
}

func newScale(t *testing.T) *scale {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Rate: 1000, Burst: 10})
	emu.AddAccount(acctCentral)
	s := &scale{deployed: &deployed{emu: emu, events: map[string][]testkit.Event{}}}
	var all []testkit.Event
	for i := range scaleAccounts {
		a := scaleAccount(i)
		s.accounts = append(s.accounts, a)
		if scaleNoRole(i) {
			emu.AddAccount(a)
		} else {
			emu.AddAccount(a, contract.DefaultRoleName)
		}
		for j, r := range scaleRegions {
			// 2 or 3 events in the window, and one at its end (outside the range).
			n := 2 + (i+j)%2
			times := append(testkit.Spaced(tfStart.Add(time.Duration(j)*time.Minute+13*time.Second), 9*time.Minute, n), scaleEnd)
			evs := testkit.Retimed(t, a, r, times)
			all = append(all, evs...)
			if scaleNoRole(i) {
				s.failing = append(s.failing, a+"/"+r)
			} else {
				s.good = append(s.good, evs[:n]...)
			}
		}
	}
	testkit.Load(t, emu, all)
	sort.Strings(s.failing)
	s.deploy(t)
	return s
}

// args are the range flags of the scale's backfill.
func (s *scale) args(extra ...string) []string {
	return append([]string{"--start", tfStart.Format(time.RFC3339), "--end", scaleEnd.Format(time.RFC3339),
		"--accounts", strings.Join(s.accounts, ","), "--regions", strings.Join(scaleRegions, ",")}, extra...)
}

// checkFailures asserts that lines (of stderr) name every failing partition
// once, with its account, region and cause, and nothing else failed.
func (s *scale) checkFailures(t *testing.T, stderr string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(stderr, "\n") {
		rest, ok := strings.CutPrefix(l, "  failed ")
		if !ok {
			continue
		}
		part, cause, _ := strings.Cut(rest, ": ")
		a, r, _ := strings.Cut(part, "/")
		want := contract.ErrorPartition + ": partition " + part + ": assume arn:aws:iam::" + a + ":role/" + contract.DefaultRoleName + " "
		if !strings.HasPrefix(cause, want) || !strings.Contains(cause, "AccessDenied") || r == "" {
			t.Errorf("failure line %q: want %q... with AccessDenied", l, want)
		}
		got = append(got, part)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(s.failing, ",") {
		t.Errorf("%d failure lines, want the %d failing partitions: got %v", len(got), len(s.failing), got)
	}
}

// TestScaleStartWatch: `trailfill start` stages the partitions (2,000 in make e2e) in the
// stack's staging bucket and starts the emulated Step Functions with a small
// input; `trailfill watch` follows the Map Run and reads each failure from
// the FAILED result files; every readable event is archived once.
func TestScaleStartWatch(t *testing.T) {
	s := newScale(t)
	parts, failed := scaleAccounts*len(scaleRegions), len(s.failing)
	name := fmt.Sprintf("tf-%dacct-20251122T1000Z-20251122T1030Z-20251123T201500Z", scaleAccounts)
	arn := "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:" + name
	code, stdout, stderr := s.run(t, append([]string{"start"}, s.args()...)...)
	if code != ExitOK || stdout != arn+"\n" {
		t.Fatalf("start: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	staged, ok := s.emu.S3Object(tfStaging, contract.PartitionsObjectKey(name))
	if !ok || !bytes.HasPrefix(staged, []byte(`[{"account":"200000000000","region":"ap-northeast-1"},`)) {
		t.Fatalf("staged partitions: %v %.100s", ok, staged)
	}

	code, stdout, stderr = s.run(t, "watch", arn, "--interval", "20ms")
	if code != ExitFailed || stdout != "" {
		t.Fatalf("watch: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	wants := []string{
		fmt.Sprintf("trailfill: watching %s: 2025-11-22T10:00:00Z .. 2025-11-22T10:30:00Z, %d partition(s), %d window(s)\n", name, parts, parts),
		fmt.Sprintf("progress: failed, partitions %d/%d finished, 0 running, %d failed", parts, parts, failed),
		"trailfill: execution " + name + " failed after ",
		": " + contract.ErrorPartitionsFailed + "\n",
		fmt.Sprintf("trailfill: execution %s failed: %d partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)\n", name, failed),
	}
	if parts > 200 {
		wants = append(wants, "  archive progress not shown for more than 200 partitions")
	}
	for _, want := range wants {
		if !strings.Contains(stderr, want) {
			t.Errorf("watch stderr lacks %q", want)
		}
	}
	s.checkFailures(t, stderr)
	testkit.CheckArchive(t, s.store, testkit.Expect{Events: s.good, Start: tfStart, End: scaleEnd})

	// The parent's input, state outputs and cause stay small: read as a user
	// would, through DescribeExecution and GetExecutionHistory.
	client := sfn.NewFromConfig(testkit.AWSConfig(t, s.emu, acctCentral))
	ctx := context.Background()
	desc, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if in, cause := aws.ToString(desc.Input), aws.ToString(desc.Cause); len(in) > scaleStateBound || len(cause) > scaleStateBound || !strings.Contains(cause, fmt.Sprintf(`"failed":%d`, failed)) {
		t.Errorf("execution input %d bytes, cause %d bytes: %s", len(in), len(cause), cause)
	}
	hist, err := client.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(hist.Events); n > 30 || hist.NextToken != nil {
		t.Errorf("the parent's history has %d events (more: %v): want a few, whatever the partition count", n, hist.NextToken != nil)
	}
	exits := 0
	for _, ev := range hist.Events {
		if d := ev.StateExitedEventDetails; d != nil {
			exits++
			if out := aws.ToString(d.Output); len(out) > scaleStateBound {
				t.Errorf("state %s output %d bytes", aws.ToString(d.Name), len(out))
			}
		}
	}
	if exits < 3 {
		t.Errorf("%d states exited in the parent's history", exits)
	}
}

// TestScaleRun: `trailfill run` executes the same definition in-process over
// a temporary staging folder (the archive is in S3), reads its summary and
// each failure from the child results written there, and removes it.
func TestScaleRun(t *testing.T) {
	s := newScale(t)
	parts, failed := scaleAccounts*len(scaleRegions), len(s.failing)
	var stderr bytes.Buffer
	env := &Env{Stderr: &stderr, Stdout: &bytes.Buffer{}, Now: func() time.Time { return tfNow }, Clock: local.NewFakeClock(tfNow)}
	env.defaults()
	tr := newTree(env, &deps{env: env})
	f := rangeFlags{start: tfStart.Format(time.RFC3339), end: scaleEnd.Format(time.RFC3339), accounts: strings.Join(s.accounts, ","),
		regions: strings.Join(scaleRegions, ","), roleName: contract.DefaultRoleName, out: "s3://" + tfBucket + "/run", windowMinutes: 30, rate: 2}
	spec, err := f.spec(tfNow, true)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := tr.backfillLocally(context.Background(), spec)
	if code := report(env, err); code != ExitFailed || sum == nil {
		t.Fatalf("run: exit %d, want 1:\n%s", code, stderr.String())
	}
	out := stderr.String()
	good := len(s.good)
	for _, want := range []string{
		" (a temporary folder for the partitions and child results, removed after the run)\n",
		fmt.Sprintf("trailfill: archived %d events in ", good),
		fmt.Sprintf(" %d windows done, 0 already archived, over %d partition(s); %d partition(s) failed\n", parts-failed, parts-failed, failed),
		"trailfill: execution failed: " + contract.ErrorPartitionsFailed + "\n",
		"trailfill: backfill failed: " + contract.ErrorPartitionsFailed + "; archived windows are kept, re-run the same command to resume\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("run stderr lacks %q:\n%.3000s", want, out)
		}
	}
	_, rest, _ := strings.Cut(out, "  staging: ")
	if dir, _, ok := strings.Cut(rest, " (a temporary folder"); !ok || !strings.HasPrefix(dir, os.TempDir()) {
		t.Errorf("staging folder %q", dir)
	} else if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary staging folder %s is still there (%v)", dir, err)
	}
	s.checkFailures(t, out)
	if sum.Events != int64(good) || len(sum.Partitions) != parts-failed || len(sum.Failures) != failed || sum.Outcome.Partitions != parts || sum.Outcome.Failed != failed {
		t.Errorf("summary: %d events, %d partitions, %d failures, outcome %+v", sum.Events, len(sum.Partitions), len(sum.Failures), *sum.Outcome)
	}
	store := &archive.S3Store{Client: s.store.Client, Bucket: tfBucket, Prefix: "run"}
	testkit.CheckArchive(t, store, testkit.Expect{Events: s.good, Start: tfStart, End: scaleEnd})

	// Every payload of every execution (the parent and its 2,000 children)
	// stays small; the parent's history is a few events.
	st := sum.Stats
	for _, p := range []struct {
		what string
		size local.PayloadSize
	}{{"execution input", st.MaxSizes.Input}, {"state output", st.MaxSizes.StateOutput}, {"task request", st.MaxSizes.TaskArguments}, {"task result", st.MaxSizes.TaskResult}} {
		if p.size.Bytes == 0 || p.size.Bytes > scaleStateBound {
			t.Errorf("largest %s %d bytes (state %q of %s): want at most %d", p.what, p.size.Bytes, p.size.State, p.size.Execution, scaleStateBound)
		}
	}
	if st.Executions != parts+1 || st.HistoryEvents > 30 || len(sum.Cause) > scaleStateBound {
		t.Errorf("%d executions, parent history %d events, cause %d bytes", st.Executions, st.HistoryEvents, len(sum.Cause))
	}
	t.Logf("largest state output %d bytes (%s), task request %d, task result %d; parent history %d events, largest %d",
		st.MaxSizes.StateOutput.Bytes, st.MaxSizes.StateOutput.State, st.MaxSizes.TaskArguments.Bytes, st.MaxSizes.TaskResult.Bytes, st.HistoryEvents, st.MaxHistoryEvents)
}
