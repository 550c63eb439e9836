package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

func TestRunBadInput(t *testing.T) {
	d := newDeployed(t)
	out := filepath.Join(t.TempDir(), "archive")
	start, end := tfStart.Format(time.RFC3339), tfEnd.Format(time.RFC3339)
	cases := []struct {
		want string
		args []string
	}{
		{"missing --start", []string{"--end", end}},
		{"invalid --start", []string{"--start", "2025-11-22 10:00", "--end", end}},
		{"whole seconds", []string{"--start", "2025-11-22T10:00:00.5Z", "--end", end}},
		{"is not before --end", []string{"--start", end, "--end", start}},
		{"is in the future", []string{"--start", start, "--end", tfNow.Add(time.Hour).Format(time.RFC3339)}},
		{"more than 90 days ago", []string{"--start", tfNow.Add(-91 * 24 * time.Hour).Format(time.RFC3339), "--end", end}},
		{"invalid account ID", []string{"--start", start, "--end", end, "--accounts", "12345"}},
		{"invalid account ID", []string{"--start", start, "--end", end, "--accounts", "111111111111,abc"}},
		{"unknown region", []string{"--start", start, "--end", end, "--regions", "us-east-1,mars-north-1"}},
		{"cannot be combined", []string{"--start", start, "--end", end, "--regions", "all,us-east-1"}},
		{"invalid role name", []string{"--start", start, "--end", end, "--role-name", "bad role"}},
		{"invalid organization ID", []string{"--start", start, "--end", end, "--org-id", "org-1"}},
		{"invalid S3 bucket name", []string{"--start", start, "--end", end, "--out", "s3://A_B/x"}},
		{"--rate", []string{"--start", start, "--end", end, "--rate", "3"}},
		{"--window-minutes", []string{"--start", start, "--end", end, "--window-minutes", "7"}},
		{"flag provided but not defined", []string{"--start", start, "--end", end, "--bogus"}},
		{"unexpected argument", []string{"--start", start, "--end", end, "extra"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append([]string{"run"}, c.args...)
			if !strings.Contains(strings.Join(c.args, " "), "--out") {
				args = append(args, "--out", out)
			}
			code, stdout, stderr := d.run(t, args...)
			if code != ExitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", c.args, code, stdout, stderr, c.want)
			}
		})
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bad input wrote %s", out)
	}
	if n := d.emu.Stats(acctCentral, "us-east-1").Requests; n != 0 {
		t.Fatalf("bad input made %d LookupEvents requests", n)
	}
}

// TestRunMatchesEngineOnly: `trailfill run` goes through the ASL, executed
// locally with the Lambda's handler; its archive is byte for byte the archive the
// engine writes when called directly.
func TestRunMatchesEngineOnly(t *testing.T) {
	d := newDeployed(t)
	viaASL, direct := t.TempDir(), t.TempDir()
	code, _, stderr := d.run(t, append([]string{"run", "--out", viaASL, "--accounts", acctCentral + "," + acctMember, "--rate", "2"}, rangeArgs()...)...)
	if code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "archived ") || !strings.Contains(stderr, "efficiency") {
		t.Errorf("run printed no summary: %s", stderr)
	}
	parts := []string{"111111111111/eu-west-1", "111111111111/us-east-1", "222222222222/ap-southeast-2", "222222222222/eu-west-1", "222222222222/us-east-1"}
	store, err := archive.NewLocalStore(viaASL)
	if err != nil {
		t.Fatal(err)
	}
	testkit.CheckArchive(t, store, testkit.Expect{Events: d.expected(parts...), Start: tfStart, End: tfEnd})

	cfg := testkit.AWSConfig(t, d.emu, acctCentral)
	clients := awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, 1000)
	dstore, err := archive.NewLocalStore(direct)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		acct, region, _ := strings.Cut(p, "/")
		client, lim, err := clients.LookupClient(context.Background(), acct, region)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.Run(context.Background(), engine.Config{Store: dstore}, engine.Job{Account: acct, Region: region, Start: tfStart, End: tfEnd, Client: client, Limiter: lim}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := trailFiles(t, store), trailFiles(t, dstore)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("run wrote %d trail files, the engine alone %d", len(a), len(b))
	}
	for k, body := range a {
		if !bytes.Equal(body, b[k]) {
			t.Fatalf("%s differs between run and the engine alone", k)
		}
	}
}

// trailFiles maps each trail file's key to its decompressed body.
func trailFiles(t *testing.T, s archive.Store) map[string][]byte {
	t.Helper()
	keys, err := s.List(context.Background(), "AWSLogs/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, k := range keys {
		body, err := s.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if out[k], err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestRunFailingPartitionFailsTheJobAfterTheOthers(t *testing.T) {
	d := newDeployed(t)
	dir := t.TempDir()
	code, _, stderr := d.run(t, append([]string{"run", "--out", dir, "--accounts", acctCentral + "," + acctNoRole, "--regions", "eu-west-1,us-east-1", "--rate", "2"}, rangeArgs()...)...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	staging := filepath.Join(dir, "trailfill", "staging")
	for _, want := range []string{
		"  staging: " + staging + " (the partitions and child results of each run, kept beside the archive)\n",
		"  failed 333333333333/eu-west-1: PartitionError: partition 333333333333/eu-west-1: assume ",
		"  failed 333333333333/us-east-1: PartitionError: partition 333333333333/us-east-1: assume ",
		"over 2 partition(s); 2 partition(s) failed\n",
		"re-run the same command to resume",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	// The run's partitions and results stay beside the archive: the
	// ResultWriter's manifest and a FAILED file naming both failures.
	failed, err := filepath.Glob(filepath.Join(staging, "results", "tf-2acct-20251122T1000Z-20251122T1300Z-20251123T201500Z-*", "*", "FAILED_0.json"))
	if err != nil || len(failed) != 1 {
		t.Fatalf("FAILED files %v (%v)", failed, err)
	}
	body, err := os.ReadFile(failed[0])
	if err != nil || strings.Count(string(body), `"Error":"trailfill.PartitionFailed"`) != 2 || strings.Count(string(body), `\"error\":\"PartitionError\"`) != 2 {
		t.Errorf("FAILED file %s: %s (%v)", failed[0], body, err)
	}
	if m, _ := filepath.Glob(filepath.Join(staging, "inputs", "*", "partitions.json")); len(m) != 1 {
		t.Errorf("partitions objects %v", m)
	}
	store, _ := archive.NewLocalStore(dir)
	testkit.CheckArchive(t, store, testkit.Expect{Events: d.expected("111111111111/eu-west-1", "111111111111/us-east-1"), Start: tfStart, End: tfEnd})
	testkit.CheckManifests(t, store, [][2]string{{acctCentral, "eu-west-1"}, {acctCentral, "us-east-1"}}, tfStart, tfEnd, engine.DefaultWindow)
}

// flakyInvoker fails the first invocation of every partition as the Lambda
// runtime reports a function error, then behaves.
type flakyInvoker struct {
	inner local.Invoker
	mu    sync.Mutex
	seen  map[string]bool
}

func (f *flakyInvoker) Invoke(ctx context.Context, res, fn string, payload json.RawMessage) (json.RawMessage, error) {
	var st contract.Invocation
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, err
	}
	f.mu.Lock()
	first := !f.seen[st.Account+st.Region]
	f.seen[st.Account+st.Region] = true
	f.mu.Unlock()
	if first {
		return nil, &local.TaskError{Name: contract.ErrorPartition, Cause: `{"errorMessage":"transient","errorType":"PartitionError"}`}
	}
	return f.inner.Invoke(ctx, res, fn, payload)
}

// deadlineInvoker gives every invocation a short deadline, as a Lambda timeout.
type deadlineInvoker struct {
	inner  local.Invoker
	budget time.Duration
}

func (d deadlineInvoker) Invoke(ctx context.Context, res, fn string, payload json.RawMessage) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, d.budget)
	defer cancel()
	return d.inner.Invoke(ctx, res, fn, payload)
}

// TestStateMachineRetriesAndDeadlines runs the ASL over the emulators with
// Lambda errors that are retried, and with invocations that reach their deadline
// inside busy windows: the loop resumes from the cursor without loss or
// duplicates.
func TestStateMachineRetriesAndDeadlines(t *testing.T) {
	d := newDeployed(t)
	busyStart := tfStart.Add(30 * time.Minute)
	busy := testkit.Retimed(t, acctMember, "sa-east-1", testkit.Spaced(busyStart, 300*time.Millisecond, 6000))
	testkit.Load(t, d.emu, busy)

	cfg := testkit.AWSConfig(t, d.emu, acctCentral)
	dir := t.TempDir()
	store, _ := archive.NewLocalStore(dir)
	// 120 pages at 20 requests/s take 6 s at least; each invocation reads for
	// 1.5 s and has 1.5 s to write what it read (generous: the race detector
	// on a busy machine slows the writes, and a write cut short by the hard
	// deadline is read again by the next invocation).
	h := &backfill.Handler{Store: store, Clients: awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, 20), Margin: 1500 * time.Millisecond}
	inv := &flakyInvoker{inner: deadlineInvoker{inner: backfill.LocalInvoker(h), budget: 3 * time.Second}, seen: map[string]bool{}}
	spec := rangeSpec{Start: tfStart, End: tfEnd, Window: engine.DefaultWindow, RoleName: contract.DefaultRoleName}
	parts := []contract.Partition{{Account: acctCentral, Region: "us-east-1"}, {Account: acctMember, Region: "sa-east-1"}}
	clock := local.NewFakeClock(tfNow)
	res, err := backfill.LocalExecution{
		Name: "retries", Input: spec.input(store.String(), 2), Partitions: parts, Staging: &local.MemS3{}, AllResults: true,
		Options: local.Options{Invoker: inv, Clock: clock},
	}.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "SUCCEEDED" {
		t.Fatalf("execution %s: %s: %s", res.Status, res.Error, res.Cause)
	}
	if len(res.Results.Succeeded) != 2 {
		t.Fatalf("%d partition summaries, want 2", len(res.Results.Succeeded))
	}
	for _, p := range res.Results.Succeeded {
		if p.Account == acctMember && p.Invocations < 3 {
			t.Errorf("the busy partition finished in %d invocations: no deadline was hit", p.Invocations)
		}
	}
	if len(clock.Sleeps()) < 2 {
		t.Errorf("retry waits %v: the failed first invocations were not retried by the state machine", clock.Sleeps())
	}
	want := append(d.expected("111111111111/us-east-1"), busy...)
	testkit.CheckArchive(t, store, testkit.Expect{Events: want, Start: tfStart, End: tfEnd, Pieces: true})
	testkit.CheckManifests(t, store, [][2]string{{acctCentral, "us-east-1"}, {acctMember, "sa-east-1"}}, tfStart, tfEnd, engine.DefaultWindow)
}

// `run --out s3://bucket/prefix` with nothing but the standard SDK environment
// (AWS_ENDPOINT_URL pointing at an S3-compatible endpoint): exact archive under
// the prefix, and a re-run that adds nothing.
func TestRunToS3PrefixThroughStandardConfiguration(t *testing.T) {
	d := newDeployed(t)
	args := append([]string{"run", "--out", "s3://" + tfBucket + "/recovered/2025", "--accounts", acctCentral, "--regions", "eu-west-1,us-east-1"}, rangeArgs()...)
	if code, _, stderr := d.run(t, args...); code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	store := &archive.S3Store{Client: d.store.Client, Bucket: tfBucket, Prefix: "recovered/2025"}
	testkit.CheckArchive(t, store, testkit.Expect{Events: d.expected("111111111111/eu-west-1", "111111111111/us-east-1"), Start: tfStart, End: tfEnd})
	testkit.CheckManifests(t, store, [][2]string{{acctCentral, "eu-west-1"}, {acctCentral, "us-east-1"}}, tfStart, tfEnd, engine.DefaultWindow)
	before := d.emu.S3Keys(tfBucket, "")
	if code, _, stderr := d.run(t, args...); code != ExitOK || !strings.Contains(stderr, "0 windows done, 12 already archived") {
		t.Fatalf("re-run: exit %d: %s", code, stderr)
	}
	if after := d.emu.S3Keys(tfBucket, ""); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatal("the re-run changed the bucket's keys")
	}
	for _, k := range before {
		if !strings.HasPrefix(k, "recovered/2025/AWSLogs/111111111111/CloudTrail/") && !strings.HasPrefix(k, "recovered/2025/trailfill/manifests/111111111111/") {
			t.Fatalf("object %s is outside the prefix's layout", k)
		}
	}
}
