package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/fakeevents"
	"github.com/trailfill/trailfill/internal/pace"
)

// The demo's emulated organization: the caller's account and two member accounts
// with the read role, each with two enabled regions.
var (
	demoCaller   = "111111111111"
	demoAccounts = []string{demoCaller, "222222222222", "333333333333"}
	demoRegions  = []string{"eu-west-1", "us-east-1"}
)

func (t *tree) demo() *ffcli.Command {
	var dir string
	var latency time.Duration
	return t.add("trailfill", command{
		name:       "demo",
		shortUsage: "demo [--dir DIR] [--latency 300ms]",
		shortHelp:  "Start the emulators with generated events and run a real backfill into ./trailfill-demo, in about a minute.",
		longHelp: `demo starts the project's emulators of CloudTrail, STS, the Account API and S3 on
127.0.0.1 (three accounts, two regions each, one dense window), and runs the same
backfill as trailfill run against them. It needs no AWS account and no network.

Examples:
  trailfill demo
  trailfill demo --dir /tmp/demo --latency 1s`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "./trailfill-demo", "output folder (replaced if it holds an earlier demo)")
			fs.DurationVar(&latency, "latency", 300*time.Millisecond, "emulated LookupEvents latency")
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("demo", args); err != nil {
				return err
			}
			if latency < 0 || latency > 10*time.Second {
				return usagef("--latency %s: give 0 to 10s", latency)
			}
			return t.demoExec(ctx, dir, latency)
		},
	})
}

func (t *tree) demoExec(ctx context.Context, dir string, latency time.Duration) error {
	env := t.env
	dest, err := archive.ParseDestination(dir)
	if err != nil {
		return usageError{fmt.Errorf("--dir: %w", err)}
	}
	if err := prepareDemoDir(dir); err != nil {
		return err
	}

	emu, err := emulator.Start(emulator.Config{Latency: latency, Jitter: latency / 3, Rate: pace.MaxRate, Seed: 1})
	if err != nil {
		return fmt.Errorf("start the emulators: %w", err)
	}
	defer emu.Close()

	end := env.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	start := end.Add(-6 * time.Hour)
	total := 0
	for i, a := range demoAccounts {
		if a == demoCaller {
			emu.AddAccount(a)
		} else {
			emu.AddAccount(a, contract.DefaultRoleName)
		}
		emu.SetEnabledRegions(a, demoRegions...)
		for j, r := range demoRegions {
			g := fakeevents.New(uint64(i*10+j+1), a, r)
			recs := g.Spread(250+150*i+100*j, start, end)
			if a == demoCaller && r == "us-east-1" {
				// A deployment storm: one dense window.
				dense := start.Add(2 * time.Hour)
				recs = append(recs, g.Spread(3000, dense, dense.Add(30*time.Minute))...)
			}
			if err := emu.AddEvents(a, r, recs...); err != nil {
				return fmt.Errorf("load demo events: %w", err)
			}
			total += len(recs)
		}
	}
	fmt.Fprintf(env.Stderr, "trailfill demo: emulated CloudTrail on %s with %d events in %d accounts x %d regions (latency %s, quota 2 req/s per partition)\n",
		emu.URL(), total, len(demoAccounts), len(demoRegions), latency)

	akid, secret := emu.CallerCredentials(demoCaller)
	cfg, err := awsconf.Build(ctx, awsconf.Options{
		Region:            "us-east-1",
		StaticCredentials: &awsconf.StaticCredentials{AccessKeyID: akid, SecretAccessKey: secret},
		BaseEndpoint:      emu.URL(),
	})
	if err != nil {
		return fmt.Errorf("configure the demo clients: %w", err)
	}
	t.deps.useConfig(cfg)
	spec := rangeSpec{
		Start: start, End: end,
		Accounts: demoAccounts, // regions: all (resolved through account:ListRegions)
		RoleName: contract.DefaultRoleName,
		Dest:     dest,
		Window:   contract.DefaultWindowMinutes * time.Minute,
		Rate:     pace.MaxRate,
	}
	sum, err := t.backfillLocally(ctx, spec)
	if err != nil {
		return err
	}
	if sum.Events != int64(total) {
		return fmt.Errorf("demo archived %d events but the emulator holds %d: this is a bug, please report it", sum.Events, total)
	}
	store, err := t.deps.Store(ctx, dest, archive.S3Options{})
	if err != nil {
		return err
	}
	keys, err := store.List(ctx, "AWSLogs/")
	if err != nil {
		return err
	}
	listed, err := store.List(ctx, archive.ManifestRoot)
	if err != nil {
		return err
	}
	var manifests []string // the coverage indexes are not manifests
	for _, k := range listed {
		if !strings.HasSuffix(k, "/"+archive.CoverageIndexName) {
			manifests = append(manifests, k)
		}
	}
	fmt.Fprintf(env.Stderr, "\nDemo complete: every emulated event is archived exactly once.\n")
	fmt.Fprintf(env.Stderr, "  %d trail files and %d window manifests in %s\n", len(keys), len(manifests), store)
	if len(keys) > 0 {
		fmt.Fprintf(env.Stderr, "  a trail file:  %s\n", filepath.Join(dir, keys[0]))
		fmt.Fprintf(env.Stderr, "  look inside:   gzip -dc %s | head -c 600\n", filepath.Join(dir, keys[0]))
	}
	if len(manifests) > 0 {
		fmt.Fprintf(env.Stderr, "  a manifest:    %s\n", filepath.Join(dir, manifests[0]))
	}
	fmt.Fprintf(env.Stderr, "  run it again:  the re-run skips every archived window and reads nothing\n")
	return nil
}

// prepareDemoDir refuses to overwrite a folder that is not an earlier demo.
func prepareDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read demo folder %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() != "AWSLogs" && e.Name() != "trailfill" {
			return usagef("demo folder %s holds %s, which the demo did not write: choose another --dir", dir, e.Name())
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear the earlier demo in %s: %w", dir, err)
	}
	return nil
}
