package gitlabemu

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, rawURL, token string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestKeysetPagesAndLimits(t *testing.T) {
	s, err := Start(Config{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		raw := fmt.Sprintf(`{"id": %d, "created_at": %q}`, i, t0.Add(time.Duration(i)*time.Hour).Format(time.RFC3339))
		if err := s.Add(ScopeKey("project", "g/p"), json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	q := url.Values{
		"created_after": {"2025-01-01T02:00:00Z"}, "created_before": {"2025-01-01T05:00:00Z"}, // inclusive: ids 2..5
		"pagination": {"keyset"}, "order_by": {"id"}, "sort": {"desc"}, "per_page": {"3"},
	}
	next := s.URL() + "/api/v4/projects/g%2Fp/audit_events?" + q.Encode()
	var pages []string
	for next != "" {
		status, h, body := get(t, next, "tok")
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		pages = append(pages, body)
		next = ""
		if l := h.Get("Link"); l != "" {
			if !strings.HasSuffix(l, `>; rel="next"`) {
				t.Fatalf("Link %q", l)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	want := []string{
		`[{"id": 5, "created_at": "2025-01-01T05:00:00Z"},{"id": 4, "created_at": "2025-01-01T04:00:00Z"},{"id": 3, "created_at": "2025-01-01T03:00:00Z"}]`,
		`[{"id": 2, "created_at": "2025-01-01T02:00:00Z"}]`,
	}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("pages %v", pages)
	}
	base := s.URL() + "/api/v4/projects/g%2Fp/audit_events?pagination=keyset&order_by=id&sort=desc"
	for name, c := range map[string]struct {
		url, token string
		status     int
	}{
		"no token":     {base, "", 401},
		"wrong token":  {base, "x", 401},
		"31 days":      {base + "&created_after=2025-01-01T00:00:00Z&created_before=2025-01-31T00:00:01Z", "tok", 400},
		"30 days":      {base + "&created_after=2025-01-01T00:00:00Z&created_before=2025-01-31T00:00:00Z", "tok", 200},
		"offset":       {s.URL() + "/api/v4/projects/g%2Fp/audit_events?page=2", "tok", 400},
		"unknown path": {s.URL() + "/api/v4/users", "tok", 404},
	} {
		if status, _, body := get(t, c.url, c.token); status != c.status {
			t.Errorf("%s: %d %s, want %d", name, status, body, c.status)
		}
	}
	s.ThrottleNext(Throttle{Count: 2, RetryAfter: "3"})
	s.FailNext(1)
	for i, want := range []int{429, 429, 500, 200} {
		status, h, _ := get(t, base, "tok")
		if status != want {
			t.Errorf("request %d: %d, want %d", i, status, want)
		}
		if status == 429 && h.Get("Retry-After") != "3" {
			t.Errorf("request %d: Retry-After %q", i, h.Get("Retry-After"))
		}
	}
}
