//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
)

// Runs as separate processes of the real launcher, as operators run them:
// one paused (SIGSTOP) for as long as another takes to archive the whole
// range, then resumed; one killed in the middle of a window, then a new run.
// The archive must hold every event exactly once afterwards. trailfill takes
// no lease that could expire: the write path itself is safe (pieces created
// with If-None-Match), so a paused run resuming late cannot duplicate.

const processAccount = "111111111111"

var (
	launcherOnce sync.Once
	launcherPath string
	launcherErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if launcherPath != "" {
		_ = os.RemoveAll(filepath.Dir(launcherPath))
	}
	os.Exit(code)
}

// launcher builds bin/trailfill once for the package's tests.
func launcher(t *testing.T) string {
	t.Helper()
	launcherOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trailfill-e2e-")
		if err != nil {
			launcherErr = err
			return
		}
		launcherPath = filepath.Join(dir, "trailfill")
		out, err := exec.Command("go", "build", "-o", launcherPath, "github.com/trailfill/trailfill/cmd/trailfill").CombinedOutput()
		if err != nil {
			launcherErr = fmt.Errorf("go build ./cmd/trailfill: %v: %s", err, out)
		}
	})
	if launcherErr != nil {
		t.Fatal(launcherErr)
	}
	return launcherPath
}

// processRun is one `trailfill run` process against the emulator.
func processRun(t *testing.T, emu *emulator.Server, out string, start, end time.Time) *exec.Cmd {
	t.Helper()
	akid, secret := emu.CallerCredentials(processAccount)
	home := t.TempDir()
	cmd := exec.Command(launcher(t), "run", "--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339),
		"--accounts", processAccount, "--regions", "us-east-1", "--out", out, "--no-lookback-limit")
	cmd.Env = []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"AWS_ENDPOINT_URL=" + emu.URL(), "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + akid, "AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
		if t.Failed() {
			t.Logf("stderr of %v:\n%s", cmd.Args, stderr.String())
		}
	})
	return cmd
}

// waitFor polls cond (a state of the emulator or the archive, not a clock)
// until it holds, or fails the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processFixture(t *testing.T) (*emulator.Server, []testkit.Event, time.Time, time.Time) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Latency: 40 * time.Millisecond, Jitter: 10 * time.Millisecond})
	emu.AddAccount(processAccount)
	start := time.Date(2025, 3, 9, 10, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Hour)
	// 1,500 events: 30 pages at 2 requests/s, dense enough to be split.
	evs := testkit.Retimed(t, processAccount, "us-east-1", testkit.Spaced(start.Add(3*time.Minute), 3*time.Second, 1500))
	testkit.Load(t, emu, evs)
	return emu, evs, start, end
}

func TestPausedRunBesideAnotherRun(t *testing.T) {
	t.Parallel()
	emu, evs, start, end := processFixture(t)
	out := t.TempDir()
	a := processRun(t, emu, out, start.Add(7*time.Minute+13*time.Second), end)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first run to read a few pages", func() bool { return emu.Stats(processAccount, "us-east-1").Requests >= 6 })
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The whole range, start to end, while the first run is frozen.
	b := processRun(t, emu, out, start, end)
	if err := b.Run(); err != nil {
		t.Fatalf("the second run failed: %v", err)
	}
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("the paused run failed after it resumed: %v", err)
	}
	store, _ := archive.NewLocalStore(out)
	testkit.CheckArchive(t, store, testkit.Expect{Events: testkit.Between(evs, start, end), Pieces: true})
}

func TestKilledRunThenANewRun(t *testing.T) {
	t.Parallel()
	emu, evs, start, end := processFixture(t)
	out := t.TempDir()
	store, _ := archive.NewLocalStore(out)
	a := processRun(t, emu, out, start, end)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first run to write a trail file", func() bool {
		keys, _ := store.List(context.Background(), "AWSLogs/")
		return len(keys) > 0
	})
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	keys, _ := store.List(context.Background(), "AWSLogs/")
	b := processRun(t, emu, out, start, end)
	if err := b.Run(); err != nil {
		t.Fatalf("the run after the killed one failed: %v", err)
	}
	testkit.CheckArchive(t, store, testkit.Expect{Events: testkit.Between(evs, start, end), Pieces: true})
	t.Logf("the killed run had written %d trail files", len(keys))
}
