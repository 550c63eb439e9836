package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/gitlab"
	"github.com/trailfill/trailfill/internal/gitlab/gitlabemu"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

const apiToken = "glpat-cli-test-0123456789"

var glNow = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testkit.SyncBuffer

// gitlabEnv is the environment of a gitlab command: its backoff waits
// advance a fake clock instead of taking time.
func gitlabEnv(stdout, stderr io.Writer, vars map[string]string) *Env {
	return &Env{
		Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return vars[k] },
		Now:    func() time.Time { return glNow },
		Clock:  local.NewFakeClock(glNow),
	}
}

// runGitlab runs `trailfill gitlab <args>`.
func runGitlab(ctx context.Context, e *Env, args ...string) int {
	return Main(ctx, append([]string{"gitlab"}, args...), e)
}

// files lists every file under root (relative paths).
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "archive")
	tokFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"backfill", "--url", "https://gitlab.example.com", "--group", "42", "--start", "2025-03-01T00:00:00Z", "--end", "2025-03-02T00:00:00Z", "--out", out}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	replace := func(flag, value string) []string {
		a := append([]string{}, base...)
		for i := range a {
			if a[i] == flag {
				a[i+1] = value
			}
		}
		return a
	}
	drop := func(flag string) []string {
		var a []string
		for i := 0; i < len(base); i++ {
			if base[i] == flag {
				i++
				continue
			}
			a = append(a, base[i])
		}
		return a
	}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "missing command"},
		{[]string{"frobnicate"}, nil, "unknown command"},
		{with(), nil, "GITLAB_TOKEN is not set"},
		{drop("--url"), map[string]string{contract.EnvGitLabToken: apiToken}, "--url is required"},
		{replace("--url", "ftp://x"), map[string]string{contract.EnvGitLabToken: apiToken}, "https://gitlab.com"},
		{drop("--group"), map[string]string{contract.EnvGitLabToken: apiToken}, "exactly one of --group, --project or --instance"},
		{with("--instance"), map[string]string{contract.EnvGitLabToken: apiToken}, "exactly one of"},
		{with("--project", "a/b"), map[string]string{contract.EnvGitLabToken: apiToken}, "exactly one of"},
		{replace("--group", "/abs"), map[string]string{contract.EnvGitLabToken: apiToken}, "invalid group"},
		{drop("--start"), map[string]string{contract.EnvGitLabToken: apiToken}, "missing --start"},
		{replace("--start", "2025-03-01"), map[string]string{contract.EnvGitLabToken: apiToken}, "invalid --start"},
		{replace("--end", "2025-02-01T00:00:00Z"), map[string]string{contract.EnvGitLabToken: apiToken}, "is not before --end"},
		{replace("--end", "2025-04-01T00:00:00Z"), map[string]string{contract.EnvGitLabToken: apiToken}, "in the future"},
		{with("--window", "7h"), map[string]string{contract.EnvGitLabToken: apiToken}, "must divide 24h"},
		{with("--window", "744h"), map[string]string{contract.EnvGitLabToken: apiToken}, "30 days"},
		{with("--concurrency", "0"), map[string]string{contract.EnvGitLabToken: apiToken}, "--concurrency"},
		{with("--rps", "-1"), map[string]string{contract.EnvGitLabToken: apiToken}, "--rps"},
		{with("--source", "_x"), map[string]string{contract.EnvGitLabToken: apiToken}, "--source"},
		{replace("--out", "s3://A_B/x"), map[string]string{contract.EnvGitLabToken: apiToken}, "--out"},
		{with("--bogus"), map[string]string{contract.EnvGitLabToken: apiToken}, "bogus"},
		{with("extra"), map[string]string{contract.EnvGitLabToken: apiToken}, "unexpected argument"},
		{[]string{"serve", "--out", out}, nil, "--token-file is required"},
		{[]string{"serve", "--out", out, "--token-file", filepath.Join(dir, "missing")}, nil, "--token-file"},
		{[]string{"serve", "--out", out, "--token-file", tokFile}, nil, "minimum is 16"},
		{[]string{"serve", "--out", out, "--token-file", tokFile, "--max-body", "big"}, nil, "--max-body"},
		{[]string{"serve", "--out", out, "--token-file", tokFile, "--listen", "nonsense"}, nil, "--listen"},
		{[]string{"serve", "--out", out, "--token-file", tokFile, "--tls-cert", "c.pem"}, nil, "go together"},
	}
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.want, func(t *testing.T) {
				t.Parallel()
				var stdout, stderr syncBuffer
				code := runGitlab(context.Background(), gitlabEnv(&stdout, &stderr, c.env), c.args...)
				msg := stderr.String()
				if code != ExitUsage || strings.Count(msg, "\n") != 1 {
					t.Errorf("%v: exit %d, want 2 and one line; stderr %s", c.args, code, msg)
				}
				if !strings.Contains(msg, c.want) {
					t.Errorf("%v: stderr %q lacks %q", c.args, msg, c.want)
				}
				if strings.Contains(msg, "short\n") {
					t.Errorf("%v: stderr shows a token", c.args)
				}
			})
		}
	})
	if f := files(t, dir); len(f) != 1 || f[0] != "tokens" {
		t.Errorf("usage errors wrote files: %v", f)
	}
	var stdout, stderr syncBuffer
	if code := Main(context.Background(), []string{"help", "gitlab"}, gitlabEnv(&stdout, &stderr, nil)); code != 0 || !strings.Contains(stdout.String(), "trailfill gitlab backfill") {
		t.Errorf("help: %d %q", code, stdout.String())
	}
}

func TestBackfillCommand(t *testing.T) {
	emu, err := gitlabemu.Start(gitlabemu.Config{Token: apiToken})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	want := map[string]string{}
	var raws []json.RawMessage
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 130 {
		at := start.Add(time.Duration(i) * 37 * time.Minute) // ~3.3 days
		raw := fmt.Sprintf(`{"id": %d, "created_at": "%s", "entity_path": "acme/app"}`, 500+i, at.Format(time.RFC3339))
		raws = append(raws, json.RawMessage(raw))
		if at.Before(start.Add(72 * time.Hour)) {
			want[gitlab.EventKey("gitlab", fmt.Sprint(500+i), at)] = raw
		}
	}
	if err := emu.Add(gitlabemu.ScopeKey("project", "acme/app"), raws...); err != nil {
		t.Fatal(err)
	}
	emu.ThrottleNext(gitlabemu.Throttle{Count: 3})
	out := t.TempDir()
	args := []string{"backfill", "--url", emu.URL(), "--project", "acme/app",
		"--start", "2025-03-01T00:00:00Z", "--end", "2025-03-04T00:00:00Z", "--out", out, "--json", "--rps", "0"}
	vars := map[string]string{contract.EnvGitLabToken: apiToken}
	var stdout, stderr syncBuffer
	if code := runGitlab(context.Background(), gitlabEnv(&stdout, &stderr, vars), args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var sum struct {
		Status string `json:"status"`
		gitlab.Summary
	}
	if err := json.Unmarshal([]byte(stdout.String()), &sum); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if sum.Status != "ok" || sum.Windows != 3 || sum.Done != 3 || sum.Events != len(want) || sum.Written != len(want) {
		t.Fatalf("summary %+v, want %d events", sum, len(want))
	}
	got := map[string]bool{}
	for _, f := range files(t, out) {
		got[f] = true
		if strings.HasPrefix(f, "GitLab/") {
			b, _ := os.ReadFile(filepath.Join(out, f))
			if string(b) != want[f] {
				t.Errorf("%s = %q, want %q", f, b, want[f])
			}
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing %s", k)
		}
	}
	for _, d := range []string{"01", "02", "03"} {
		k := "trailfill/gitlab-manifests/gitlab/project-acme%2Fapp/2025/03/" + d + "/202503" + d + "T0000Z.json"
		if !got[k] {
			t.Errorf("missing manifest %s", k)
		}
	}
	if len(got) != len(want)+3 {
		t.Errorf("%d files, want %d", len(got), len(want)+3)
	}
	if !strings.Contains(stderr.String(), "[3/3]") {
		t.Errorf("no progress on stderr: %s", stderr.String())
	}
	if strings.Contains(stderr.String()+stdout.String(), apiToken) {
		t.Errorf("output shows the API token")
	}

	// Re-run: all skipped. A wrong token: exit 1 with a hint, nothing new.
	stdout, stderr = syncBuffer{}, syncBuffer{}
	if code := runGitlab(context.Background(), gitlabEnv(&stdout, &stderr, vars), args...); code != 0 || !strings.Contains(stdout.String(), `"skipped": 3`) {
		t.Fatalf("re-run: exit %d, %s %s", code, stdout.String(), stderr.String())
	}
	for i := range args {
		if args[i] == "--end" {
			args[i+1] = "2025-03-05T00:00:00Z"
		}
	}
	stdout, stderr = syncBuffer{}, syncBuffer{}
	code := runGitlab(context.Background(), gitlabEnv(&stdout, &stderr, map[string]string{contract.EnvGitLabToken: "bad-token"}), args...)
	if code != ExitFailed || !strings.Contains(stderr.String(), "GITLAB_TOKEN") || !strings.Contains(stdout.String(), `"failed"`) {
		t.Fatalf("bad token: exit %d, %s %s", code, stdout.String(), stderr.String())
	}
	last := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if l := last[len(last)-1]; !strings.HasPrefix(l, "trailfill: ") {
		t.Errorf("last stderr line %q", l)
	}
	if n := len(files(t, out)); n != len(want)+3 {
		t.Errorf("%d files after the failed run", n)
	}
}

func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "tokens")
	const tok = "serve-token-0123456789ab"
	if err := os.WriteFile(tokFile, []byte("# acme\n"+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "archive")
	ready := make(chan net.Addr, 1)
	var stdout, stderr syncBuffer
	e := gitlabEnv(&stdout, &stderr, nil)
	e.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- runGitlab(ctx, e, "serve", "--listen", "127.0.0.1:0", "--out", out, "--token-file", tokFile, "--source", "acme")
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	}
	url := "http://" + addr.String()
	ev := `{"id": 31337, "created_at": "2024-12-31T23:59:59.999Z", "event_type": "user_created"}`
	post := func(token, body string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
		req.Header.Set("X-Gitlab-Event-Streaming-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(tok, ev); s != 200 {
		t.Fatalf("post: %d", s)
	}
	if s := post(tok, ev); s != 200 {
		t.Fatalf("duplicate: %d", s)
	}
	if s := post("wrong-token-0123456789", ev); s != 401 {
		t.Fatalf("wrong token: %d", s)
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, stderr.String())
	}
	if f := files(t, out); len(f) != 1 || f[0] != "GitLab/acme/2024/12/31/31337.json" {
		t.Fatalf("archive %v", f)
	}
	b, _ := os.ReadFile(filepath.Join(out, "GitLab/acme/2024/12/31/31337.json"))
	if string(b) != ev {
		t.Fatalf("stored %q", b)
	}
	if strings.Contains(stderr.String(), tok) {
		t.Errorf("logs show the token")
	}
	if !strings.Contains(stderr.String(), "gitlab receiver stopped") {
		t.Errorf("no clean shutdown in logs: %s", stderr.String())
	}
}

// TestStreamThenBackfillOnS3 runs both commands against an s3:// destination
// on the project's S3 emulator, configured only through the SDK's standard
// environment: a streamed event and the same event backfilled coincide.
func TestStreamThenBackfillOnS3(t *testing.T) {
	s3emu, err := emulator.Start(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3emu.Close() })
	if err := s3emu.CreateBucket("audit-archive"); err != nil {
		t.Fatal(err)
	}
	ak, sk := s3emu.CallerCredentials("111122223333")
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": s3emu.URL(), "AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk,
		"AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"), "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	const tok = "s3-stream-token-0123456789"
	tokFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// 1. Stream event 7001.
	streamed := `{"id": 7001, "created_at": "2025-03-02T10:00:00.000Z", "event_type": "streamed_payload"}`
	ready := make(chan net.Addr, 1)
	var stderr syncBuffer
	e := gitlabEnv(io.Discard, &stderr, nil)
	e.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- runGitlab(ctx, e, "serve", "--listen", "127.0.0.1:0", "--out", "s3://audit-archive/org", "--token-file", tokFile)
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr.String()+"/", strings.NewReader(streamed))
	req.Header.Set("X-Gitlab-Event-Streaming-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, stderr.String())
	}

	// 2. Backfill the day from the API, which returns 7001 with other bytes.
	api, err := gitlabemu.Start(gitlabemu.Config{Token: apiToken})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	fromAPI := []string{
		`{"id":7001,"created_at":"2025-03-02T10:00:00.000Z","details":{"from":"api"}}`,
		`{"id":7002,"created_at":"2025-03-02T11:00:00.000Z"}`,
		`{"id":7003,"created_at":"2025-03-02T23:59:59.999Z"}`,
		`{"id":7004,"created_at":"2025-03-03T00:00:00.000Z"}`,
	}
	for _, r := range fromAPI {
		if err := api.Add(gitlabemu.ScopeKey("group", "9"), json.RawMessage(r)); err != nil {
			t.Fatal(err)
		}
	}
	var stdout syncBuffer
	stderr = syncBuffer{}
	code := runGitlab(context.Background(), gitlabEnv(&stdout, &stderr, map[string]string{contract.EnvGitLabToken: apiToken}),
		"backfill", "--url", api.URL(), "--group", "9", "--start", "2025-03-02T00:00:00Z", "--end", "2025-03-03T00:00:00Z",
		"--out", "s3://audit-archive/org", "--json")
	if code != 0 {
		t.Fatalf("backfill exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"written": 2`) || !strings.Contains(stdout.String(), `"present": 1`) {
		t.Fatalf("summary %s", stdout.String())
	}
	want := map[string]string{
		"org/GitLab/gitlab/2025/03/02/7001.json": streamed, // the first copy stays
		"org/GitLab/gitlab/2025/03/02/7002.json": fromAPI[1],
		"org/GitLab/gitlab/2025/03/02/7003.json": fromAPI[2],
	}
	for k, v := range want {
		got, ok := s3emu.S3Object("audit-archive", k)
		if !ok || string(got) != v {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, v)
		}
	}
	m, ok := s3emu.S3Object("audit-archive", "org/trailfill/gitlab-manifests/gitlab/group-9/2025/03/02/20250302T0000Z.json")
	if !ok {
		t.Fatal("no manifest")
	}
	var man gitlab.Manifest
	if err := json.Unmarshal(m, &man); err != nil || man.Events != 3 || man.Present != 1 || man.Written != 2 {
		t.Fatalf("manifest %s: %v", m, err)
	}
	if _, ok := s3emu.S3Object("audit-archive", "org/GitLab/gitlab/2025/03/03/7004.json"); ok {
		t.Error("an event after --end was archived")
	}
}
