//go:build lambdae2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

const (
	acctCentral = "111111111111" // the function's own account: no role assumed
	acctMember  = "222222222222" // has the read role
	acctNoRole  = "333333333333" // known, but its read role was never deployed
	archiveBkt  = "trailfill-archive"
	archivePfx  = "recovered"
	readRole    = contract.DefaultRoleName
	// The stack deploys the backfill function with a 15-minute timeout.
	stackTimeoutSeconds = 900
	stackMemoryMB       = 1024
)

var (
	rangeStart = time.Date(2025, 4, 17, 15, 0, 0, 0, time.UTC)
	rangeEnd   = rangeStart.Add(3 * time.Hour) // six 30-minute windows
)

// backfillRun is one emulated deployment: the emulators with the archive
// bucket, the backfill bootstrap under aws-lambda-rie with the stack's
// environment, and the embedded state machine bound to it.
type backfillRun struct {
	emu   *emulator.Server
	rie   *rie
	store archive.Store // the archive in the emulator's S3, as the test reads it
}

// newBackfillRun starts the emulators (cfg) and aws-lambda-rie with the
// environment the stack gives the function (stacks/backfill.go: bucket,
// prefix, role name, stop margin when set) plus what Lambda provides.
func newBackfillRun(t *testing.T, cfg emulator.Config, timeoutSeconds int, extra map[string]string) *backfillRun {
	t.Helper()
	emu := testkit.StartEmulator(t, cfg)
	emu.AddAccount(acctCentral)
	emu.AddAccount(acctMember, readRole)
	emu.AddAccount(acctNoRole)
	if err := emu.CreateBucket(archiveBkt); err != nil {
		t.Fatal(err)
	}
	env := lambdaEnv(emu, acctCentral, "trailfill-backfill", timeoutSeconds, stackMemoryMB)
	env[contract.EnvBucket] = archiveBkt
	env[contract.EnvPrefix] = archivePfx
	env[contract.EnvRoleName] = readRole
	for k, v := range extra {
		env[k] = v
	}
	r := startRIE(t, binary(t, envBackfillBootstrap), env)
	s3c := awsconf.NewS3(testkit.AWSConfig(t, emu, acctCentral))
	return &backfillRun{emu: emu, rie: r, store: &archive.S3Store{Client: s3c, Bucket: archiveBkt, Prefix: archivePfx}}
}

// execute runs the embedded definition with its Task invoking the function
// under aws-lambda-rie, one partition at a time (one execution environment
// serves one invocation at a time), its partitions staged and its results
// written in memory.
func (b *backfillRun) execute(t *testing.T, partitions [][2]string, clock local.Clock) *backfill.LocalOutcome {
	t.Helper()
	m, err := backfill.Machine(rieFunctionName)
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]contract.Partition, len(partitions))
	for i, p := range partitions {
		parts[i] = contract.Partition{Account: p[0], Region: p[1]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := b.rie.Invocations()
	res, err := backfill.LocalExecution{
		Machine: m, Name: "rie", Partitions: parts, Staging: &local.MemS3{}, AllResults: true,
		Input: contract.ExecutionInput{
			Start:          rangeStart.Format(time.RFC3339),
			End:            rangeEnd.Format(time.RFC3339),
			WindowMinutes:  30,
			RoleName:       readRole,
			Destination:    "s3://" + archiveBkt + "/" + archivePfx,
			MaxConcurrency: 1,
		},
		Options: local.Options{Invoker: b.rie.Invoker(), Clock: clock, MaxConcurrency: 1},
	}.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.rie.Invocations() - before; n != res.Stats.TaskInvocations {
		t.Fatalf("aws-lambda-rie served %d invocations, the state machine made %d", n, res.Stats.TaskInvocations)
	}
	return res
}

// outcomes are the summaries of the partitions archived, read from the
// child results.
func outcomes(t *testing.T, res *backfill.LocalOutcome) map[string]contract.PartitionSummary {
	t.Helper()
	if res.Status != local.StatusSucceeded {
		t.Fatalf("execution %s: %s: %s", res.Status, res.Error, res.Cause)
	}
	m := map[string]contract.PartitionSummary{}
	for _, p := range res.Results.Succeeded {
		m[p.Account+"/"+p.Region] = p
	}
	return m
}

// inRange keeps the events of [rangeStart, rangeEnd).
func inRange(events []testkit.Event) []testkit.Event {
	var out []testkit.Event
	for _, e := range events {
		if !e.Time.Before(rangeStart) && e.Time.Before(rangeEnd) {
			out = append(out, e)
		}
	}
	return out
}

func TestBackfillUnderRIE(t *testing.T) {
	t.Parallel()
	binary(t, envRIE)
	binary(t, envBackfillBootstrap)

	t.Run("multi-window backfill", func(t *testing.T) {
		t.Parallel()
		b := newBackfillRun(t, emulator.Config{}, stackTimeoutSeconds, nil)
		// The central partition: an event every 7 minutes from before the
		// range to after it, and a dense window (16:00-16:30, 500 events,
		// ten pages). The member partition (read role assumed): events on
		// window boundaries, at the range end (excluded) and before it.
		central := testkit.Retimed(t, acctCentral, "us-east-1", append(
			testkit.Spaced(rangeStart.Add(-20*time.Minute), 7*time.Minute, 32),
			testkit.Spaced(rangeStart.Add(time.Hour), 3600*time.Millisecond, 500)...))
		member := testkit.Retimed(t, acctMember, "eu-west-1", []time.Time{
			rangeStart.Add(-time.Second), rangeStart, rangeStart.Add(29*time.Minute + 59*time.Second),
			rangeStart.Add(30 * time.Minute), rangeStart.Add(90*time.Minute + 17*time.Second),
			rangeEnd.Add(-time.Second), rangeEnd,
		})
		all := append(central, member...)
		testkit.Load(t, b.emu, all)

		parts := [][2]string{{acctCentral, "us-east-1"}, {acctMember, "eu-west-1"}}
		got := outcomes(t, b.execute(t, parts, nil))
		want := inRange(all)
		testkit.CheckArchive(t, b.store, testkit.Expect{Events: want, Start: rangeStart, End: rangeEnd})
		testkit.CheckManifests(t, b.store, parts, rangeStart, rangeEnd, engine.DefaultWindow)
		wantEvents := map[string]int64{}
		for _, e := range want {
			wantEvents[e.Account+"/"+e.Region]++
		}
		for _, p := range parts {
			o := got[p[0]+"/"+p[1]]
			if o.Events != wantEvents[p[0]+"/"+p[1]] || o.Windows != 6 || o.Invocations != 1 {
				t.Errorf("%s/%s: %+v, want %d events in 6 windows in one invocation", p[0], p[1], o, wantEvents[p[0]+"/"+p[1]])
			}
		}
		if n := b.emu.AssumeRoleCalls(acctMember); n != 1 {
			t.Errorf("%d AssumeRole calls into the member account, want 1", n)
		}
		if n := b.rie.Timeouts(); n != 0 {
			t.Errorf("%d invocations timed out", n)
		}
	})

	t.Run("deadline mid-window resumes in the next invocation", func(t *testing.T) {
		t.Parallel()
		// A 12 s function that stops reading 10 s before its deadline reads
		// for 2 s per invocation; at 2 requests/s and 0.5 s per LookupEvents
		// answer, the dense window (17:01-17:24, 400 events, 8 pages) needs
		// 4 s at least.
		b := newBackfillRun(t, emulator.Config{Latency: 500 * time.Millisecond}, 12, map[string]string{contract.EnvStopMargin: "10"})
		all := testkit.Retimed(t, acctCentral, "us-east-1", append(
			testkit.Spaced(rangeStart.Add(10*time.Minute), 50*time.Minute, 3),
			testkit.Spaced(rangeStart.Add(2*time.Hour+time.Minute), 3500*time.Millisecond, 400)...))
		testkit.Load(t, b.emu, all)

		parts := [][2]string{{acctCentral, "us-east-1"}}
		got := outcomes(t, b.execute(t, parts, nil))[acctCentral+"/us-east-1"]
		testkit.CheckArchive(t, b.store, testkit.Expect{Events: inRange(all), Start: rangeStart, End: rangeEnd, Pieces: true})
		testkit.CheckManifests(t, b.store, parts, rangeStart, rangeEnd, engine.DefaultWindow)
		if got.Invocations < 2 || got.Events != int64(len(inRange(all))) {
			t.Errorf("outcome %+v: want the %d events over more than one invocation", got, len(inRange(all)))
		}
		if n := b.rie.Timeouts(); n != 0 {
			t.Errorf("%d invocations ran into the function timeout instead of stopping before it", n)
		}
		t.Logf("%d events in %d invocations of a 12 s function", got.Events, got.Invocations)
	})

	t.Run("handler error is caught by its errorType", func(t *testing.T) {
		t.Parallel()
		b := newBackfillRun(t, emulator.Config{}, stackTimeoutSeconds, nil)
		good := testkit.Retimed(t, acctCentral, "us-east-1", testkit.Spaced(rangeStart.Add(5*time.Minute), 13*time.Minute, 12))
		testkit.Load(t, b.emu, good)
		testkit.Load(t, b.emu, testkit.Retimed(t, acctNoRole, "us-east-1", testkit.Spaced(rangeStart, time.Hour, 3)))

		// The Retry waits (10 s, 30 s) pass on a fake clock.
		clock := local.NewFakeClock(rangeEnd.Add(24 * time.Hour))
		res := b.execute(t, [][2]string{{acctNoRole, "us-east-1"}, {acctCentral, "us-east-1"}}, clock)
		if res.Status != local.StatusFailed || res.Error != contract.ErrorPartitionsFailed {
			t.Fatalf("execution %s %s: %s; want FAILED %s", res.Status, res.Error, res.Cause, contract.ErrorPartitionsFailed)
		}
		cause, err := contract.DecodeFailureCause(res.Cause)
		if err != nil {
			t.Fatal(err)
		}
		if cause.Failed != 1 || cause.Partitions != 2 || len(res.Results.Failed) != 1 {
			t.Fatalf("cause %+v, results %+v: want 1 of 2 partitions failed", cause, res.Results)
		}
		f := res.Results.Failed[0]
		if f.Account != acctNoRole || f.Region != "us-east-1" || f.Error != contract.ErrorPartition {
			t.Fatalf("failure %+v, want partition %s/us-east-1 failed with %s", f, acctNoRole, contract.ErrorPartition)
		}
		// The message is the function's errorMessage, taken out of its
		// error document by the state machine.
		if !strings.HasPrefix(f.Message, "partition "+acctNoRole+"/us-east-1: ") || !strings.Contains(f.Message, "arn:aws:iam::"+acctNoRole+":role/"+readRole) {
			t.Fatalf("failure message %q", f.Message)
		}
		// One invocation, then the two retries of States.ALL, for the bad
		// partition; one for the good one, whose archive is complete.
		if res.Stats.TaskInvocations != 4 || b.emu.AssumeRoleCalls(acctNoRole) != 3 {
			t.Errorf("%d invocations, %d AssumeRole calls; want 4 and 3", res.Stats.TaskInvocations, b.emu.AssumeRoleCalls(acctNoRole))
		}
		testkit.CheckArchive(t, b.store, testkit.Expect{Events: good, Start: rangeStart, End: rangeEnd})
		testkit.CheckManifests(t, b.store, [][2]string{{acctCentral, "us-east-1"}}, rangeStart, rangeEnd, engine.DefaultWindow)
	})
}
