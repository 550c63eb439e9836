package gitlab

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseBodySingleKeepsExactBytes(t *testing.T) {
	obj := `{"id": 7,  "created_at": "2022-02-23T06:21:05.283Z", "details": {"a": [1, 2]}}`
	for _, body := range []string{obj, "\n  " + obj + "\r\n"} {
		evs, err := ParseBody([]byte(body))
		if err != nil {
			t.Fatalf("ParseBody(%q): %v", body, err)
		}
		if len(evs) != 1 || string(evs[0].Raw) != obj || evs[0].ID != "7" {
			t.Fatalf("ParseBody(%q) = %+v", body, evs)
		}
		want := time.Date(2022, 2, 23, 6, 21, 5, 283e6, time.UTC)
		if !evs[0].CreatedAt.Equal(want) {
			t.Fatalf("created_at %v, want %v", evs[0].CreatedAt, want)
		}
		if k := evs[0].Key("gitlab"); k != "GitLab/gitlab/2022/02/23/7.json" {
			t.Fatalf("key %s", k)
		}
	}
}

func TestParseBodyArrayKeepsExactElementBytes(t *testing.T) {
	elems := []string{
		`{"id":1,"created_at":"2022-02-23T23:59:59.999Z"}`,
		"{\n    \"id\": \"2\",\n    \"created_at\": \"2022-02-24T00:00:00Z\"\n  }",
		`{"created_at":"2022-02-24T09:00:00+09:00","id":12345678901234567}`,
	}
	body := "[\n  " + strings.Join(elems, " ,\n\t") + "\n]\n"
	evs, err := ParseBody([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{
		"GitLab/s/2022/02/23/1.json",
		"GitLab/s/2022/02/24/2.json",
		"GitLab/s/2022/02/24/12345678901234567.json", // 09:00+09:00 is 00:00 UTC
	}
	if len(evs) != len(elems) {
		t.Fatalf("%d events, want %d", len(evs), len(elems))
	}
	for i, e := range evs {
		if string(e.Raw) != elems[i] {
			t.Errorf("event %d bytes %q, want %q", i, e.Raw, elems[i])
		}
		if k := e.Key("s"); k != wantKeys[i] {
			t.Errorf("event %d key %s, want %s", i, k, wantKeys[i])
		}
	}
}

func TestParseBodyRejects(t *testing.T) {
	ok := `{"id":1,"created_at":"2022-02-23T06:21:05.283Z"}`
	cases := map[string]string{
		"empty":              ``,
		"spaces":             "  \n",
		"not json":           `id=1&created_at=x`,
		"truncated":          `{"id":1,"created_at":"2022-02-23T06:21:05.283Z"`,
		"trailing garbage":   ok + `x`,
		"two objects":        ok + ok,
		"empty array":        `[]`,
		"array of non-obj":   `[1,2]`,
		"null":               `null`,
		"array with null":    `[` + ok + `,null]`,
		"no id":              `{"created_at":"2022-02-23T06:21:05.283Z"}`,
		"null id":            `{"id":null,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"negative id":        `{"id":-1,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"float id":           `{"id":1.5,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"exp id":             `{"id":1e3,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"path id":            `{"id":"../x","created_at":"2022-02-23T06:21:05.283Z"}`,
		"unquoted uuid id":   `{"id":3f2b7c1e-0000-4000-8000-000000000000,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"id with a slash":    `{"id":"ab/cd","created_at":"2022-02-23T06:21:05.283Z"}`,
		"id with a dot":      `{"id":"ab.cd","created_at":"2022-02-23T06:21:05.283Z"}`,
		"id with underscore": `{"id":"ab_cd","created_at":"2022-02-23T06:21:05.283Z"}`,
		"id leading dash":    `{"id":"-abc","created_at":"2022-02-23T06:21:05.283Z"}`,
		"id too long":        `{"id":"` + strings.Repeat("a", 65) + `","created_at":"2022-02-23T06:21:05.283Z"}`,
		"leading zero id":    `{"id":"01","created_at":"2022-02-23T06:21:05.283Z"}`,
		"empty id":           `{"id":"","created_at":"2022-02-23T06:21:05.283Z"}`,
		"huge id":            `{"id":123456789012345678901,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"uppercase ID only":  `{"ID":1,"created_at":"2022-02-23T06:21:05.283Z"}`,
		"no created_at":      `{"id":1}`,
		"bad created_at":     `{"id":1,"created_at":"2022-02-23 06:21:05"}`,
		"numeric created_at": `{"id":1,"created_at":1645597265}`,
		"one bad in batch":   `[` + ok + `,{"id":2}]`,
	}
	for name, body := range cases {
		if evs, err := ParseBody([]byte(body)); err == nil {
			t.Errorf("%s: ParseBody(%q) accepted %d events", name, body, len(evs))
		}
	}
}

// TestParseEventStreamingOnlyIDs accepts the ids GitLab streams for events
// that are not saved to the database (a UUID), as strings only.
func TestParseEventStreamingOnlyIDs(t *testing.T) {
	for raw, want := range map[string]string{
		`{"id":"3f2b7c1e-0000-4000-8000-00000000abcd","created_at":"2022-02-23T06:21:05.283Z","entity_type":"Project","event_type":"repository_git_operation"}`: "3f2b7c1e-0000-4000-8000-00000000abcd",
		`{"id":"ABC-def-9","created_at":"2022-02-23T06:21:05.283Z"}`:                       "ABC-def-9",
		`{"id":"` + strings.Repeat("a", 64) + `","created_at":"2022-02-23T06:21:05.283Z"}`: strings.Repeat("a", 64),
		`{"id":"12","created_at":"2022-02-23T06:21:05.283Z"}`:                              "12",
	} {
		e, err := ParseEvent([]byte(raw))
		if err != nil || e.ID != want {
			t.Errorf("ParseEvent(%s) = %q, %v; want id %q", raw, e.ID, err, want)
		}
	}
	e, _ := ParseEvent([]byte(`{"id":"3f2b7c1e-0000-4000-8000-00000000abcd","created_at":"2022-02-23T06:21:05.283Z","entity_type":"Project","event_type":"repository_git_operation"}`))
	if e.EntityType != "Project" || e.EventType != "repository_git_operation" || e.Key("s") != "GitLab/s/2022/02/23/3f2b7c1e-0000-4000-8000-00000000abcd.json" {
		t.Errorf("event %+v", e)
	}
}

// TestParseBatch keeps the valid elements of a batch and lists the others;
// a body that is not a well-formed object or array fails whole.
func TestParseBatch(t *testing.T) {
	ok1 := `{"id":1,"created_at":"2022-02-23T06:21:05.283Z"}`
	ok3 := `{"id":"3","created_at":"2022-02-23T06:21:05.283Z"}`
	events, rejected, err := ParseBatch([]byte("[" + ok1 + `,{"id":2},` + ok3 + `,null,{"id":"x/y","created_at":"2022-02-23T06:21:05.283Z"},7]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].ID != "1" || events[1].ID != "3" || string(events[1].Raw) != ok3 {
		t.Errorf("events %+v", events)
	}
	want := []Rejection{
		{Index: 1, ID: "2", Error: "event 2 has no created_at"},
		{Index: 3, Error: "event is not a JSON object"},
		{Index: 4, Error: "event id x/y is not a positive integer or a streaming id (expected digits, or a UUID string)"},
		{Index: 5, Error: "event is not a JSON object"},
	}
	if fmt.Sprint(rejected) != fmt.Sprint(want) {
		t.Errorf("rejected %+v\nwant %+v", rejected, want)
	}
	for name, body := range map[string]string{
		"not json": `x`, "broken array": "[" + ok1 + ",", "empty array": `[]`, "bad single": `{"id":1}`, "empty": ``,
	} {
		if _, _, err := ParseBatch([]byte(body)); err == nil {
			t.Errorf("%s: ParseBatch(%q) accepted", name, body)
		}
	}
	if _, err := ParseBody([]byte("[" + ok1 + `,{"id":2}]`)); err == nil || err.Error() != "event 2 of 2: event 2 has no created_at" {
		t.Errorf("ParseBody of a partly invalid batch: %v", err)
	}
}

func TestValidateSource(t *testing.T) {
	for _, s := range []string{"gitlab", "gitlab.com-acme", "A_b-1"} {
		if err := ValidateSource(s); err != nil {
			t.Errorf("ValidateSource(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", ".hidden", "_hidden", "a/b", "a b", "..", strings.Repeat("a", 65)} {
		if err := ValidateSource(s); err == nil {
			t.Errorf("ValidateSource(%q) accepted", s)
		}
	}
}

func TestTokens(t *testing.T) {
	text := "# destinations\n\nAAAAAAAAAAAAAAAAAAAAAAAA\r\n  BBBBBBBBBBBBBBBB  \n#CCCCCCCCCCCCCCCCCCCC\n"
	tok, err := ParseTokens(text)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Len() != 2 {
		t.Fatalf("Len %d, want 2", tok.Len())
	}
	for presented, want := range map[string]int{
		"AAAAAAAAAAAAAAAAAAAAAAAA":  1,
		"BBBBBBBBBBBBBBBB":          2,
		"CCCCCCCCCCCCCCCCCCCC":      0, // commented out
		"AAAAAAAAAAAAAAAAAAAAAAA":   0, // prefix
		"AAAAAAAAAAAAAAAAAAAAAAAAA": 0,
		"":                          0,
	} {
		got, ok := tok.Match(presented)
		if got != want || ok != (want != 0) {
			t.Errorf("Match(%q) = %d, %v; want %d", presented, got, ok, want)
		}
	}
	for name, bad := range map[string]string{
		"none":      "# only a comment\n\n",
		"empty":     "",
		"too short": "AAAAAAAAAAAAAAAAAAAA\nshort-token\n",
	} {
		_, err := ParseTokens(bad)
		if err == nil {
			t.Errorf("%s: ParseTokens accepted %q", name, bad)
			continue
		}
		if strings.Contains(err.Error(), "short-token") || strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: error reveals a token: %v", name, err)
		}
	}
}

func TestValidateWindowAndQueryBounds(t *testing.T) {
	d := func(s string) time.Time {
		tt, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, w := range []time.Duration{time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 48 * time.Hour, 720 * time.Hour} {
		if err := ValidateWindow(w); err != nil {
			t.Errorf("ValidateWindow(%s): %v", w, err)
		}
	}
	for _, w := range []time.Duration{0, time.Second, 7 * time.Hour, 36 * time.Hour, 744 * time.Hour, 90 * time.Second} {
		if err := ValidateWindow(w); err == nil {
			t.Errorf("ValidateWindow(%s) accepted", w)
		}
	}
	a, b := queryBounds(d("2025-01-01T10:30:00.250Z"), d("2025-01-01T11:00:00.5Z"))
	if !a.Equal(d("2025-01-01T10:30:00Z")) || !b.Equal(d("2025-01-01T11:00:01Z")) {
		t.Errorf("queryBounds = %v, %v", a, b)
	}
	a, b = queryBounds(d("2025-01-01T00:00:00Z"), d("2025-01-02T00:00:00Z"))
	if !a.Equal(d("2025-01-01T00:00:00Z")) || !b.Equal(d("2025-01-02T00:00:00Z")) {
		t.Errorf("queryBounds = %v, %v", a, b)
	}
}
