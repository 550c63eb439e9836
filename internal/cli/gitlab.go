package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/time/rate"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/gitlab"
	"github.com/trailfill/trailfill/internal/validate"
)

// parseOut parses an --out destination.
func parseOut(s string) (archive.Destination, error) {
	d, err := archive.ParseDestination(s)
	if err != nil {
		return d, usageError{fmt.Errorf("--out: %w", err)}
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

type serveFlags struct {
	listen, out, tokenFile, source, maxBody, tlsCert, tlsKey, profile, layout string
}

// layoutUsage is the help text of --layout.
const layoutUsage = "archive layout: " + gitlab.LayoutNames + " (gitlab-s3: GitLab's own S3 streaming layout <entity_type>/YYYY/MM/<event_type>_<id>_<time_ms>.json, beside the objects GitLab streamed itself)"

// parseLayout reads --layout; a bad value is a usage error.
func parseLayout(s string) (gitlab.Layout, error) {
	l, err := gitlab.ParseLayout(s)
	if err != nil {
		return l, usagef("--layout: %w", err)
	}
	return l, nil
}

func (t *tree) gitlabServe() *ffcli.Command {
	var f serveFlags
	return t.add("trailfill gitlab", command{
		name:       "serve",
		shortUsage: "serve --token-file FILE [--listen ADDR] [--out DIR|s3://bucket/prefix] [--layout default|gitlab-s3] [--source NAME] [--max-body BYTES] [--tls-cert FILE --tls-key FILE]",
		shortHelp:  "Receive GitLab's audit event streaming (HTTP destination) and archive every event once.",
		longHelp: `serve verifies X-Gitlab-Event-Streaming-Token against the tokens of --token-file (one per
line), stores each event once (a single event or a JSON array of them: GitLab's batched
deliveries) at GitLab/<source>/YYYY/MM/DD/<id>.json, or in GitLab's own S3 layout with
--layout gitlab-s3, and answers 200 only after it is stored (207 for a batch with
rejected events, listing them). GET /healthz answers 200. Logs are JSON on stderr.

Examples:
  trailfill gitlab serve --token-file ./tokens --listen :8080 --out s3://audit-archive/org`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on (host:port)")
			fs.StringVar(&f.out, "out", "./archive", "archive destination: a folder or s3://bucket/prefix")
			fs.StringVar(&f.tokenFile, "token-file", "", "file with the streaming destinations' verification tokens, one per line (required)")
			fs.StringVar(&f.source, "source", gitlab.DefaultSource, "source name in keys: GitLab/<source>/YYYY/MM/DD/<id>.json")
			fs.StringVar(&f.maxBody, "max-body", strconv.Itoa(gitlab.DefaultMaxBody), "largest accepted request body (bytes, or with KiB/MiB; the default is the largest a Lambda Function URL passes)")
			fs.StringVar(&f.layout, "layout", contract.GitLabLayoutDefault, layoutUsage)
			fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM); needs --tls-key")
			fs.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) for --tls-cert")
			fs.StringVar(&f.profile, "profile", "", "AWS profile for an s3:// destination (default: AWS_PROFILE)")
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("gitlab serve", args); err != nil {
				return err
			}
			return t.serve(ctx, f)
		},
	})
}

func (t *tree) serve(ctx context.Context, f serveFlags) error {
	env := t.env
	// Validate everything before listening or writing.
	if f.tokenFile == "" {
		return usagef("--token-file is required: a file with one verification token per line (GitLab shows it on the streaming destination)")
	}
	dest, err := parseOut(f.out)
	if err != nil {
		return err
	}
	if err := gitlab.ValidateSource(f.source); err != nil {
		return usagef("--source: %w", err)
	}
	layout, err := parseLayout(f.layout)
	if err != nil {
		return err
	}
	limit, err := parseSize(f.maxBody)
	if err != nil {
		return usagef("--max-body %q: %w: use bytes like 1048576 or 1MiB", f.maxBody, err)
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return usagef("--listen %q: %w: use host:port like 127.0.0.1:8080 or :8080", f.listen, err)
	}
	raw, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return usagef("--token-file: %w", err)
	}
	tokens, err := gitlab.ParseTokens(string(raw))
	if err != nil {
		return usagef("--token-file %s: %w", f.tokenFile, err)
	}
	t.deps.profile = f.profile
	store, err := t.deps.Store(ctx, dest, archive.S3Options{})
	if err != nil {
		return fmt.Errorf("open %s: %w", dest, err)
	}
	logger := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: env.logLevel(slog.LevelInfo)}))
	recv, err := gitlab.NewReceiverFromOptions(gitlab.ReceiverOptions{Store: store, Tokens: tokens, Source: f.source, Layout: layout, MaxBody: limit, Logger: logger, Health: true})
	if err != nil {
		return usageError{err}
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is the port in use?)", f.listen, err)
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
	if f.tlsCert != "" {
		scheme = "https"
	}
	logger.Info("gitlab receiver listening", "url", scheme+"://"+ln.Addr().String(), "destination", store.String(), "layout", layout.String(), "source", f.source, "tokens", tokens.Len(), "max_body", limit)
	if env.Ready != nil {
		env.Ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			errc <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
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

// parseScope reads --group, --project and --instance: exactly one.
func parseScope(group, project string, instance bool) (gitlab.Scope, error) {
	var scope gitlab.Scope
	n := 0
	if group != "" {
		n++
		scope = gitlab.Scope{Kind: gitlab.ScopeGroup, ID: group}
	}
	if project != "" {
		n++
		scope = gitlab.Scope{Kind: gitlab.ScopeProject, ID: project}
	}
	if instance {
		n++
		scope = gitlab.Scope{Kind: gitlab.ScopeInstance}
	}
	if n != 1 {
		return scope, usagef("give exactly one of --group, --project or --instance")
	}
	if err := scope.Validate(); err != nil {
		return scope, usageError{err}
	}
	return scope, nil
}

// gitlabRangeFlags are the flags gitlab backfill and gitlab verify share:
// the scope, the range, the archive and its layout.
type gitlabRangeFlags struct {
	group, project, start, end, out, source, profile, layout string
	instance                                                 bool
	window                                                   time.Duration
}

func (f *gitlabRangeFlags) register(fs *flag.FlagSet, windowUsage string) {
	fs.StringVar(&f.group, "group", "", "group id or full path")
	fs.StringVar(&f.project, "project", "", "project id or full path (like my-group/my-project)")
	fs.BoolVar(&f.instance, "instance", false, "instance audit events (administrator token, self-managed/Dedicated)")
	fs.StringVar(&f.start, "start", "", "start of the range, inclusive (RFC 3339)")
	fs.StringVar(&f.end, "end", "", "end of the range, exclusive (RFC 3339, not in the future)")
	fs.StringVar(&f.out, "out", "./archive", "archive destination: a folder or s3://bucket/prefix")
	fs.StringVar(&f.source, "source", gitlab.DefaultSource, "source name in keys of the default layout: GitLab/<source>/YYYY/MM/DD/<id>.json")
	fs.StringVar(&f.layout, "layout", contract.GitLabLayoutDefault, layoutUsage)
	fs.DurationVar(&f.window, "window", gitlab.DefaultWindow, windowUsage)
	fs.StringVar(&f.profile, "profile", "", "AWS profile for an s3:// destination (default: AWS_PROFILE)")
}

// gitlabRange is validated gitlabRangeFlags.
type gitlabRange struct {
	scope      gitlab.Scope
	start, end time.Time
	layout     gitlab.Layout
	dest       archive.Destination
}

// parse validates every flag; GitLab keeps audit events for good, so there
// is no lookback limit.
func (f *gitlabRangeFlags) parse(now time.Time) (gitlabRange, error) {
	var r gitlabRange
	var err error
	if r.scope, err = parseScope(f.group, f.project, f.instance); err != nil {
		return r, err
	}
	if r.start, err = validate.Instant("start", f.start); err != nil {
		return r, usageError{err}
	}
	if r.end, err = validate.Instant("end", f.end); err != nil {
		return r, usageError{err}
	}
	if err := validate.Range(r.start, r.end, now, true); err != nil {
		return r, usageError{err}
	}
	if err := gitlab.ValidateWindow(f.window); err != nil {
		return r, usagef("--window: %w", err)
	}
	if r.layout, err = parseLayout(f.layout); err != nil {
		return r, err
	}
	if err := gitlab.ValidateSource(f.source); err != nil {
		return r, usagef("--source: %w", err)
	}
	if r.dest, err = parseOut(f.out); err != nil {
		return r, err
	}
	return r, nil
}

type gitlabVerifyFlags struct {
	gitlabRangeFlags
	asJSON bool
}

func (t *tree) gitlabVerify() *ffcli.Command {
	var f gitlabVerifyFlags
	return t.add("trailfill gitlab", command{
		name:       "verify",
		shortUsage: "verify (--group G | --project P | --instance) --start T --end T [--out DIR|s3://bucket/prefix] [--layout default|gitlab-s3] [--window 24h] [--json]",
		shortHelp:  "Check every window of a GitLab backfill against its manifests and objects (SHA-256); exit 1 if anything is missing or changed.",
		longHelp: `verify reads the manifests of the scope's windows in the layout and every object they list
(existence by listing, contents by SHA-256), and names windows archived only in the other
layout. No GitLab token or URL is needed: it reads the archive only.

Examples:
  trailfill gitlab verify --group 42 --start 2025-03-01T00:00:00Z --end 2025-03-08T00:00:00Z --out s3://audit-archive/org
  trailfill gitlab verify --instance --layout gitlab-s3 --start 2025-03-01T00:00:00Z --end 2025-04-01T00:00:00Z --out s3://gitlab-audit/prod --json`,
		flags: func(fs *flag.FlagSet) {
			f.register(fs, "the window length the backfill used")
			fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON on stdout")
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("gitlab verify", args); err != nil {
				return err
			}
			return t.gitlabVerifyExec(ctx, f)
		},
	})
}

func (t *tree) gitlabVerifyExec(ctx context.Context, f gitlabVerifyFlags) error {
	env := t.env
	r, err := f.parse(env.Now())
	if err != nil {
		return err
	}
	t.deps.profile = f.profile
	store, err := t.deps.Store(ctx, r.dest, archive.S3Options{})
	if err != nil {
		return fmt.Errorf("open %s: %w", r.dest, err)
	}
	rep, err := gitlab.Verify(ctx, gitlab.VerifyOptions{Store: store, Layout: r.layout, Source: f.source, Scope: r.scope, Start: r.start, End: r.end, Window: f.window})
	if err != nil {
		return fmt.Errorf("verify %s (check read access to the archive): %w", store, err)
	}
	if f.asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the report: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	} else {
		fmt.Fprintf(env.Stdout, "archive %s, %s layout, %s, %s .. %s, windows of %s\n", rep.Archive, rep.Layout, rep.Scope,
			rep.Start.Format(time.RFC3339), rep.End.Format(time.RFC3339), rep.Window)
		fmt.Fprintf(env.Stdout, "windows %d: %d archived, %d missing, %d corrupt; %d events (%d delivered by GitLab itself) in %d objects\n",
			rep.Windows, rep.Archived, rep.Missing, rep.Corrupt, rep.Events, rep.Native, rep.Objects)
		for _, w := range rep.MissingWindows {
			fmt.Fprintf(env.Stdout, "  missing: %s\n", w.Format(time.RFC3339))
		}
		for _, w := range rep.OtherLayoutWindows {
			fmt.Fprintf(env.Stdout, "  archived in the other layout only: %s\n", w.Format(time.RFC3339))
		}
		for _, c := range rep.CorruptWindows {
			fmt.Fprintf(env.Stdout, "  corrupt: %s (%s)\n", c.Window.Format(time.RFC3339), c.Manifest)
			for _, p := range c.Problems {
				fmt.Fprintf(env.Stdout, "    %s: %s\n", p.Key, p.Problem)
			}
		}
	}
	if rep.ExitCode() != 0 {
		return failedError{fmt.Sprintf("GitLab archive incomplete: %d missing and %d corrupt of %d window(s): run the same gitlab backfill again (for corrupt windows delete their manifests first)", rep.Missing, rep.Corrupt, rep.Windows)}
	}
	fmt.Fprintf(env.Stderr, "trailfill: GitLab archive complete: %d window(s), %d events in %d objects, every SHA-256 matches\n", rep.Windows, rep.Events, rep.Objects)
	return nil
}

type gitlabBackfillFlags struct {
	gitlabRangeFlags
	url                          string
	asJSON                       bool
	concurrency, nativeLookahead int
	rps                          float64
}

func (t *tree) gitlabBackfill() *ffcli.Command {
	var f gitlabBackfillFlags
	return t.add("trailfill gitlab", command{
		name:       "backfill",
		shortUsage: "backfill --url URL (--group G | --project P | --instance) --start T --end T [--out DIR|s3://bucket/prefix] [--layout default|gitlab-s3] [--window 24h] [--json]",
		shortHelp:  "Archive GitLab audit events of a range from the REST API, one manifest per window; re-runs resume.",
		longHelp: `The API token is read from ` + contract.EnvGitLabToken + ` (read_api scope). Events go to
GitLab/<source>/YYYY/MM/DD/<id>.json; events already there (streamed by serve) are kept.
With --layout gitlab-s3 they are converted to GitLab's streaming payload and written in
GitLab's own S3 layout, and events GitLab already streamed there itself (per event or in
batches, in the months --native-lookahead allows) are not written again.

Examples:
  ` + contract.EnvGitLabToken + `=glpat-... trailfill gitlab backfill --url https://gitlab.com --group 42 \
    --start 2025-03-01T00:00:00Z --end 2025-03-08T00:00:00Z --out s3://audit-archive/org`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&f.url, "url", "", "GitLab instance URL, like https://gitlab.com (required)")
			f.register(fs, "window length: divides 24h, or whole days up to 720h")
			fs.IntVar(&f.nativeLookahead, "native-lookahead", gitlab.DefaultNativeLookahead, "gitlab-s3: months after an event's month searched for GitLab's own copy (1 to 12)")
			fs.IntVar(&f.concurrency, "concurrency", 2, "windows read at once")
			fs.Float64Var(&f.rps, "rps", 5, "at most this many API requests per second (0: no limit)")
			fs.BoolVar(&f.asJSON, "json", false, "print the summary as JSON on stdout")
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("gitlab backfill", args); err != nil {
				return err
			}
			return t.gitlabBackfillExec(ctx, f)
		},
	})
}

func (t *tree) gitlabBackfillExec(ctx context.Context, f gitlabBackfillFlags) error {
	env := t.env
	if f.url == "" {
		return usagef("--url is required: the GitLab instance, like https://gitlab.com")
	}
	if _, err := gitlab.ParseBaseURL(f.url); err != nil {
		return usagef("--url: %w", err)
	}
	r, err := f.parse(env.Now())
	if err != nil {
		return err
	}
	if f.concurrency < 1 || f.concurrency > 32 {
		return usagef("--concurrency %d: use 1 to 32", f.concurrency)
	}
	if f.rps < 0 {
		return usagef("--rps %g: use 0 (no limit) or a positive rate", f.rps)
	}
	if err := gitlab.ValidateNativeLookahead(f.nativeLookahead); err != nil {
		return usagef("--native-lookahead: %w", err)
	}
	token := strings.TrimSpace(env.Getenv(contract.EnvGitLabToken))
	if token == "" {
		return usagef("%s is not set: export it with an access token that has the read_api scope", contract.EnvGitLabToken)
	}
	client, err := gitlab.NewClient(f.url, token)
	if err != nil {
		return usageError{err}
	}
	logger := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: env.logLevel(slog.LevelInfo)}))
	client.Logger = logger
	client.Sleep = env.Clock.Sleep
	client.Now = env.Now
	if f.rps > 0 {
		client.Limit = rate.NewLimiter(rate.Limit(f.rps), max(1, int(f.rps)))
	}
	t.deps.profile = f.profile
	store, err := t.deps.Store(ctx, r.dest, archive.S3Options{})
	if err != nil {
		return fmt.Errorf("open %s: %w", r.dest, err)
	}
	scope, start, end := r.scope, r.start, r.end
	b := &gitlab.Backfill{
		Client: client, Store: store, Source: f.source, Scope: scope, Window: f.window, Layout: r.layout,
		NativeLookahead: f.nativeLookahead, Concurrency: f.concurrency, Logger: logger, Now: env.Now,
	}
	windows := archive.CountWindows(start, end, f.window)
	fmt.Fprintf(env.Stderr, "backfilling %s of %s, %s to %s, %d windows of %s, into %s\n",
		scope, client.BaseURL(), start.Format(time.RFC3339), end.Format(time.RFC3339), windows, f.window, store)
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
		fmt.Fprintf(env.Stderr, "[%d/%d] window %s: %s, %d events (%d new, %d already archived), %d requests\n",
			finished, windows, r.Window.Start.Format(time.RFC3339), state, r.Events, r.Written, r.Present, r.Requests)
	}
	sum, runErr := b.Run(ctx, start, end)
	if f.asJSON {
		enc := json.NewEncoder(env.Stdout)
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
	fmt.Fprintf(env.Stderr, "%d windows: %d done, %d skipped, %d failed; %d events (%d new, %d already archived); %d requests\n",
		sum.Windows, sum.Done, sum.Skipped, sum.Failed, sum.Events, sum.Written, sum.Present, sum.Requests)
	return runErr
}
