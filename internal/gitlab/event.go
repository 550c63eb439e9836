// Package gitlab archives GitLab audit events: a streaming receiver for GitLab's
// audit event streaming (HTTP destinations) and a backfill from the REST API
// (groups, projects or the whole instance). Both write every event once, as the
// exact JSON bytes GitLab sent, at the same key:
//
//	[prefix/]GitLab/<source>/YYYY/MM/DD/<id>.json
//
// where the day is the UTC day of the event's created_at and <id> its GitLab id,
// so a streamed event and the same event backfilled later coincide, and a
// duplicate delivery stores nothing new (GitLab delivers at least once and tells
// receivers to de-duplicate on id).
package gitlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DefaultSource is the <source> segment used when none is configured.
const DefaultSource = "gitlab"

// FunctionURLMaxBody is the largest request body a Lambda Function URL
// passes to the receiver whatever its encoding. A synchronous invocation
// payload holds at most 6 MB (Lambda quotas; aws-lambda-rie reads at most
// 6 MiB + 100 bytes of it, interop.MaxPayloadSize), and a Function URL puts
// the body inside the event: as a JSON string, or base64-encoded when the
// content type is binary ("Invoking Lambda function URLs", request payload
// format). Measured through aws-lambda-rie with the receiver's bootstrap and
// an event carrying GitLab's headers (internal/e2e, `make lambda-e2e`): at
// most 4,717,812 body bytes get through base64-encoded, and 5,593,482 bytes
// of GitLab events as a JSON string (their quotes escaped). The limit is the
// base64 figure less about 18 KB (24 KB encoded) for headers beyond the
// measured ones.
const FunctionURLMaxBody = 4_700_000

// DefaultMaxBody is the default request body limit of the receiver, locally
// and in Lambda: FunctionURLMaxBody, so that GitLab's batched deliveries (a
// JSON array of events in one request) are accepted up to what a Function URL
// can carry.
const DefaultMaxBody = FunctionURLMaxBody

// KeyRoot is the top folder of GitLab events in the archive.
const KeyRoot = "GitLab/"

// ManifestRoot is the folder of GitLab backfill window manifests, outside
// KeyRoot so that readers of events never see them.
const ManifestRoot = "trailfill/gitlab-manifests/"

// Event is one validated audit event.
type Event struct {
	ID        string          // decimal digits, no sign, no leading zero
	CreatedAt time.Time       // UTC
	Raw       json.RawMessage // the event's exact bytes as received
}

// Key is the archive key of e under source.
func (e Event) Key(source string) string { return EventKey(source, e.ID, e.CreatedAt) }

// EventKey is the archive key of the event with the given id created at t:
// GitLab/<source>/YYYY/MM/DD/<id>.json, the day being t's UTC day.
func EventKey(source, id string, t time.Time) string {
	return EventPrefix(source) + t.UTC().Format("2006/01/02/") + id + ".json"
}

// EventPrefix is the folder of all events of source: GitLab/<source>/. The
// receiver writes only under it (useful for IAM policies).
func EventPrefix(source string) string { return KeyRoot + source + "/" }

// ValidateSource checks a <source> segment: 1 to 64 characters from
// [A-Za-z0-9._-], not starting with '.' or '_' (Athena and Hive skip such
// names).
func ValidateSource(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("invalid source %q: use 1 to 64 characters from A-Z a-z 0-9 . _ -", s)
	}
	if s[0] == '.' || s[0] == '_' {
		return fmt.Errorf("invalid source %q: it must not start with '.' or '_' (query engines skip such folders)", s)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("invalid source %q: use only A-Z a-z 0-9 . _ -", s)
		}
	}
	return nil
}

// ParseBody decodes a request body holding either one event object or a JSON
// array of event objects and validates every event. It returns the events in
// order, each with its exact bytes. Any invalid event makes the whole body
// invalid, so that nothing of a bad request is stored.
func ParseBody(body []byte) ([]Event, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("empty body: expected a JSON event object or an array of them")
	}
	var raws []json.RawMessage
	switch trimmed[0] {
	case '[':
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, fmt.Errorf("body is not a valid JSON array of events: %w", err)
		}
		if len(raws) == 0 {
			return nil, errors.New("empty event array")
		}
	case '{':
		var one json.RawMessage
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, fmt.Errorf("body is not a valid JSON event object: %w", err)
		}
		raws = []json.RawMessage{one}
	default:
		return nil, errors.New("body is not JSON: expected an event object or an array of them")
	}
	events := make([]Event, len(raws))
	for i, raw := range raws {
		e, err := ParseEvent(raw)
		if err != nil {
			if len(raws) > 1 {
				return nil, fmt.Errorf("event %d of %d: %w", i+1, len(raws), err)
			}
			return nil, err
		}
		events[i] = e
	}
	return events, nil
}

// ParseEvent validates one event: a JSON object with an id (a JSON integer or a
// string of decimal digits) and a created_at in RFC 3339. raw is kept as is.
func ParseEvent(raw json.RawMessage) (Event, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Event{}, errors.New("event is not a JSON object")
	}
	idRaw, ok := fields["id"]
	if !ok {
		return Event{}, errors.New("event has no id")
	}
	id, err := parseID(idRaw)
	if err != nil {
		return Event{}, err
	}
	caRaw, ok := fields["created_at"]
	if !ok {
		return Event{}, fmt.Errorf("event %s has no created_at", id)
	}
	var ca string
	if err := json.Unmarshal(caRaw, &ca); err != nil {
		return Event{}, fmt.Errorf("event %s: created_at is not a string", id)
	}
	t, err := time.Parse(time.RFC3339Nano, ca)
	if err != nil {
		return Event{}, fmt.Errorf("event %s: created_at %q is not an RFC 3339 time", id, ca)
	}
	return Event{ID: id, CreatedAt: t.UTC(), Raw: raw}, nil
}

// maxIDDigits bounds ids (GitLab ids are 64-bit integers: at most 19 digits).
const maxIDDigits = 20

// parseID accepts a JSON integer (1234) or a string of digits ("1234") and
// returns the canonical digits. Both spellings give the same key.
func parseID(raw json.RawMessage) (string, error) {
	s := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("event id is not a valid JSON string")
		}
	}
	if !isDigits(s) {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "", fmt.Errorf("event id %s is not a positive integer (expected digits only)", s)
	}
	return s, nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > maxIDDigits || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
