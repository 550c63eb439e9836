package cli

import (
	"strings"
	"testing"
)

// TestStartLambdaConcurrency: start reads the account's Lambda concurrency
// (lambda:GetAccountSettings, once) and lowers the default --max-concurrency,
// or refuses an explicit one, that would starve the account's functions.
func TestStartLambdaConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		concurrent, unreserved int
		args                   []string
		code                   int
		wantInput, wantStderr  string
	}{
		{name: "the default fits", concurrent: 1000, unreserved: 1000, code: ExitOK,
			wantInput: `"max_concurrency": 40`},
		{name: "the default is lowered", concurrent: 1000, unreserved: 40, code: ExitOK,
			wantInput:  `"max_concurrency": 36`,
			wantStderr: "trailfill: --max-concurrency lowered from 40 to 36: the account's unreserved Lambda concurrency in us-east-1 is 40 and a tenth of it stays free for other functions\n"},
		{name: "an explicit value that fits", concurrent: 1000, unreserved: 40, args: []string{"--max-concurrency", "36"}, code: ExitOK,
			wantInput: `"max_concurrency": 36`},
		{name: "an explicit value that starves", concurrent: 1000, unreserved: 40, args: []string{"--max-concurrency", "37"}, code: ExitUsage,
			wantStderr: "trailfill: --max-concurrency 37 would use the account's unreserved Lambda concurrency (40) that other functions need: give --max-concurrency 36 or less, or raise the account's Lambda concurrency quota (account 111111111111, us-east-1)\n"},
		{name: "nothing left", concurrent: 1000, unreserved: 1, code: ExitUsage,
			wantStderr: "trailfill: the account's unreserved Lambda concurrency is 1, too little to run the backfill and leave a tenth to other functions: ask AWS Support for a higher Lambda concurrency quota (account 111111111111, us-east-1)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeployed(t)
			if err := d.emu.SetLambdaAccountSettings(acctCentral, tc.concurrent, tc.unreserved); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"start", "--dry-run"}, rangeArgs(append([]string{"--regions", "us-east-1"}, tc.args...)...)...)
			code, stdout, stderr := d.run(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			if n := d.emu.LambdaAccountSettingsCalls(acctCentral); n != 1 {
				t.Errorf("%d GetAccountSettings requests, want 1", n)
			}
			if tc.wantInput != "" && !strings.Contains(stdout, tc.wantInput) {
				t.Errorf("input lacks %s:\n%s", tc.wantInput, stdout)
			}
			if tc.code != ExitOK && (stdout != "" || stderr != tc.wantStderr) {
				t.Errorf("stdout %q, stderr %q; want nothing and %q", stdout, stderr, tc.wantStderr)
			}
			if tc.code == ExitOK && tc.wantStderr != "" && !strings.HasPrefix(stderr, tc.wantStderr) {
				t.Errorf("stderr %q, want it to start with %q", stderr, tc.wantStderr)
			}
			if n := d.sfn.Calls("StartExecution"); n != 0 {
				t.Errorf("%d StartExecution requests", n)
			}
		})
	}
}

// TestRegionsAllRefusesUnknownRegions: an enabled region this trailfill
// does not know stops run and start with an error naming it, before
// anything is read, written or started.
func TestRegionsAllRefusesUnknownRegions(t *testing.T) {
	for _, cmd := range []string{"run", "start"} {
		t.Run(cmd, func(t *testing.T) {
			d := newDeployed(t)
			d.emu.SetEnabledRegions(acctMember, "eu-west-1", "xx-future-1", "us-east-1")
			out := t.TempDir()
			args := append([]string{cmd}, rangeArgs("--accounts", acctCentral+","+acctMember)...)
			if cmd == "run" {
				args = append(args, "--out", out)
			}
			code, stdout, stderr := d.run(t, args...)
			if code != ExitFailed || stdout != "" || strings.Count(stderr, "\n") != 1 ||
				!strings.Contains(stderr, "account 222222222222 has enabled region(s) xx-future-1 that this trailfill does not know: upgrade trailfill, or pass --regions") {
				t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			if n := d.emu.Stats(acctCentral, "us-east-1").Requests + d.emu.Stats(acctMember, "eu-west-1").Requests; n != 0 {
				t.Errorf("%d LookupEvents requests", n)
			}
			if n := d.sfn.Calls("StartExecution"); n != 0 {
				t.Errorf("%d StartExecution requests", n)
			}
		})
	}
}
