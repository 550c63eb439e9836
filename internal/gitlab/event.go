// Package gitlab archives GitLab audit events: a streaming receiver for GitLab's
// audit event streaming (HTTP destinations, one event or a JSON array of events
// per request) and a backfill from the REST API (groups, projects or the whole
// instance). Both write every event once, in one of two layouts (Layout):
//
//	[prefix/]GitLab/<source>/YYYY/MM/DD/<id>.json                      default
//	[prefix/]<entity_type>/<YYYY>/<MM>/<event_type>_<id>_<time_ms>.json gitlab-s3
//
// The default layout's day is the UTC day of the event's created_at and <id>
// its GitLab id, so a streamed event and the same event backfilled later
// coincide, and a duplicate delivery stores nothing new (GitLab delivers at
// least once and tells receivers to de-duplicate on id). The gitlab-s3 layout
// is the one GitLab's own Amazon S3 streaming destination writes, with
// created_at in place of the upload time, so that recovered events sit beside
// GitLab's own objects; the backfill finds those by id and does not write
// them again. Per-window manifests (manifest.go) make backfills resumable and
// verifiable (Verify).
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
	// ID is GitLab's id: decimal digits without sign or leading zero (events
	// saved to the database), or for streaming-only events, which have no
	// database id, the string GitLab streams instead (a UUID: see validID).
	ID        string
	CreatedAt time.Time       // UTC
	Raw       json.RawMessage // the event's exact bytes as received
	// EntityType and EventType are the payload's entity_type and event_type
	// strings ("" when absent or not strings); the gitlab-s3 layout's keys
	// use them.
	EntityType string
	EventType  string
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
// invalid (ParseBatch is the lenient form the receiver uses).
func ParseBody(body []byte) ([]Event, error) {
	events, rejected, err := ParseBatch(body)
	if err != nil {
		return nil, err
	}
	if len(rejected) > 0 {
		r := rejected[0]
		return nil, fmt.Errorf("event %d of %d: %s", r.Index+1, len(events)+len(rejected), r.Error)
	}
	return events, nil
}

// Rejection is an element of a JSON array of events that is not a valid
// event.
type Rejection struct {
	Index int    `json:"index"`        // position in the array, from 0
	ID    string `json:"id,omitempty"` // the element's id, when it has a valid one
	Error string `json:"error"`
}

// ParseBatch decodes a request body holding one event object or a JSON array
// of event objects (GitLab's batched delivery). It fails, and nothing of the
// body is to be stored, when the body is not one well-formed JSON object or
// array, when the array is empty, and when a single object is not a valid
// event. For an array it returns the valid events in order, each with its
// exact bytes, and a Rejection for every element that is not a valid event.
func ParseBatch(body []byte) ([]Event, []Rejection, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, nil, errors.New("empty body: expected a JSON event object or an array of them")
	}
	switch trimmed[0] {
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, nil, fmt.Errorf("body is not a valid JSON array of events: %w", err)
		}
		if len(raws) == 0 {
			return nil, nil, errors.New("empty event array")
		}
		events := make([]Event, 0, len(raws))
		var rejected []Rejection
		for i, raw := range raws {
			e, err := ParseEvent(raw)
			if err != nil {
				rejected = append(rejected, Rejection{Index: i, ID: idOf(raw), Error: err.Error()})
				continue
			}
			events = append(events, e)
		}
		return events, rejected, nil
	case '{':
		var one json.RawMessage
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, nil, fmt.Errorf("body is not a valid JSON event object: %w", err)
		}
		e, err := ParseEvent(one)
		if err != nil {
			return nil, nil, err
		}
		return []Event{e}, nil, nil
	default:
		return nil, nil, errors.New("body is not JSON: expected an event object or an array of them")
	}
}

// idOf is the valid id of an event object, or "".
func idOf(raw json.RawMessage) string {
	var f struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &f) != nil || f.ID == nil {
		return ""
	}
	id, err := parseID(f.ID)
	if err != nil {
		return ""
	}
	return id
}

// ParseEvent validates one event: a JSON object with an id (a JSON integer, a
// string of decimal digits, or a streaming-only event's UUID string) and a
// created_at in RFC 3339. raw is kept as is.
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
	return Event{ID: id, CreatedAt: t.UTC(), Raw: raw,
		EntityType: stringField(fields["entity_type"]), EventType: stringField(fields["event_type"])}, nil
}

// stringField is a JSON string's value, or "" for anything else.
func stringField(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// maxIDDigits bounds numeric ids (GitLab ids are 64-bit integers: at most 19
// digits).
const maxIDDigits = 20

// maxIDLen bounds other ids: a UUID has 36 characters.
const maxIDLen = 64

// parseID accepts a JSON integer (1234), a string of digits ("1234") or a
// streaming-only event's id string and returns the canonical id. The integer
// and digit-string spellings give the same key.
//
// GitLab streams events that are not saved to the database with a string id
// instead: BaseStreamDestination#request_body sets
// `body["id"] = upstream_stream_id || SecureRandom.uuid if @audit_event.id.blank?`
// (ee/lib/audit_events/streaming/destinations/base_stream_destination.rb).
// Such ids are accepted when they are 1 to 64 characters of [0-9A-Za-z-]
// holding a non-digit, so that they are safe in keys.
func parseID(raw json.RawMessage) (string, error) {
	s := string(raw)
	quoted := len(raw) > 0 && raw[0] == '"'
	if quoted {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("event id is not a valid JSON string")
		}
	}
	if isDigits(s) || quoted && isStreamID(s) {
		return s, nil
	}
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return "", fmt.Errorf("event id %s is not a positive integer or a streaming id (expected digits, or a UUID string)", s)
}

// validID reports whether s is an id parseID returns (digits or a
// streaming id).
func validID(s string) bool { return isDigits(s) || isStreamID(s) }

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

// isStreamID reports whether s is an acceptable non-numeric id: 1 to 64
// characters of [0-9A-Za-z-], not only digits (digit strings must be
// canonical numbers), not starting with '-'.
func isStreamID(s string) bool {
	if s == "" || len(s) > maxIDLen || s[0] == '-' {
		return false
	}
	digits := true
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
			digits = false
		default:
			return false
		}
	}
	return !digits
}
