package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/testkit"
)

// TestVerifyLocalArchiveOfRun verifies an archive written by `trailfill run`
// into a local folder, with the caller's account and the regions found in the
// archive.
func TestVerifyLocalArchiveOfRun(t *testing.T) {
	d := newDeployed(t)
	dir := t.TempDir()
	code, _, stderr := d.run(t, append([]string{"run", "--out", dir}, rangeArgs("--regions", "eu-west-1,us-east-1")...)...)
	if code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := d.run(t, append([]string{"verify", "--out", dir}, rangeArgs("--regions", "archived")...)...)
	if code != ExitOK {
		t.Fatalf("verify: exit %d: %s\n%s", code, stderr, stdout)
	}
	eu, us := "111111111111/eu-west-1", "111111111111/us-east-1"
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`archive %s, 2025-11-22T10:00:00Z .. 2025-11-22T13:00:00Z, 30-minute windows
ACCOUNT       REGION     WINDOWS  ARCHIVED  PROVISIONAL  MISSING  CORRUPT  EVENTS  NATIVE  RECOVERED  BOTH  OBJECTS  UNLISTED
111111111111  eu-west-1  6        6         0            0        0        %-6d  0       %-9d  0     %-7d  0
111111111111  us-east-1  6        6         0            0        0        %-6d  0       %-9d  0     %-7d  0
total                    12       12        0            0        0        %-6d  0       %-9d  0     %-7d  0
`, abs, len(d.events[eu]), len(d.events[eu]), d.slices(eu), len(d.events[us]), len(d.events[us]), d.slices(us),
		len(d.events[eu])+len(d.events[us]), len(d.events[eu])+len(d.events[us]), d.slices(eu)+d.slices(us))
	if stdout != want {
		t.Errorf("verify table:\n%s\nwant:\n%s", stdout, want)
	}
	if want := fmt.Sprintf("trailfill: archive complete: 12 window(s) in 2 partition(s), %d events once each (0 delivered by CloudTrail, %d recovered in %d objects), every SHA-256 matches\n",
		len(d.events[eu])+len(d.events[us]), len(d.events[eu])+len(d.events[us]), d.slices(eu)+d.slices(us)); stderr != want {
		t.Errorf("verify stderr %q, want %q", stderr, want)
	}

	// A wider range: the extra hour is missing, shown as one run of windows.
	code, stdout, _ = d.run(t, "verify", "--out", dir, "--start", tfStart.Add(-time.Hour).Format(time.RFC3339), "--end", tfEnd.Format(time.RFC3339), "--regions", "eu-west-1")
	if code != ExitFailed || !strings.HasSuffix(stdout, "\nmissing windows:\n  111111111111/eu-west-1: 2025-11-22T09:00Z .. 2025-11-22T10:00Z (2 window(s))\n") {
		t.Errorf("wider range: exit %d:\n%s", code, stdout)
	}
	// Verify applies no 90-day limit: an old range is verified (nothing there).
	code, _, stderr = d.run(t, "verify", "--out", dir, "--start", "2024-01-01T00:00:00Z", "--end", "2024-01-01T01:00:00Z", "--accounts", acctCentral, "--regions", "eu-west-1")
	if code != ExitFailed || !strings.Contains(stderr, "archive incomplete: 2 window(s) missing (of 2 window(s) in 1 partition(s))") {
		t.Errorf("old range: exit %d: %s", code, stderr)
	}
	// A manifest that no longer decodes makes its window corrupt.
	manifest := filepath.Join(dir, "trailfill", "manifests", acctCentral, "eu-west-1", "2025", "11", "22", "20251122T1030Z.json")
	if err := os.WriteFile(manifest, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = d.run(t, append([]string{"verify", "--out", dir, "--accounts", acctCentral}, rangeArgs("--regions", "eu-west-1")...)...)
	if code != ExitFailed || !strings.Contains(stdout, "  111111111111/eu-west-1 2025-11-22T10:30Z: trailfill/manifests/111111111111/eu-west-1/2025/11/22/20251122T1030Z.json\n    trailfill/manifests/111111111111/eu-west-1/2025/11/22/20251122T1030Z.json: unreadable manifest: decode manifest") {
		t.Errorf("broken manifest: exit %d:\n%s", code, stdout)
	}
}

func TestVerifyBadInput(t *testing.T) {
	d := newDeployed(t)
	dir := t.TempDir()
	verify := func(args ...string) []string { return append([]string{"verify"}, args...) }
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"missing --end", verify("--start", tfStart.Format(time.RFC3339), "--out", dir)},
		{"--out: unsupported destination \"ftp://x\"", verify(rangeArgs("--out", "ftp://x")...)},
		{"--out: invalid S3 bucket name", verify(rangeArgs("--out", "s3://A")...)},
		{"--regions: unknown region \"bogus\"", verify(rangeArgs("--out", dir, "--regions", "bogus")...)},
		{"--regions: unknown region \"archived\"", verify(rangeArgs("--out", dir, "--regions", "archived,eu-west-1")...)},
		{"--window-minutes", verify(rangeArgs("--out", dir, "--window-minutes", "0")...)},
		{"stack nope does not exist in us-east-1", verify(rangeArgs("--stack", "nope")...)},
		{"--regions archived: the archive " + mustAbs(t, dir) + " holds no manifests of account 111111111111", verify(rangeArgs("--out", dir, "--regions", "archived")...)},
		{"unexpected argument \"x\"", verify(append(rangeArgs("--out", dir), "x")...)},
	} {
		t.Run(tc.want, func(t *testing.T) { d.wantUsage(t, tc.want, tc.args...) })
	}
}

func TestWatchBadInput(t *testing.T) {
	d := newDeployed(t)
	missing := "arn:aws:states:us-east-1:111111111111:execution:trailfill-backfill:missing"
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"missing EXECUTION", []string{"watch"}},
		{"missing EXECUTION", []string{"watch", "--interval", "1s"}},
		{"unexpected argument \"b\": watch follows one execution", []string{"watch", "a", "b"}},
		{"is not an execution ARN", []string{"watch", "arn:aws:states:us-east-1:111111111111:stateMachine:trailfill-backfill"}},
		{"is neither an execution ARN nor an execution name", []string{"watch", "a/b"}},
		{"--interval 0s", []string{"watch", "--interval", "0", missing}},
		{"execution " + missing + " does not exist", []string{"watch", missing}},
		{"execution " + missing + " does not exist", []string{"watch", "missing", "--interval", "1s"}},
		{"stack nope does not exist", []string{"watch", "--stack", "nope", "some-name"}},
	} {
		t.Run(tc.want, func(t *testing.T) { d.wantUsage(t, tc.want, tc.args...) })
	}
	// Help is not an error.
	code, _, stderr := d.run(t, "watch", "-h")
	if code != ExitOK || !strings.HasPrefix(stderr, "Usage: trailfill watch EXECUTION") {
		t.Errorf("watch -h: exit %d: %s", code, stderr)
	}
}

func mustAbs(t *testing.T, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestRedeliveryVerifyReconcile: CloudTrail redelivers part of a backfilled
// range two days later; verify reports the overlap (exit 1), reconcile
// --dry-run changes nothing, reconcile removes trailfill's copies, and verify
// then passes. CloudTrail's files stay byte for byte.
func TestRedeliveryVerifyReconcile(t *testing.T) {
	d := newDeployed(t)
	dir := t.TempDir()
	if code, _, stderr := d.run(t, append([]string{"run", "--out", dir}, rangeArgs("--regions", "eu-west-1")...)...); code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	store, _ := archive.NewLocalStore(dir)
	eu := "111111111111/eu-west-1"
	late := testkit.Between(d.events[eu], tfStart.Add(40*time.Minute), tfStart.Add(100*time.Minute))
	if len(late) == 0 {
		t.Fatal("no events to redeliver")
	}
	native := testkit.NativeFiles(t, "", late, testkit.DeliveredAfter(48*time.Hour), 7)
	testkit.PutNative(t, store, native)
	args := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd, "--out", dir, "--native-lookahead", "72h"}, rangeArgs("--regions", "archived")...), extra...)
	}
	code, stdout, stderr := d.run(t, args("verify")...)
	if code != ExitFailed || !strings.Contains(stderr, fmt.Sprintf("%d event(s) in native and trailfill's files", len(late))) || !strings.Contains(stderr, "run trailfill reconcile") ||
		!strings.Contains(stdout, "windows whose events native delivery and trailfill both hold") {
		t.Fatalf("verify after redelivery: exit %d\n%s\n%s", code, stdout, stderr)
	}
	before, _ := store.List(context.Background(), "AWSLogs/")
	code, stdout, stderr = d.run(t, args("reconcile", "--dry-run")...)
	after, _ := store.List(context.Background(), "AWSLogs/")
	if code != ExitOK || !strings.Contains(stderr, fmt.Sprintf("would remove %d duplicated event(s)", len(late))) || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("reconcile --dry-run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = d.run(t, args("reconcile")...)
	if code != ExitOK || !strings.Contains(stderr, fmt.Sprintf("removed %d duplicated event(s)", len(late))) {
		t.Fatalf("reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr = d.run(t, args("verify")...); code != ExitOK {
		t.Fatalf("verify after reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	testkit.CheckArchive(t, store, testkit.Expect{Events: d.events[eu], Native: native, Pieces: true})
}
