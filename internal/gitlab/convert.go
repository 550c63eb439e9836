package gitlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The REST API and audit event streaming serialise one audit event
// differently. Streaming sends AuditEvent#as_json: every column of the
// audit_events table in column order, where author_name, entity_path,
// target_details, target_type and target_id are copies of the same keys of
// details (AuditEvent#parallel_persist, app/models/audit_event.rb) and
// ip_address is `ip_address.to_s` (so "" when there is none), plus event_type
// (BaseStreamDestination#request_body sets `body[:event_type] = @event_type`)
// and, in current GitLab, the id as a string (the documented streaming
// schema: `"id": {"type": "string"}`, doc/user/compliance/audit_event_schema.md).
// The REST API (ee/lib/api/entities/audit_event.rb) exposes only id (a
// number), author_id, entity_id, entity_type, event_name (details[:event_name])
// and details and created_at. StreamingFromREST rebuilds the streaming
// payload from a REST record.

// streamingFields are the streaming payload's fields in the order GitLab
// sends them (the column order of audit_events, then event_type), as in every
// example of GitLab's streaming documentation.
var streamingFields = []string{
	"id", "author_id", "entity_id", "entity_type", "details", "ip_address",
	"author_name", "entity_path", "target_details", "created_at",
	"target_type", "target_id", "event_type",
}

// liftedFields are the streaming fields GitLab copies from details.
var liftedFields = map[string]bool{
	"author_name": true, "entity_path": true, "target_details": true,
	"target_type": true, "target_id": true,
}

// StreamingFromREST converts one record of the REST audit events API into the
// payload audit event streaming sends for the same event:
//
//   - id: the record's id as a JSON string;
//   - author_id, entity_id, entity_type, created_at, details: as the record
//     has them (details {} when absent, as AuditEvent#initialize_details);
//   - ip_address: the record's top-level ip_address, else details.ip_address,
//     else "" (AuditEvent#as_json writes `ip_address.to_s`);
//   - author_name, entity_path, target_details, target_type, target_id: the
//     record's top-level value, else details' (AuditEvent#parallel_persist
//     copies them from details), else null; a target_id that is a string of
//     digits becomes a number (the column is an integer);
//   - event_type: the record's event_type, else its event_name (the REST
//     entity's name for it), else details.event_name, else DefaultEventType;
//   - any other top-level field of the record follows, in its order (none in
//     GitLab's current API; event_name is dropped once used as event_type).
//
// The output is compact JSON in GitLab's field order. Values are copied, not
// re-encoded (only compacted), so numbers and strings keep their exact form.
func StreamingFromREST(raw json.RawMessage) (json.RawMessage, error) {
	top, order, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("REST audit event: %w", err)
	}
	idRaw, ok := top["id"]
	if !ok {
		return nil, errors.New("REST audit event has no id")
	}
	id, err := parseID(idRaw)
	if err != nil {
		return nil, err
	}
	// details is kept as it is; if it is not an object (GitLab's is always
	// a Hash), nothing can be lifted from it.
	details, _, err := decodeObject(top["details"])
	if err != nil {
		details = map[string]json.RawMessage{}
	}

	eventType, consumed := restEventType(top, details)
	used := map[string]bool{consumed: consumed != ""}
	var b bytes.Buffer
	b.WriteByte('{')
	field := func(name string, v json.RawMessage) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		return json.Compact(&b, v)
	}
	for _, name := range streamingFields {
		used[name] = true
		var v json.RawMessage
		switch {
		case name == "id":
			v, _ = json.Marshal(id)
		case name == "event_type":
			v, _ = json.Marshal(eventType)
		case name == "details":
			if v = top["details"]; v == nil || isNull(v) {
				v = json.RawMessage(`{}`)
			}
		case name == "ip_address":
			v = firstNonNull(top[name], details[name])
			if v == nil {
				v = json.RawMessage(`""`)
			}
		case liftedFields[name]:
			v = firstNonNull(top[name], details[name])
			if v == nil {
				v = json.RawMessage(`null`)
			}
			if name == "target_id" {
				v = digitsToNumber(v)
			}
		default: // author_id, entity_id, entity_type, created_at: only if present
			var ok bool
			if v, ok = top[name]; !ok {
				continue
			}
		}
		if err := field(name, v); err != nil {
			return nil, fmt.Errorf("REST audit event %s: field %s: %w", id, name, err)
		}
	}
	for _, name := range order {
		if used[name] {
			continue
		}
		used[name] = true
		if err := field(name, top[name]); err != nil {
			return nil, fmt.Errorf("REST audit event %s: field %s: %w", id, name, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// restEventType derives a REST record's event type (see StreamingFromREST)
// and names the top-level field it used up ("" if none or event_type itself).
func restEventType(top, details map[string]json.RawMessage) (eventType, consumed string) {
	if s := stringField(top["event_type"]); s != "" {
		return s, ""
	}
	if s := stringField(top["event_name"]); s != "" {
		return s, "event_name"
	}
	if s := stringField(details["event_name"]); s != "" {
		return s, ""
	}
	return DefaultEventType, ""
}

// decodeObject decodes a JSON object into its fields and their order (a
// repeated key keeps its last value and first position, as encoding/json
// keeps the last value).
func decodeObject(raw json.RawMessage) (map[string]json.RawMessage, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	var order []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		k, ok := tok.(string)
		if !ok {
			return nil, nil, errors.New("not a JSON object")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("field %s: %w", k, err)
		}
		if _, seen := fields[k]; !seen {
			order = append(order, k)
		}
		fields[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("data after the JSON object")
	}
	return fields, order, nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// firstNonNull is the first value that is present and not null, or nil.
func firstNonNull(vs ...json.RawMessage) json.RawMessage {
	for _, v := range vs {
		if v != nil && !isNull(v) {
			return v
		}
	}
	return nil
}

// digitsToNumber turns a JSON string of canonical decimal digits into the
// number; anything else is returned as is.
func digitsToNumber(v json.RawMessage) json.RawMessage {
	if s := stringField(v); isDigits(s) {
		return json.RawMessage(s)
	}
	return v
}
