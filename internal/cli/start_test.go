package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine"
	"github.com/trailfill/trailfill/statemachine/local"
)

// The emulated deployment: the central account (the caller, where the stack
// runs), a member account with the read role, and a member account without
// it.
const (
	acctCentral = "111111111111"
	acctMember  = "222222222222"
	acctNoRole  = "333333333333"
	tfRegion    = "us-east-1"
	tfBucket    = "trailfill-archive"
	tfStaging   = "trailfill-staging-emu"
	tfPrefix    = "org"
	tfMachine   = "arn:aws:states:us-east-1:111111111111:stateMachine:trailfill-backfill"
)

var (
	tfNow   = time.Date(2025, 11, 23, 20, 15, 0, 0, time.UTC)
	tfStart = time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	tfEnd   = tfStart.Add(3 * time.Hour) // 6 windows of 30 minutes
	// enabled regions, as account:ListRegions reports them
	tfRegions = map[string][]string{
		acctCentral: {"eu-west-1", "us-east-1"},
		acctMember:  {"ap-southeast-2", "eu-west-1", "us-east-1"},
		acctNoRole:  {"eu-west-1", "us-east-1"},
	}
)

// deployed is an emulated deployment of the trailfill stack: CloudTrail, STS,
// account and S3 emulators, Step Functions running the embedded state machine
// with the real backfill handler as its Lambda, and CloudFormation with the
// stack's outputs. The CLI reaches it through the standard SDK environment.
type deployed struct {
	emu    *emulator.Server
	sfn    *emulator.StepFunctions
	cfn    *emulator.CloudFormation
	store  *archive.S3Store           // the archive, as the Lambda writes it
	events map[string][]testkit.Event // by account/region: the events of the range
}

func newDeployed(t *testing.T) *deployed {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Rate: 1000, Burst: 10})
	d := &deployed{emu: emu, events: map[string][]testkit.Event{}}
	emu.AddAccount(acctCentral)
	emu.AddAccount(acctMember, contract.DefaultRoleName)
	emu.AddAccount(acctNoRole)
	accts := []string{acctCentral, acctMember, acctNoRole}
	for i, a := range accts {
		emu.SetEnabledRegions(a, tfRegions[a]...)
		for j, r := range tfRegions[a] {
			n := 31 + 17*i + 11*j
			step := (3*time.Hour - time.Minute) / time.Duration(n)
			times := testkit.Spaced(tfStart.Add(7*time.Second), step.Truncate(time.Second), n)
			// Outside the range: one second before it, and at its end.
			times = append(times, tfStart.Add(-time.Second), tfEnd)
			evs := testkit.Retimed(t, a, r, times)
			testkit.Load(t, emu, evs)
			d.events[a+"/"+r] = evs[:n]
		}
	}
	d.deploy(t)
	return d
}

// deploy creates the archive and staging buckets, the state machine bound
// to the backfill handler with the stack's archive, the stack's outputs, and
// the CLI's SDK environment.
func (d *deployed) deploy(t *testing.T) {
	t.Helper()
	emu := d.emu
	for _, b := range []string{tfBucket, tfStaging} {
		if err := emu.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}

	// The backfill Lambda: the central account's role, the stack's archive.
	lcfg := testkit.AWSConfig(t, emu, acctCentral)
	d.store = &archive.S3Store{Client: s3.NewFromConfig(lcfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired // the emulator sends no checksums
	}), Bucket: tfBucket, Prefix: tfPrefix}
	h := &backfill.Handler{Store: d.store, Clients: awsconf.NewClients(lcfg, sts.NewFromConfig(lcfg), contract.DefaultRoleName, 1000)}
	// The state machine's ItemReader and ResultWriter use the emulator's
	// own S3, where the staging bucket is.
	def := statemachine.Render(contract.LocalFunctionName, tfStaging)

	d.sfn = emulator.NewStepFunctions(emu)
	t.Cleanup(d.sfn.Close)
	if err := d.sfn.AddStateMachine(tfMachine, def, emulator.StateMachineOptions{Invoker: backfill.LocalInvoker(h), Clock: local.NewFakeClock(tfNow)}); err != nil {
		t.Fatal(err)
	}
	d.cfn = emulator.NewCloudFormation(emu)
	d.cfn.AddStack(acctCentral, tfRegion, "trailfill", map[string]string{
		"StateMachineArn":         tfMachine,
		"ArchiveBucket":           tfBucket,
		"ArchivePrefix":           tfPrefix,
		"ArchiveDestination":      "s3://" + tfBucket + "/" + tfPrefix,
		"ReadRoleName":            contract.DefaultRoleName,
		"BackfillFunctionRoleArn": "arn:aws:iam::111111111111:role/trailfill-backfill-us-east-1",
		"ConsoleUrl":              "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/statemachines/view/" + tfMachine,
		"StagingBucket":           tfStaging,
	})

	// The CLI: the standard SDK configuration only.
	akid, secret := emu.CallerCredentials(acctCentral)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            emu.URL(),
		"AWS_ACCESS_KEY_ID":           akid,
		"AWS_SECRET_ACCESS_KEY":       secret,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  tfRegion,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
		contract.EnvStack:             "",
	} {
		t.Setenv(k, v)
	}
}

// run runs the trailfill command line and returns its exit code, stdout and
// stderr.
func (d *deployed) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return tfNow }, Clock: local.NewFakeClock(tfNow)}
	code := Main(context.Background(), args, env)
	return code, stdout.String(), stderr.String()
}

// rangeArgs are the range flags of the test backfill.
func rangeArgs(extra ...string) []string {
	return append([]string{"--start", tfStart.Format(time.RFC3339), "--end", tfEnd.Format(time.RFC3339)}, extra...)
}

// expected returns the events of the given partitions and their count per
// partition.
func (d *deployed) expected(parts ...string) []testkit.Event {
	var out []testkit.Event
	for _, p := range parts {
		out = append(out, d.events[p]...)
	}
	return out
}

// slices counts the 5-minute slices with events (the trail files) of a
// partition.
func (d *deployed) slices(part string) int {
	seen := map[int64]bool{}
	for _, e := range d.events[part] {
		seen[e.Time.Truncate(archive.SliceLength).Unix()] = true
	}
	return len(seen)
}

// wantUsage asserts exit code 2 with one line on stderr that contains want,
// nothing on stdout, and no execution started.
func (d *deployed) wantUsage(t *testing.T, want string, args ...string) {
	t.Helper()
	code, stdout, stderr := d.run(t, args...)
	if code != ExitUsage {
		t.Errorf("%v: exit %d, want 2; stderr %q", args, code, stderr)
	}
	if stdout != "" {
		t.Errorf("%v: stdout %q, want nothing", args, stdout)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "trailfill: ") || !strings.Contains(stderr, want) {
		t.Errorf("%v: stderr %q, want one line containing %q", args, stderr, want)
	}
	if n := d.sfn.Calls("StartExecution"); n != 0 {
		t.Fatalf("%v: %d StartExecution requests, want none", args, n)
	}
}

func TestStartDryRunPrintsExactInput(t *testing.T) {
	d := newDeployed(t)
	code, stdout, stderr := d.run(t, append([]string{"start"}, rangeArgs("--accounts", acctCentral+","+acctMember, "--dry-run")...)...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	name := "tf-2acct-20251122T1000Z-20251122T1300Z-20251123T201500Z"
	want := `{
  "partitions_key": "inputs/` + name + `/partitions.json",
  "partitions": 5,
  "start": "2025-11-22T10:00:00Z",
  "end": "2025-11-22T13:00:00Z",
  "window_minutes": 30,
  "role_name": "trailfill-read",
  "max_concurrency": 40,
  "native_lookahead_minutes": 1440,
  "settle_minutes": 20
}
`
	if stdout != want {
		t.Errorf("dry-run input:\n%s\nwant:\n%s", stdout, want)
	}
	// The partitions object it would write.
	objectSize := len(`[{"account":"111111111111","region":"eu-west-1"},{"account":"111111111111","region":"us-east-1"},` +
		`{"account":"222222222222","region":"ap-southeast-2"},{"account":"222222222222","region":"eu-west-1"},{"account":"222222222222","region":"us-east-1"}]`)
	wantErr := fmt.Sprintf("trailfill: dry run: would write the partitions to s3://%s/inputs/%s/partitions.json (%d bytes) and start execution %s of %s with this input (%d bytes): 5 partition(s) x 6 window(s); nothing written or started\n",
		tfStaging, name, objectSize, name, tfMachine, len(compactJSON(t, stdout)))
	if stderr != wantErr {
		t.Errorf("stderr %q, want %q", stderr, wantErr)
	}
	if n := d.sfn.Calls("StartExecution"); n != 0 {
		t.Errorf("dry run sent %d StartExecution requests", n)
	}
	if keys := d.emu.S3Keys(tfStaging, ""); len(keys) != 0 {
		t.Errorf("dry run wrote %v to the staging bucket", keys)
	}
	// Without --accounts: the caller's account, named in the execution name.
	code, stdout, stderr = d.run(t, append([]string{"start"}, rangeArgs("--regions", "us-east-1", "--dry-run", "--max-concurrency", "3", "--window-minutes", "60")...)...)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"partitions": 1,`) || !strings.Contains(stdout, `"window_minutes": 60,`) || !strings.Contains(stdout, `"max_concurrency": 3`) {
		t.Errorf("dry-run input for the caller's account:\n%s", stdout)
	}
	if !strings.Contains(stderr, "inputs/tf-111111111111-20251122T1000Z-20251122T1300Z-20251123T201500Z/partitions.json (49 bytes) and start execution tf-111111111111-20251122T1000Z-20251122T1300Z-20251123T201500Z of") {
		t.Errorf("stderr %q", stderr)
	}
}

// compactJSON is s in compact form (what StartExecution is sent).
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestStartBadInput(t *testing.T) {
	d := newDeployed(t)
	start := func(args ...string) []string { return append([]string{"start"}, args...) }
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"missing --start", start("--end", tfEnd.Format(time.RFC3339))},
		{"is not before --end", start("--start", tfEnd.Format(time.RFC3339), "--end", tfStart.Format(time.RFC3339))},
		{"more than 90 days ago", start("--start", "2025-01-01T00:00:00Z", "--end", tfEnd.Format(time.RFC3339))},
		{"--end 2025-11-24T00:00:00Z is in the future", start("--start", tfStart.Format(time.RFC3339), "--end", "2025-11-24T00:00:00Z")},
		{"--accounts: invalid account ID", start(rangeArgs("--accounts", "12345")...)},
		{"--regions: unknown region", start(rangeArgs("--regions", "mars-1")...)},
		{"--out is not used by start: the deployed stack writes to its own archive", start(rangeArgs("--out", "s3://elsewhere/x")...)},
		{"--org-id is not used by start", start(rangeArgs("--org-id", "o-abcdefghij")...)},
		{"--rate is not used by start", start(rangeArgs("--rate", "1")...)},
		{"--name \"a b\": use 1 to 80 letters", start(rangeArgs("--name", "a b")...)},
		{"--name", start(rangeArgs("--name", strings.Repeat("n", 81))...)},
		{"--max-concurrency 0", start(rangeArgs("--max-concurrency", "0")...)},
		{"--window-minutes", start(rangeArgs("--window-minutes", "7")...)},
		{"--stack \"no such\"", start(rangeArgs("--stack", "no such")...)},
		{"stack nope does not exist in us-east-1", start(rangeArgs("--stack", "nope")...)},
		{"--role-name other: the function of stack trailfill assumes trailfill-read", start(rangeArgs("--role-name", "other")...)},
		{"unexpected argument \"now\"", start(append(rangeArgs(), "now")...)},
		{"flag provided but not defined: -bogus", start(rangeArgs("--bogus")...)},
	} {
		t.Run(tc.want, func(t *testing.T) { d.wantUsage(t, tc.want, tc.args...) })
	}
	// The stack name may come from TRAILFILL_STACK.
	t.Setenv(contract.EnvStack, "missing-stack")
	d.wantUsage(t, "stack missing-stack does not exist", start(rangeArgs()...)...)
	t.Setenv(contract.EnvStack, "")

	// A member account whose read role cannot be assumed: --regions all cannot
	// be resolved (exit 1, nothing started).
	code, _, stderr := d.run(t, start(rangeArgs("--accounts", acctNoRole)...)...)
	if code != ExitFailed || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "resolve --regions all") || !strings.Contains(stderr, "or pass --regions") {
		t.Errorf("no read role: exit %d, %q", code, stderr)
	}
	if n := d.sfn.Calls("StartExecution"); n != 0 {
		t.Fatalf("%d StartExecution requests, want none", n)
	}

	// An execution name that is taken.
	args := start(rangeArgs("--accounts", acctCentral, "--regions", "eu-west-1", "--name", "mine")...)
	if code, _, stderr := d.run(t, args...); code != ExitOK {
		t.Fatalf("first start: exit %d: %s", code, stderr)
	}
	arn := tfMachine[:strings.Index(tfMachine, ":stateMachine:")] + ":execution:trailfill-backfill:mine"
	if _, err := d.sfn.Wait(context.Background(), arn); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := d.run(t, args...)
	if code != ExitUsage || stdout != "" || stderr != "trailfill: execution mine already exists: choose another --name, or omit --name for a fresh one (trailfill watch "+arn+" shows the existing one)\n" {
		t.Errorf("name taken: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := d.sfn.Executions(tfMachine); len(got) != 1 {
		t.Errorf("executions %v, want one", got)
	}
}

// TestStartStagesPartitionsOnce: the partitions object of an execution name
// is written once; start tried again with the same name and partitions goes
// on to StartExecution (which then decides), with other partitions it is
// refused before anything starts. A stack without a staging bucket (an
// older deployment) is refused too.
func TestStartStagesPartitionsOnce(t *testing.T) {
	d := newDeployed(t)
	key := contract.PartitionsObjectKey("again")
	args := func(regions string) []string {
		return append([]string{"start"}, rangeArgs("--accounts", acctCentral, "--regions", regions, "--name", "again")...)
	}
	if code, _, stderr := d.run(t, args("eu-west-1")...); code != ExitOK {
		t.Fatalf("first start: exit %d: %s", code, stderr)
	}
	first, _ := d.emu.S3Object(tfStaging, key)
	arn := "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:again"
	if _, err := d.sfn.Wait(context.Background(), arn); err != nil {
		t.Fatal(err)
	}
	// The same partitions: staged already, and the execution exists.
	code, _, stderr := d.run(t, args("eu-west-1")...)
	if code != ExitUsage || !strings.Contains(stderr, "execution again already exists") || d.sfn.Calls("StartExecution") != 2 {
		t.Errorf("same partitions: exit %d, %d StartExecution: %s", code, d.sfn.Calls("StartExecution"), stderr)
	}
	// Other partitions under the same name: refused, the first object kept.
	code, stdout, stderr := d.run(t, args("us-east-1")...)
	want := "trailfill: execution name again was used before with other partitions (s3://" + tfStaging + "/" + key + "): choose another --name, or omit --name for a fresh one\n"
	if code != ExitUsage || stdout != "" || stderr != want || d.sfn.Calls("StartExecution") != 2 {
		t.Errorf("other partitions: exit %d, %d StartExecution, stdout %q, stderr %q", code, d.sfn.Calls("StartExecution"), stdout, stderr)
	}
	if now, _ := d.emu.S3Object(tfStaging, key); !bytes.Equal(now, first) || !bytes.Contains(first, []byte(`"eu-west-1"`)) {
		t.Errorf("the partitions object changed: %s, was %s", now, first)
	}

	d.cfn.AddStack(acctCentral, tfRegion, "older", map[string]string{"StateMachineArn": tfMachine, "ArchiveDestination": "s3://" + tfBucket})
	code, _, stderr = d.run(t, append([]string{"start", "--stack", "older"}, rangeArgs("--accounts", acctCentral, "--regions", "eu-west-1")...)...)
	if code != ExitFailed || !strings.Contains(stderr, "stack older has no StagingBucket output: redeploy it with this trailfill") {
		t.Errorf("stack without staging bucket: exit %d: %s", code, stderr)
	}
}

func TestExecutionName(t *testing.T) {
	parts := []contract.Partition{{Account: "111111111111", Region: "us-east-1"}, {Account: "111111111111", Region: "eu-west-1"}}
	start := time.Date(2025, 4, 17, 15, 0, 0, 0, time.UTC)
	end := time.Date(2025, 4, 18, 0, 0, 30, 0, time.UTC)
	now := time.Date(2025, 11, 23, 20, 15, 0, 0, time.UTC)
	if got, want := executionName(parts, start, end, now), "tf-111111111111-20250417T1500Z-20250418T000030Z-20251123T201500Z"; got != want {
		t.Errorf("one account: %s, want %s", got, want)
	}
	for i := 2; i <= 14; i++ {
		parts = append(parts, contract.Partition{Account: fmt.Sprintf("%012d", i), Region: "us-east-1"})
	}
	got := executionName(parts, start, end, now)
	if want := "tf-14acct-20250417T1500Z-20250418T000030Z-20251123T201500Z"; got != want {
		t.Errorf("14 accounts: %s, want %s", got, want)
	}
	if len(got) > 80 || !executionNameRE.MatchString(got) {
		t.Errorf("%s is not a valid execution name", got)
	}
}

// partitionsOf lists "account/region" of accounts, sorted.
func partitionsOf(accounts ...string) []string {
	var out []string
	for _, a := range accounts {
		for _, r := range tfRegions[a] {
			out = append(out, a+"/"+r)
		}
	}
	sort.Strings(out)
	return out
}

// putObject overwrites an archive object as someone else would.
func (d *deployed) putObject(t *testing.T, key string, body []byte) {
	t.Helper()
	if err := d.store.Put(context.Background(), key, body); err != nil {
		t.Fatal(err)
	}
}

// deleteObject removes an archive object.
func (d *deployed) deleteObject(t *testing.T, key string) {
	t.Helper()
	_, err := d.store.Client.(*s3.Client).DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(tfBucket), Key: aws.String(tfPrefix + "/" + key)})
	if err != nil {
		t.Fatal(err)
	}
}
