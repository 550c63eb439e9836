// Package cli implements `trailfill gitlab serve` and `trailfill gitlab backfill`.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/gitlab"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

const usage = `usage:
  trailfill gitlab serve    --token-file FILE [--listen ADDR] [--out DIR|s3://bucket/prefix]
                            [--source NAME] [--max-body BYTES] [--tls-cert FILE --tls-key FILE]
  trailfill gitlab backfill --url URL (--group G | --project P | --instance) --start T --end T
                            [--out DIR|s3://bucket/prefix] [--source NAME] [--window 24h]
                            [--concurrency N] [--rps N] [--json]
  The backfill reads its API token from GITLAB_TOKEN. Times are RFC 3339 (2025-04-17T15:00:00Z).
`

// Main runs `trailfill gitlab <args>` and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&Env{Stdout: stdout, Stderr: stderr}).Main(ctx, args)
}

// Env is what the commands need from their surroundings; zero fields take the
// process defaults. Tests set them.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string // os.Getenv
	Now            func() time.Time    // time.Now
	// OpenStore opens a --out destination; nil uses archive.Open with an S3
	// client from the standard AWS configuration.
	OpenStore func(ctx context.Context, d archive.Destination, profile string) (archive.Store, error)
	// Ready, if set, receives the serve command's listening address.
	Ready func(net.Addr)
	// Sleep replaces the backfill's backoff waits.
	Sleep gitlab.Sleeper
}

func (e *Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) openStore(ctx context.Context, d archive.Destination, profile string) (archive.Store, error) {
	if e.OpenStore != nil {
		return e.OpenStore(ctx, d, profile)
	}
	if !d.IsS3() {
		return archive.Open(d, nil, archive.S3Options{})
	}
	cfg, err := awsconf.Load(ctx, profile)
	if err != nil {
		return nil, err
	}
	return archive.Open(d, awsconf.NewS3(cfg), archive.S3Options{})
}

// usageError is a bad-usage failure (exit 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Main runs `trailfill gitlab <args>`.
func (e *Env) Main(ctx context.Context, args []string) int {
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if len(args) == 0 {
		fmt.Fprint(e.Stderr, "trailfill gitlab: missing command: serve or backfill\n"+usage)
		return ExitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = e.serve(ctx, args[1:])
	case "backfill":
		err = e.backfill(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.Stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(e.Stderr, "trailfill gitlab: unknown command %q: use serve or backfill\n", args[0])
		return ExitUsage
	}
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.Stderr, "trailfill gitlab %s: %s\n", args[0], oneLine(err.Error()))
		return ExitUsage
	}
	fmt.Fprintf(e.Stderr, "trailfill gitlab %s: %s\n", args[0], oneLine(err.Error()))
	return ExitFailed
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("trailfill gitlab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; flag errors become usage errors (flag already printed them).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v (see -h)", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see -h)", fs.Arg(0))
	}
	return nil
}

func parseOut(s string) (archive.Destination, error) {
	d, err := archive.ParseDestination(s)
	if err != nil {
		return d, usagef("--out: %v", err)
	}
	return d, nil
}

// parseSize reads a byte count: 1048576, 512KiB, 1MiB.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, errors.New("not a positive size")
	}
	return n * mult, nil
}

func (e *Env) serve(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", e.Stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (host:port)")
	out := fs.String("out", "./archive", "archive destination: a folder or s3://bucket/prefix")
	tokenFile := fs.String("token-file", "", "file with the streaming destinations' verification tokens, one per line (required)")
	source := fs.String("source", gitlab.DefaultSource, "source name in keys: GitLab/<source>/YYYY/MM/DD/<id>.json")
	maxBody := fs.String("max-body", strconv.FormatInt(gitlab.DefaultMaxBody, 10), "largest accepted request body (bytes, or with KiB/MiB)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM); needs --tls-key")
	tlsKey := fs.String("tls-key", "", "private key (PEM) for --tls-cert")
	profile := fs.String("profile", "", "AWS profile for an s3:// destination (default: AWS_PROFILE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	// Validate everything before listening or writing.
	if *tokenFile == "" {
		return usagef("--token-file is required: a file with one verification token per line (GitLab shows it on the streaming destination)")
	}
	dest, err := parseOut(*out)
	if err != nil {
		return err
	}
	if err := gitlab.ValidateSource(*source); err != nil {
		return usagef("--source: %v", err)
	}
	limit, err := parseSize(*maxBody)
	if err != nil {
		return usagef("--max-body %q: %v: use bytes like 1048576 or 1MiB", *maxBody, err)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return usagef("--listen %q: %v: use host:port like 127.0.0.1:8080 or :8080", *listen, err)
	}
	raw, err := os.ReadFile(*tokenFile)
	if err != nil {
		return usagef("--token-file: %v", err)
	}
	tokens, err := gitlab.ParseTokens(string(raw))
	if err != nil {
		return usagef("--token-file %s: %v", *tokenFile, err)
	}
	store, err := e.openStore(ctx, dest, *profile)
	if err != nil {
		return fmt.Errorf("open %s: %w", dest, err)
	}
	logger := slog.New(slog.NewJSONHandler(e.Stderr, nil))
	recv, err := gitlab.NewReceiver(store, tokens, *source, limit, logger)
	if err != nil {
		return usagef("%v", err)
	}
	recv.Health = true

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is the port in use?)", *listen, err)
	}
	srv := &http.Server{
		Handler:           recv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      gitlab.DefaultStoreTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	logger.Info("gitlab receiver listening", "url", scheme+"://"+ln.Addr().String(), "destination", store.String(), "source", *source, "tokens", tokens.Len(), "max_body", limit)
	if e.Ready != nil {
		e.Ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logger.Info("gitlab receiver shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gitlab.DefaultStoreTimeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down the receiver: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	logger.Info("gitlab receiver stopped")
	return nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, usagef("--%s is required (RFC 3339, like 2025-04-17T15:00:00Z)", name)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q is not an RFC 3339 time: use a form like 2025-04-17T15:00:00Z", name, v)
	}
	return t.UTC(), nil
}

func (e *Env) backfill(ctx context.Context, args []string) error {
	fs := newFlagSet("backfill", e.Stderr)
	rawURL := fs.String("url", "", "GitLab instance URL, like https://gitlab.com (required)")
	group := fs.String("group", "", "group id or full path")
	project := fs.String("project", "", "project id or full path (like my-group/my-project)")
	instance := fs.Bool("instance", false, "instance audit events (administrator token, self-managed/Dedicated)")
	startS := fs.String("start", "", "start of the range, inclusive (RFC 3339)")
	endS := fs.String("end", "", "end of the range, exclusive (RFC 3339, not in the future)")
	out := fs.String("out", "./archive", "archive destination: a folder or s3://bucket/prefix")
	source := fs.String("source", gitlab.DefaultSource, "source name in keys: GitLab/<source>/YYYY/MM/DD/<id>.json")
	window := fs.Duration("window", gitlab.DefaultWindow, "window length: divides 24h, or whole days up to 720h")
	conc := fs.Int("concurrency", 2, "windows read at once")
	rps := fs.Float64("rps", 5, "at most this many API requests per second (0: no limit)")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout")
	profile := fs.String("profile", "", "AWS profile for an s3:// destination (default: AWS_PROFILE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	if *rawURL == "" {
		return usagef("--url is required: the GitLab instance, like https://gitlab.com")
	}
	if _, err := gitlab.ParseBaseURL(*rawURL); err != nil {
		return usagef("--url: %v", err)
	}
	var scope gitlab.Scope
	n := 0
	if *group != "" {
		n++
		scope = gitlab.Scope{Kind: gitlab.ScopeGroup, ID: *group}
	}
	if *project != "" {
		n++
		scope = gitlab.Scope{Kind: gitlab.ScopeProject, ID: *project}
	}
	if *instance {
		n++
		scope = gitlab.Scope{Kind: gitlab.ScopeInstance}
	}
	if n != 1 {
		return usagef("give exactly one of --group, --project or --instance")
	}
	if err := scope.Validate(); err != nil {
		return usagef("%v", err)
	}
	start, err := parseTime("start", *startS)
	if err != nil {
		return err
	}
	end, err := parseTime("end", *endS)
	if err != nil {
		return err
	}
	if !end.After(start) {
		return usagef("--end %s must be after --start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	if now := e.now(); end.After(now) {
		return usagef("--end %s is in the future: use a time up to now (%s)", end.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if err := gitlab.ValidateWindow(*window); err != nil {
		return usagef("--window: %v", err)
	}
	if *conc < 1 || *conc > 32 {
		return usagef("--concurrency %d: use 1 to 32", *conc)
	}
	if *rps < 0 {
		return usagef("--rps %g: use 0 (no limit) or a positive rate", *rps)
	}
	dest, err := parseOut(*out)
	if err != nil {
		return err
	}
	if err := gitlab.ValidateSource(*source); err != nil {
		return usagef("--source: %v", err)
	}
	token := strings.TrimSpace(e.getenv(contract.EnvGitLabToken))
	if token == "" {
		return usagef("%s is not set: export it with an access token that has the read_api scope", contract.EnvGitLabToken)
	}
	client, err := gitlab.NewClient(*rawURL, token)
	if err != nil {
		return usagef("%v", err)
	}
	logger := slog.New(slog.NewTextHandler(e.Stderr, nil))
	client.Logger = logger
	client.Sleep = e.Sleep
	client.Now = e.Now
	if *rps > 0 {
		client.Limit = rate.NewLimiter(rate.Limit(*rps), max(1, int(*rps)))
	}
	store, err := e.openStore(ctx, dest, *profile)
	if err != nil {
		return fmt.Errorf("open %s: %w", dest, err)
	}
	b := &gitlab.Backfill{
		Client: client, Store: store, Source: *source, Scope: scope, Window: *window,
		Concurrency: *conc, Logger: logger, Now: e.Now,
	}
	windows := len(archive.Windows(start, end, *window))
	fmt.Fprintf(e.Stderr, "backfilling %s of %s, %s to %s, %d windows of %s, into %s\n",
		scope, client.BaseURL(), start.Format(time.RFC3339), end.Format(time.RFC3339), windows, *window, store)
	finished := 0
	b.Progress = func(r gitlab.WindowResult) {
		finished++
		state := "done"
		switch {
		case r.Err != nil:
			state = "FAILED"
		case r.Skipped:
			state = "skipped (manifest present)"
		}
		fmt.Fprintf(e.Stderr, "[%d/%d] window %s: %s, %d events (%d new, %d already archived), %d requests\n",
			finished, windows, r.Window.Start.Format(time.RFC3339), state, r.Events, r.Written, r.Present, r.Requests)
	}
	sum, runErr := b.Run(ctx, start, end)
	if *asJSON {
		enc := json.NewEncoder(e.Stdout)
		enc.SetIndent("", "  ")
		status := "ok"
		if runErr != nil {
			status = "failed"
		}
		_ = enc.Encode(struct {
			Status string `json:"status"`
			gitlab.Summary
		}{status, sum})
	}
	fmt.Fprintf(e.Stderr, "%d windows: %d done, %d skipped, %d failed; %d events (%d new, %d already archived); %d requests\n",
		sum.Windows, sum.Done, sum.Skipped, sum.Failed, sum.Events, sum.Written, sum.Present, sum.Requests)
	return runErr
}
