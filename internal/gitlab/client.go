package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/trailfill/trailfill/internal/clock"
)

// PerPage is the page size asked of the audit events API (its maximum).
const PerPage = 100

// MaxQueryRange is the longest created_after..created_before range the audit
// events API answers in one query.
const MaxQueryRange = 30 * 24 * time.Hour

// Scope is what a backfill reads: a group, a project or the whole instance.
type Scope struct {
	Kind string // "group", "project" or "instance"
	ID   string // numeric id or full path for groups and projects; empty for the instance
}

// Scope kinds.
const (
	ScopeGroup    = "group"
	ScopeProject  = "project"
	ScopeInstance = "instance"
)

// Validate checks the scope.
func (s Scope) Validate() error {
	switch s.Kind {
	case ScopeGroup, ScopeProject:
		if s.ID == "" || strings.HasPrefix(s.ID, "/") || strings.HasSuffix(s.ID, "/") || strings.ContainsAny(s.ID, "?#\\ \t\r\n") || strings.Contains(s.ID, "//") {
			return fmt.Errorf("invalid %s %q: give its numeric id or full path (like my-group/my-project)", s.Kind, s.ID)
		}
		for _, seg := range strings.Split(s.ID, "/") {
			if seg == "." || seg == ".." {
				return fmt.Errorf("invalid %s %q: give its numeric id or full path", s.Kind, s.ID)
			}
		}
		return nil
	case ScopeInstance:
		if s.ID != "" {
			return errors.New("the instance scope takes no id")
		}
		return nil
	default:
		return fmt.Errorf("unknown scope kind %q: use group, project or instance", s.Kind)
	}
}

// apiPath is the escaped API path below /api/v4/.
func (s Scope) apiPath() string {
	switch s.Kind {
	case ScopeGroup:
		return "groups/" + url.PathEscape(s.ID) + "/audit_events"
	case ScopeProject:
		return "projects/" + url.PathEscape(s.ID) + "/audit_events"
	default:
		return "audit_events"
	}
}

// Segment names the scope in manifest keys: group-<id>, project-<id> or
// instance, the id path-escaped (a path's '/' becomes %2F).
func (s Scope) Segment() string {
	if s.Kind == ScopeInstance {
		return ScopeInstance
	}
	return s.Kind + "-" + url.PathEscape(s.ID)
}

func (s Scope) String() string {
	if s.Kind == ScopeInstance {
		return "instance"
	}
	return s.Kind + " " + s.ID
}

// Sleeper waits d or until ctx ends. Tests replace it so that backoff costs no
// real time.
type Sleeper func(ctx context.Context, d time.Duration) error

// Client reads audit events from the GitLab REST API (v4).
type Client struct {
	base   *url.URL // https://gitlab.example.com (API root is base + /api/v4/)
	token  string
	HTTP   *http.Client
	Sleep  Sleeper          // clock.Sleep if nil
	Now    func() time.Time // time.Now if nil
	Rand   func() float64   // jitter source in [0,1); math/rand/v2 if nil
	Limit  *rate.Limiter    // paces every request, retries included; nil: no pacing
	Logger *slog.Logger

	// MaxServerRetries is how many times a 5xx or transport error is retried
	// before giving up (429 is retried without limit). Default 5.
	MaxServerRetries int
	// MaxBackoff caps one exponential backoff step. Default 60 s.
	MaxBackoff time.Duration
	// BaseBackoff is the first exponential backoff step. Default 1 s.
	BaseBackoff time.Duration
}

// NewClient returns a client for the GitLab instance at rawURL (with or without
// a trailing /api/v4) authenticating with token (a personal, group or project
// access token with read_api).
func NewClient(rawURL, token string) (*Client, error) {
	base, err := ParseBaseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("empty GitLab token: set GITLAB_TOKEN to an access token with the read_api scope")
	}
	return &Client{base: base, token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}, nil
}

// ParseBaseURL checks a GitLab instance URL (http or https, a host, no query)
// and returns it without a trailing / or /api/v4.
func ParseBaseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, fmt.Errorf("invalid GitLab URL %q: %w", rawURL, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid GitLab URL %q: give the instance URL, like https://gitlab.com", rawURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid GitLab URL %q: give only scheme, host and optional path, like https://gitlab.example.com", rawURL)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v4")
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// BaseURL is the instance URL the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// QueryURL is the first page's URL of the query for [after, before] (both
// inclusive, whole seconds, as the API treats them).
func (c *Client) QueryURL(s Scope, after, before time.Time) string {
	u := *c.base
	escaped := c.base.EscapedPath() + "/api/v4/" + s.apiPath()
	path, err := url.PathUnescape(escaped)
	if err != nil {
		path = escaped // cannot happen: escaped was built by PathEscape
	}
	u.Path, u.RawPath = path, escaped
	q := url.Values{}
	q.Set("created_after", after.UTC().Format(time.RFC3339))
	q.Set("created_before", before.UTC().Format(time.RFC3339))
	q.Set("pagination", "keyset")
	q.Set("order_by", "id")
	q.Set("sort", "desc")
	q.Set("per_page", strconv.Itoa(PerPage))
	u.RawQuery = q.Encode()
	return u.String()
}

// APIError is a non-retryable answer of the API.
type APIError struct {
	Status  int
	Message string
	URL     string
}

func (e *APIError) Error() string {
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = ": check GITLAB_TOKEN (expired or revoked?)"
	case http.StatusForbidden:
		hint = ": the token needs the read_api scope and the Owner role on the group or project (administrator for the instance), and audit events need GitLab Premium or Ultimate"
	case http.StatusNotFound:
		hint = ": check the group or project id or path and that the token can see it"
	}
	msg := e.Message
	if msg != "" {
		msg = " (" + msg + ")"
	}
	return fmt.Sprintf("GitLab API answered %d%s for %s%s", e.Status, msg, e.URL, hint)
}

// Page is one page of events: the raw JSON of each array element.
type Page struct {
	Events []json.RawMessage
	Next   string // URL of the next page, empty on the last
}

// Pages calls fn with every page of the query starting at firstURL, following
// Link rel="next" exactly as given. fn's error stops the walk.
func (c *Client) Pages(ctx context.Context, firstURL string, fn func(Page) error) (requests int, err error) {
	next := firstURL
	seen := map[string]bool{}
	for next != "" {
		if seen[next] {
			return requests, fmt.Errorf("GitLab API pagination loops back to %s: stopping", redact(next))
		}
		seen[next] = true
		page, n, err := c.get(ctx, next)
		requests += n
		if err != nil {
			return requests, err
		}
		if err := fn(page); err != nil {
			return requests, err
		}
		next = page.Next
	}
	return requests, nil
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	return clock.Sleep(ctx, d)
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) rand() float64 {
	if c.Rand != nil {
		return c.Rand()
	}
	return rand.Float64()
}

func (c *Client) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// backoff is the exponential step for attempt (0-based) with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	base, maxB := c.BaseBackoff, c.MaxBackoff
	if base <= 0 {
		base = time.Second
	}
	if maxB <= 0 {
		maxB = 60 * time.Second
	}
	d := base
	for i := 0; i < attempt && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	// Full jitter in [d/2, d): spread concurrent clients, never zero.
	return d/2 + time.Duration(c.rand()*float64(d/2))
}

// retryAfter reads how long the server asked to wait: Retry-After (seconds or
// an HTTP date), else RateLimit-Reset (Unix time, GitLab's convention). ok is
// false when neither is usable.
func (c *Client) retryAfter(h http.Header) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(c.now()), 0), true
		}
	}
	if v := strings.TrimSpace(h.Get("RateLimit-Reset")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
			return max(time.Unix(s, 0).Sub(c.now()), 0), true
		}
	}
	return 0, false
}

// get fetches one page, retrying 429 (without limit, until ctx ends) and 5xx or
// transport errors (MaxServerRetries times). It returns the number of requests
// sent.
func (c *Client) get(ctx context.Context, rawURL string) (Page, int, error) {
	if err := c.checkSameOrigin(rawURL); err != nil {
		return Page{}, 0, err
	}
	maxRetries := c.MaxServerRetries
	if maxRetries <= 0 {
		maxRetries = 5
	}
	// throttles counts 429s; blind those without a usable wait hint, which
	// back off exponentially.
	requests, serverFailures, throttles, blind := 0, 0, 0, 0
	for {
		if c.Limit != nil {
			if err := c.Limit.Wait(ctx); err != nil {
				return Page{}, requests, fmt.Errorf("wait for the request pacer: %w", err)
			}
		}
		requests++
		page, status, hdr, err := c.do(ctx, rawURL)
		if err == nil {
			return page, requests, nil
		}
		if ctx.Err() != nil {
			return Page{}, requests, fmt.Errorf("GET %s: %w", redact(rawURL), ctx.Err())
		}
		var wait time.Duration
		switch {
		case status == http.StatusTooManyRequests:
			throttles++
			d, ok := c.retryAfter(hdr)
			if ok {
				// Honour the server, plus a little jitter so that parallel
				// workers do not all come back at the same instant.
				wait = d + time.Duration(c.rand()*float64(time.Second))
			} else {
				blind++
				wait = c.backoff(blind - 1)
			}
			c.log().WarnContext(ctx, "gitlab backfill: rate limited, backing off", "url", redact(rawURL), "wait", wait.String(), "throttled", throttles)
		case status >= 500 || status == 0:
			serverFailures++
			if serverFailures > maxRetries {
				return Page{}, requests, fmt.Errorf("giving up after %d failed attempts: %w", serverFailures, err)
			}
			wait = c.backoff(serverFailures - 1)
			c.log().WarnContext(ctx, "gitlab backfill: request failed, retrying", "url", redact(rawURL), "wait", wait.String(), "attempt", serverFailures, "err", err)
		default:
			return Page{}, requests, err
		}
		if err := c.sleep(ctx, wait); err != nil {
			return Page{}, requests, fmt.Errorf("GET %s: %w", redact(rawURL), err)
		}
	}
}

// do sends one request. status is 0 for a transport error.
func (c *Client) do(ctx context.Context, rawURL string) (Page, int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Page{}, -1, nil, fmt.Errorf("build request for %s: %w", redact(rawURL), err)
	}
	req.Header.Set("PRIVATE-TOKEN", c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "trailfill")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL
		}
		return Page{}, 0, nil, fmt.Errorf("GET %s: %w", redact(rawURL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Page{}, 0, resp.Header, fmt.Errorf("read answer of GET %s: %w", redact(rawURL), err)
	}
	if resp.StatusCode != http.StatusOK {
		return Page{}, resp.StatusCode, resp.Header, &APIError{Status: resp.StatusCode, Message: apiMessage(body), URL: redact(rawURL)}
	}
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		// A proxy's HTML error page with 200, or a truncated answer: retry as a server failure.
		return Page{}, http.StatusBadGateway, resp.Header, fmt.Errorf("GET %s: answer is not a JSON array of events: %w", redact(rawURL), err)
	}
	next, err := nextLink(resp.Header)
	if err != nil {
		return Page{}, -1, resp.Header, fmt.Errorf("GET %s: %w", redact(rawURL), err)
	}
	return Page{Events: events, Next: next}, resp.StatusCode, resp.Header, nil
}

// checkSameOrigin refuses to send the token anywhere but the configured instance.
func (c *Client) checkSameOrigin(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("invalid next-page URL %q: %w", redact(rawURL), err)
	}
	if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) {
		return fmt.Errorf("GitLab API sent a next-page link to %s://%s, not %s://%s: refusing to send the token there (is --url the instance's canonical URL?)", u.Scheme, u.Host, c.base.Scheme, c.base.Host)
	}
	return nil
}

// apiMessage extracts GitLab's {"message": ...} or {"error": ...} text.
func apiMessage(body []byte) string {
	var m struct {
		Message any    `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &m) == nil {
		if m.Message != nil {
			if s, ok := m.Message.(string); ok {
				return s
			}
			b, _ := json.Marshal(m.Message)
			return string(b)
		}
		if m.Error != "" {
			return m.Error
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// nextLink returns the rel="next" target of the Link header(s), or "".
func nextLink(h http.Header) (string, error) {
	for _, v := range h.Values("Link") {
		for _, part := range splitLinks(v) {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.Index(part, ">")
			if end < 0 {
				return "", fmt.Errorf("malformed Link header %q", v)
			}
			target := part[1:end]
			for _, p := range strings.Split(part[end+1:], ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(r, "next") {
						return target, nil
					}
				}
			}
		}
	}
	return "", nil
}

// splitLinks splits a Link header value at the commas between links (not those
// inside <...> or quotes).
func splitLinks(v string) []string {
	var parts []string
	inURL, inQuote, start := false, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '<':
			if !inQuote {
				inURL = true
			}
		case '>':
			if !inQuote {
				inURL = false
			}
		case '"':
			if !inURL {
				inQuote = !inQuote
			}
		case ',':
			if !inURL && !inQuote {
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, v[start:])
}

// redact removes query parameters that could carry secrets from a URL for logs.
// GitLab's links carry none (the token is a header), but be safe.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "token") {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
