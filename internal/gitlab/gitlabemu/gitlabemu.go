// Package gitlabemu emulates the GitLab REST audit events API on 127.0.0.1 for
// tests and demos: GET /api/v4/groups/:id/audit_events,
// /api/v4/projects/:id/audit_events and /api/v4/audit_events with
// PRIVATE-TOKEN authentication, created_after/created_before (both inclusive,
// at most 30 days apart, else 400), keyset pagination ordered by id descending
// with Link rel="next" headers, per_page up to 100, and injectable 429 bursts
// (with or without Retry-After / RateLimit-Reset) and 5xx failures.
package gitlabemu

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxRange is the longest created_after..created_before range answered.
const MaxRange = 30 * 24 * time.Hour

// Config configures the emulator.
type Config struct {
	Token string // accepted PRIVATE-TOKEN; "" accepts any non-empty token
	// DefaultPerPage is used when per_page is absent (GitLab: 20).
	DefaultPerPage int
	// LinkBase, if set, replaces scheme and host of next-page links (to test
	// that clients refuse links to another host).
	LinkBase string
}

// Throttle describes the 429 answers of a burst.
type Throttle struct {
	Count      int    // how many consecutive requests get 429
	RetryAfter string // Retry-After header value; "" sends none
	Reset      bool   // send RateLimit-Reset (Unix time, now + 1 s)
}

// Server is a running emulator.
type Server struct {
	cfg Config
	srv *httptest.Server
	now func() time.Time

	mu       sync.Mutex
	events   map[string][]event // scope key -> events, sorted by id descending
	throttle []Throttle
	failures int // next requests answered 500
	log      []Request
}

type event struct {
	id  int64
	at  time.Time
	raw json.RawMessage
}

// Request is one request the emulator answered.
type Request struct {
	Path   string
	Query  url.Values
	Status int
	Token  bool // a token was presented
}

// Start runs an emulator on 127.0.0.1 (a random port).
func Start(cfg Config) (*Server, error) {
	if cfg.DefaultPerPage <= 0 {
		cfg.DefaultPerPage = 20
	}
	s := &Server{cfg: cfg, events: map[string][]event{}, now: time.Now}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = l
	s.srv.Start()
	return s, nil
}

// URL is the instance URL (pass it as --url).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetNow replaces the clock used for RateLimit-Reset.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// ScopeKey names a scope for Add: "group/<id>", "project/<id>" or "instance".
func ScopeKey(kind, id string) string {
	if kind == "instance" {
		return "instance"
	}
	return kind + "/" + id
}

// Add stores events (raw JSON objects with a numeric id and an RFC 3339
// created_at) in a scope (see ScopeKey). Returned exactly as given.
func (s *Server) Add(scope string, raws ...json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, raw := range raws {
		var f struct {
			ID        json.Number `json:"id"`
			CreatedAt string      `json:"created_at"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("event %s: %w", raw, err)
		}
		id, err := f.ID.Int64()
		if err != nil {
			return fmt.Errorf("event id %q: %w", f.ID, err)
		}
		at, err := time.Parse(time.RFC3339Nano, f.CreatedAt)
		if err != nil {
			return fmt.Errorf("event %d created_at: %w", id, err)
		}
		s.events[scope] = append(s.events[scope], event{id: id, at: at, raw: append(json.RawMessage(nil), raw...)})
	}
	evs := s.events[scope]
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].id > evs[j].id })
	return nil
}

// AddRaw stores raw as an event of scope with the given id and creation time,
// without looking inside it (to serve malformed events).
func (s *Server) AddRaw(scope string, id int64, at time.Time, raw json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events[scope] = append(s.events[scope], event{id: id, at: at, raw: append(json.RawMessage(nil), raw...)})
	evs := s.events[scope]
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].id > evs[j].id })
}

// ThrottleNext makes the next requests fail with 429 as described, in order.
func (s *Server) ThrottleNext(ts ...Throttle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = append(s.throttle, ts...)
}

// FailNext makes the next n requests fail with 500.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures += n
}

// Requests returns every request answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	status := s.answer(w, r)
	s.mu.Lock()
	s.log = append(s.log, Request{Path: r.URL.EscapedPath(), Query: r.URL.Query(), Status: status, Token: r.Header.Get("PRIVATE-TOKEN") != ""})
	s.mu.Unlock()
}

// scopeOf maps the escaped request path to a scope key.
func scopeOf(escaped string) (string, bool) {
	rest, ok := strings.CutPrefix(escaped, "/api/v4/")
	if !ok {
		return "", false
	}
	if rest == "audit_events" {
		return "instance", true
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "audit_events" || (parts[0] != "groups" && parts[0] != "projects") {
		return "", false
	}
	id, err := url.PathUnescape(parts[1])
	if err != nil || id == "" {
		return "", false
	}
	return strings.TrimSuffix(parts[0], "s") + "/" + id, true
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "405 Method Not Allowed"})
		return http.StatusMethodNotAllowed
	}
	scope, ok := scopeOf(r.URL.EscapedPath())
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
		return http.StatusNotFound
	}
	tok := r.Header.Get("PRIVATE-TOKEN")
	if tok == "" || (s.cfg.Token != "" && tok != s.cfg.Token) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return http.StatusUnauthorized
	}

	s.mu.Lock()
	if len(s.throttle) > 0 {
		t := &s.throttle[0]
		t.Count--
		retryAfter, reset := t.RetryAfter, t.Reset
		if t.Count <= 0 {
			s.throttle = s.throttle[1:]
		}
		now := s.now()
		s.mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		if reset {
			w.Header().Set("RateLimit-Reset", strconv.FormatInt(now.Add(time.Second).Unix(), 10))
		}
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Retry later"})
		return http.StatusTooManyRequests
	}
	if s.failures > 0 {
		s.failures--
		s.mu.Unlock()
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "500 Internal Server Error"})
		return http.StatusInternalServerError
	}
	all := s.events[scope]
	s.mu.Unlock()

	q := r.URL.Query()
	bad := func(msg string) int {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": msg})
		return http.StatusBadRequest
	}
	var after, before time.Time
	var err error
	if v := q.Get("created_before"); v != "" {
		if before, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return bad("created_before is invalid")
		}
	} else {
		before = s.now()
	}
	if v := q.Get("created_after"); v != "" {
		if after, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return bad("created_after is invalid")
		}
	} else {
		after = before.Add(-MaxRange)
	}
	if before.Sub(after) > MaxRange {
		return bad("The date range must not exceed 30 days")
	}
	if q.Get("pagination") != "keyset" || q.Get("order_by") != "id" || q.Get("sort") != "desc" {
		return bad("emulator supports only pagination=keyset&order_by=id&sort=desc")
	}
	perPage := s.cfg.DefaultPerPage
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return bad("per_page is invalid")
		}
		perPage = min(n, 100)
	}
	cursor := int64(-1)
	if v := q.Get("cursor"); v != "" {
		c, ok := decodeCursor(v)
		if !ok {
			return bad("Invalid cursor value provided")
		}
		cursor = c
	}

	page := make([]json.RawMessage, 0, perPage)
	more := false
	var last int64
	for _, e := range all { // id descending
		if cursor >= 0 && e.id >= cursor {
			continue
		}
		if e.at.Before(after) || e.at.After(before) {
			continue
		}
		if len(page) == perPage {
			more = true
			break
		}
		page = append(page, e.raw)
		last = e.id
	}
	if more {
		next := *r.URL
		if s.cfg.LinkBase != "" {
			if lb, err := url.Parse(s.cfg.LinkBase); err == nil {
				next.Scheme, next.Host = lb.Scheme, lb.Host
			}
		} else {
			next.Scheme, next.Host = "http", r.Host
		}
		nq := next.Query()
		nq.Set("cursor", encodeCursor(last))
		nq.Set("per_page", strconv.Itoa(perPage))
		next.RawQuery = nq.Encode()
		w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="next"`, next.String()))
	}
	// The array holds each event's bytes exactly as added.
	var b strings.Builder
	b.WriteString("[")
	for i, raw := range page {
		if i > 0 {
			b.WriteString(",")
		}
		b.Write(raw)
	}
	b.WriteString("]")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
	return http.StatusOK
}

func encodeCursor(id int64) string {
	b, _ := json.Marshal(map[string]string{"id": strconv.FormatInt(id, 10), "_kd": "n"})
	return base64.URLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	var c struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &c) != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(c.ID, 10, 64)
	return id, err == nil
}
