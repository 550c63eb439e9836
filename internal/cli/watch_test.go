package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/testkit"
)

// TestStartWatchVerifyEndToEnd starts a two-account, all-regions backfill of
// the deployed stack, watches it to the end and verifies the archive, through
// the real SDK clients against the emulators.
func TestStartWatchVerifyEndToEnd(t *testing.T) {
	d := newDeployed(t)
	parts := partitionsOf(acctCentral, acctMember)

	code, stdout, stderr := d.run(t, append([]string{"start"}, rangeArgs("--accounts", acctCentral+","+acctMember)...)...)
	if code != ExitOK {
		t.Fatalf("start: exit %d: %s", code, stderr)
	}
	name := "tf-2acct-20251122T1000Z-20251122T1300Z-20251123T201500Z"
	arn := "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:" + name
	if stdout != arn+"\n" {
		t.Fatalf("start printed %q, want the execution ARN", stdout)
	}
	// The partitions are staged in the stack's staging bucket, the state
	// machine's input names them.
	key := "inputs/" + name + "/partitions.json"
	staged, ok := d.emu.S3Object(tfStaging, key)
	if !ok {
		t.Fatalf("no partitions object at s3://%s/%s", tfStaging, key)
	}
	var stagedParts []contract.Partition
	if err := json.Unmarshal(staged, &stagedParts); err != nil || len(stagedParts) != 5 || stagedParts[0] != (contract.Partition{Account: acctCentral, Region: "eu-west-1"}) {
		t.Errorf("staged partitions %s (%v)", staged, err)
	}
	wantErr := "trailfill: started " + name + ": 2025-11-22T10:00:00Z .. 2025-11-22T13:00:00Z, 5 partition(s) x 6 window(s), into s3://trailfill-archive/org\n" +
		fmt.Sprintf("  partitions: s3://%s/%s (%d bytes)\n", tfStaging, key, len(staged)) +
		"  console: https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/" + arn + "\n" +
		"  follow:  trailfill watch " + arn + "\n"
	if stderr != wantErr {
		t.Errorf("start stderr:\n%s\nwant:\n%s", stderr, wantErr)
	}
	if n := d.sfn.Calls("StartExecution"); n != 1 {
		t.Errorf("%d StartExecution requests, want 1", n)
	}

	code, stdout, stderr = d.run(t, "watch", arn, "--interval", "5ms")
	if code != ExitOK {
		t.Fatalf("watch: exit %d: %s", code, stderr)
	}
	var total int
	for _, p := range parts {
		total += len(d.events[p])
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if stdout != "" || len(lines) < 3 {
		t.Fatalf("watch stdout %q, stderr:\n%s", stdout, stderr)
	}
	if want := "trailfill: watching " + name + ": 2025-11-22T10:00:00Z .. 2025-11-22T13:00:00Z, 5 partition(s), 30 window(s)"; lines[0] != want {
		t.Errorf("watch header %q, want %q", lines[0], want)
	}
	last := fmt.Sprintf("progress: succeeded, partitions 5/5 finished, 0 running; windows 30/30; %d events archived, ETA ", total)
	if !strings.HasPrefix(lines[len(lines)-2], last) {
		t.Errorf("last progress line %q, want %q...", lines[len(lines)-2], last)
	}
	if want := fmt.Sprintf("trailfill: execution %s succeeded after 0s: 5 partition(s), 30 window(s) archived, 0 already archived, %d events", name, total); lines[len(lines)-1] != want {
		t.Errorf("watch outcome %q, want %q", lines[len(lines)-1], want)
	}

	// The archive holds every event of the range exactly once.
	testkit.CheckArchive(t, d.store, testkit.Expect{Events: d.expected(parts...), Start: tfStart, End: tfEnd})
	var pairs [][2]string
	for _, p := range parts {
		a, r, _ := strings.Cut(p, "/")
		pairs = append(pairs, [2]string{a, r})
	}
	testkit.CheckManifests(t, d.store, pairs, tfStart, tfEnd, 30*time.Minute)

	// verify, from the stack's archive, proves it complete.
	code, stdout, stderr = d.run(t, append([]string{"verify", "--json"}, rangeArgs("--accounts", acctCentral+","+acctMember)...)...)
	if code != ExitOK {
		t.Fatalf("verify: exit %d: %s", code, stderr)
	}
	var rep VerifyReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, stdout)
	}
	if !rep.Complete || rep.Archive != "s3://trailfill-archive/org" || rep.Start != "2025-11-22T10:00:00Z" || rep.End != "2025-11-22T13:00:00Z" || rep.WindowMinutes != 30 {
		t.Errorf("report header %+v", rep)
	}
	objects := 0
	for i, p := range parts {
		got := rep.Partitions[i]
		want := archive.PartitionReport{VerifyCounts: archive.VerifyCounts{Windows: 6, Archived: 6, Events: int64(len(d.events[p])), Objects: d.slices(p)}}
		if got.Account+"/"+got.Region != p || got.Windows != want.Windows || got.Archived != 6 || got.Missing != 0 || got.Corrupt != 0 ||
			got.Events != want.Events || got.Objects != want.Objects || len(got.MissingWindows) != 0 || len(got.CorruptWindows) != 0 || len(got.Unlisted) != 0 {
			t.Errorf("partition %s: %+v, want %+v", p, *got, want)
		}
		objects += want.Objects
	}
	if want := (VerifyTotals{Partitions: 5, VerifyCounts: archive.VerifyCounts{Windows: 30, Archived: 30, Events: int64(total), Recovered: int64(total), Objects: objects}}); rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	if want := fmt.Sprintf("trailfill: archive complete: 30 window(s) in 5 partition(s), %d events once each (0 delivered by CloudTrail, %d recovered in %d objects), every SHA-256 matches\n", total, total, objects); stderr != want {
		t.Errorf("verify stderr %q, want %q", stderr, want)
	}
	// The JSON document keeps its lists when they are empty.
	if !strings.Contains(stdout, `"missing_windows": [],`) || !strings.Contains(stdout, `"unlisted_objects": []`) {
		t.Errorf("verify --json leaves out empty lists:\n%s", stdout)
	}

	// Watching by name resolves it against the stack's state machine.
	code, _, stderr = d.run(t, "watch", "--interval", "5ms", name)
	if code != ExitOK || !strings.Contains(stderr, "trailfill: execution "+name+" succeeded") {
		t.Errorf("watch by name: exit %d: %s", code, stderr)
	}
	// A second start of the same range archives nothing again.
	code, stdout, stderr = d.run(t, append([]string{"start", "--watch", "--interval", "5ms", "--name", "again"}, rangeArgs("--accounts", acctCentral+","+acctMember)...)...)
	if code != ExitOK || !strings.HasSuffix(stderr, "trailfill: execution again succeeded after 0s: 5 partition(s), 0 window(s) archived, 30 already archived, 0 events\n") {
		t.Errorf("second start --watch: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// TestFailingPartitionShowsInWatchAndVerify backfills a member account
// without the read role: its partitions fail in the Lambda (AssumeRole
// denied); watch names them and exits 1, verify finds their windows missing.
func TestFailingPartitionShowsInWatchAndVerify(t *testing.T) {
	d := newDeployed(t)
	args := append([]string{"start", "--watch", "--interval", "5ms"}, rangeArgs("--accounts", acctCentral+","+acctNoRole, "--regions", "eu-west-1,us-east-1")...)
	code, stdout, stderr := d.run(t, args...)
	name := "tf-2acct-20251122T1000Z-20251122T1300Z-20251123T201500Z"
	arn := "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:" + name
	if code != ExitFailed || stdout != arn+"\n" {
		t.Fatalf("start --watch: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	good := d.expected(acctCentral+"/eu-west-1", acctCentral+"/us-east-1")
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	tail := lines[len(lines)-5:]
	denied := func(region string) string {
		return "  failed 333333333333/" + region + ": PartitionError: partition 333333333333/" + region +
			": assume arn:aws:iam::333333333333:role/trailfill-read (deploy the read role StackSet to account 333333333333, or pass --role-name): "
	}
	if want := fmt.Sprintf("progress: failed, partitions 4/4 finished, 0 running, 2 failed; windows 12/24; %d events archived, ETA ", len(good)); !strings.HasPrefix(tail[0], want) {
		t.Errorf("last progress line %q, want %q...", tail[0], want)
	}
	if want := "trailfill: execution " + name + " failed after "; !strings.HasPrefix(tail[1], want) || !strings.HasSuffix(tail[1], ": trailfill.PartitionsFailed") {
		t.Errorf("outcome line %q", tail[1])
	}
	for i, region := range []string{"eu-west-1", "us-east-1"} {
		if !strings.HasPrefix(tail[2+i], denied(region)) || !strings.Contains(tail[2+i], "AccessDenied") {
			t.Errorf("failed partition line %q, want %q...", tail[2+i], denied(region))
		}
	}
	if want := "trailfill: execution " + name + " failed: 2 partition(s) failed; fix the cause above and start the same backfill again (archived windows are skipped)"; tail[4] != want {
		t.Errorf("final line %q, want %q", tail[4], want)
	}
	// The retries of the failed invocations did not take real time.
	if d.emu.AssumeRoleCalls(acctNoRole) != 6 {
		t.Errorf("%d AssumeRole calls for the account without the role, want 6 (3 attempts x 2 partitions)", d.emu.AssumeRoleCalls(acctNoRole))
	}

	// watch again, by ARN: the same outcome.
	code, _, stderr2 := d.run(t, "watch", arn, "--interval", "5ms")
	if code != ExitFailed || !strings.HasSuffix(stderr2, strings.Join(tail[1:], "\n")+"\n") {
		t.Errorf("watch of the failed execution: exit %d:\n%s", code, stderr2)
	}

	// verify --execution: the partitions the execution failed, from its
	// results (typed JSON), beside the archive's windows.
	code, stdout, stderr = d.run(t, append([]string{"verify", "--execution", name}, rangeArgs("--accounts", acctCentral, "--regions", "eu-west-1,us-east-1")...)...)
	if code != ExitFailed || !strings.Contains(stdout, "\npartitions execution "+name+" failed (from its results):\n  333333333333/eu-west-1: PartitionError: partition 333333333333/eu-west-1: assume ") ||
		!strings.Contains(stderr, "2 partition(s) failed in execution "+name) {
		t.Errorf("verify --execution: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// verify: the failed account's windows are missing, the rest archived.
	verifyArgs := append([]string{"verify"}, rangeArgs("--accounts", acctCentral+","+acctNoRole, "--regions", "eu-west-1,us-east-1")...)
	code, stdout, stderr = d.run(t, verifyArgs...)
	if code != ExitFailed {
		t.Fatalf("verify: exit %d: %s", code, stderr)
	}
	ev := func(p string) int { return len(d.events[p]) }
	sl := d.slices
	want := fmt.Sprintf(`archive s3://trailfill-archive/org, 2025-11-22T10:00:00Z .. 2025-11-22T13:00:00Z, 30-minute windows
ACCOUNT       REGION     WINDOWS  ARCHIVED  PROVISIONAL  MISSING  CORRUPT  EVENTS  NATIVE  RECOVERED  BOTH  OBJECTS  UNLISTED
111111111111  eu-west-1  6        6         0            0        0        %-6d  0       %-9d  0     %-7d  0
111111111111  us-east-1  6        6         0            0        0        %-6d  0       %-9d  0     %-7d  0
333333333333  eu-west-1  6        0         0            6        0        0       0       0          0     0        0
333333333333  us-east-1  6        0         0            6        0        0       0       0          0     0        0
total                    24       12        0            12       0        %-6d  0       %-9d  0     %-7d  0

missing windows:
  333333333333/eu-west-1: 2025-11-22T10:00Z .. 2025-11-22T13:00Z (6 window(s))
  333333333333/us-east-1: 2025-11-22T10:00Z .. 2025-11-22T13:00Z (6 window(s))
`, ev("111111111111/eu-west-1"), ev("111111111111/eu-west-1"), sl("111111111111/eu-west-1"), ev("111111111111/us-east-1"), ev("111111111111/us-east-1"), sl("111111111111/us-east-1"),
		len(good), len(good), sl("111111111111/eu-west-1")+sl("111111111111/us-east-1"))
	if stdout != want {
		t.Errorf("verify table:\n%s\nwant:\n%s", stdout, want)
	}
	if want := "trailfill: archive incomplete: 12 window(s) missing (of 24 window(s) in 4 partition(s)): start the same backfill again to archive the missing windows\n"; stderr != want {
		t.Errorf("verify stderr %q, want %q", stderr, want)
	}

	// Damage the archive: change one object (same size), delete another, and
	// leave a stray trail file no manifest lists.
	ctx := context.Background()
	ms, err := archive.PartitionManifests(ctx, d.store, acctCentral, "eu-west-1", tfStart, tfEnd)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := ms[tfStart.Unix()], ms[tfStart.Add(time.Hour).Unix()]
	if len(w1.Objects) == 0 || len(w2.Objects) < 2 {
		t.Fatalf("windows with too few objects: %d, %d", len(w1.Objects), len(w2.Objects))
	}
	changed := w1.Objects[0].Key
	body, err := d.store.Get(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	body[len(body)-1] ^= 0xff
	d.putObject(t, changed, body)
	deleted := w2.Objects[1].Key
	d.deleteObject(t, deleted)
	stray := archive.PieceKey("", acctCentral, "us-east-1", tfStart.Add(25*time.Minute), 7)
	d.putObject(t, stray, []byte("not a trail file"))

	code, stdout, stderr = d.run(t, append([]string{"verify", "--json"}, rangeArgs("--accounts", acctCentral, "--regions", "archived")...)...)
	if code != ExitFailed {
		t.Fatalf("verify of the damaged archive: exit %d: %s", code, stderr)
	}
	var rep VerifyReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Partitions) != 2 || rep.Complete {
		t.Fatalf("report %+v", rep)
	}
	eu, us := rep.Partitions[0], rep.Partitions[1]
	if eu.Region != "eu-west-1" || eu.Archived != 4 || eu.Corrupt != 2 || eu.Missing != 0 || len(eu.CorruptWindows) != 2 {
		t.Fatalf("eu-west-1: %+v", *eu)
	}
	c1, c2 := eu.CorruptWindows[0], eu.CorruptWindows[1]
	if !c1.Window.Equal(tfStart) || c1.Manifest != w1.Key() || len(c1.Problems) != 1 || c1.Problems[0] != (archive.ObjectProblem{Key: changed, Problem: "sha256 mismatch"}) {
		t.Errorf("changed object: %+v", c1)
	}
	if !c2.Window.Equal(tfStart.Add(time.Hour)) || len(c2.Problems) != 1 || c2.Problems[0] != (archive.ObjectProblem{Key: deleted, Problem: "missing"}) {
		t.Errorf("deleted object: %+v", c2)
	}
	if us.Region != "us-east-1" || us.Archived != 6 || !us.Complete() || len(us.Unlisted) != 1 || us.Unlisted[0] != stray {
		t.Errorf("us-east-1: %+v", *us)
	}
	if rep.Totals.Corrupt != 2 || rep.Totals.Missing != 0 || rep.Totals.UnlistedObjects != 1 {
		t.Errorf("totals %+v", rep.Totals)
	}
	if want := "trailfill: archive incomplete: 2 window(s) corrupt (of 12 window(s) in 2 partition(s)): for corrupt windows delete their manifests (listed above), then start again\n"; stderr != want {
		t.Errorf("verify stderr %q, want %q", stderr, want)
	}
	// The table names the damaged objects.
	_, stdout, _ = d.run(t, append([]string{"verify", "--out", "s3://trailfill-archive/org"}, rangeArgs("--accounts", acctCentral, "--regions", "eu-west-1,us-east-1")...)...)
	for _, want := range []string{
		"corrupt windows (manifest, then each object that fails):\n  111111111111/eu-west-1 2025-11-22T10:00Z: " + w1.Key() + "\n    " + changed + ": sha256 mismatch\n",
		"    " + deleted + ": missing\n",
		"trailfill's trail files that no manifest lists (a run that has not finished, or a concurrent run's; their events are counted):\n  " + stray + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestPrintFailures(t *testing.T) {
	loc := contract.ResultsLocation{Bucket: "staging", Manifest: "results/x/1/manifest.json"}
	fail := func(n int) []contract.PartitionFailure {
		var out []contract.PartitionFailure
		for i := range n {
			out = append(out, contract.PartitionFailure{Account: fmt.Sprintf("%012d", i), Region: "eu-west-1", Error: contract.ErrorPartition, Message: "access\ndenied"})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		failures []contract.PartitionFailure
		failed   int
		want     string
	}{
		{"each on its line", fail(2), 2,
			"  failed 000000000000/eu-west-1: PartitionError: access denied\n  failed 000000000001/eu-west-1: PartitionError: access denied\n"},
		{"missing from the results", fail(1), 3,
			"  failed 000000000000/eu-west-1: PartitionError: access denied\n  2 failed partition(s) are missing from the results s3://staging/results/x/1/manifest.json\n"},
		{"too many to list", fail(maxFailureLines + 5), maxFailureLines + 5,
			"  ... and 5 more failed partition(s): every failure is in the FAILED files s3://staging/results/x/1/manifest.json lists\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printFailures(&b, tc.failures, tc.failed, loc)
			got := b.String()
			if tc.name == "too many to list" {
				if n := strings.Count(got, "\n"); n != maxFailureLines+1 || !strings.HasSuffix(got, tc.want) {
					t.Errorf("%d lines, ending %q", n, got[strings.LastIndex(got[:len(got)-1], "\n")+1:])
				}
				return
			}
			if got != tc.want {
				t.Errorf("printed %q, want %q", got, tc.want)
			}
		})
	}
}

func TestETAAndInteractiveDisplay(t *testing.T) {
	items := func(done, total int64) *sfntypes.MapRunItemCounts {
		return &sfntypes.MapRunItemCounts{Succeeded: done, Running: total - done, Total: total}
	}
	first := snapshot{windowsDone: 10, windowsTotal: 110, items: items(0, 4)}
	for _, tc := range []struct {
		now     snapshot
		elapsed time.Duration
		want    string
	}{
		{snapshot{windowsDone: 30, windowsTotal: 110}, 10 * time.Second, "40s"},
		{snapshot{windowsDone: 10, windowsTotal: 110}, 10 * time.Second, "unknown"},
		{snapshot{windowsDone: 110, windowsTotal: 110}, 10 * time.Second, "0s"},
		{snapshot{items: items(1, 4)}, 5 * time.Second, "15s"}, // no archive: partitions
	} {
		if got := eta(first, tc.now, tc.elapsed); got != tc.want {
			t.Errorf("eta(%+v, %s) = %s, want %s", tc.now, tc.elapsed, got, tc.want)
		}
	}
	var buf strings.Builder
	d := &display{env: &Env{Stderr: &buf, Interactive: true}}
	d.show(snapshot{status: "RUNNING", windowsTotal: 12, windowsDone: 3, events: 40, items: items(1, 2)}, "9s", false)
	d.show(snapshot{status: "SUCCEEDED", windowsTotal: 12, windowsDone: 12, events: 99, items: items(2, 2)}, "0s", true)
	out := buf.String()
	if !strings.Contains(out, "partitions 2/2 finished, 0 running; windows 12/12; 99 events archived, ETA 0s") || !strings.Contains(out, "12/12") || !strings.HasSuffix(out, "\n") {
		t.Errorf("progress bar output %q", out)
	}
}
