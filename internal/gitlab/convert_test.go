package gitlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// restView is what the REST API returns for the event a streaming payload
// describes (ee/lib/api/entities/audit_event.rb): id as a number, author_id,
// entity_id, entity_type, event_name, details, created_at; the streaming-only
// fields (author_name, entity_path, ip_address, target_*, event_type) are not
// there, only their copies inside details.
func restView(t *testing.T, streamed string, id int) json.RawMessage {
	t.Helper()
	f, _, err := decodeObject(json.RawMessage(streamed))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"id": %d`, id)
	for _, k := range []string{"author_id", "entity_id", "entity_type"} {
		fmt.Fprintf(&b, `, %q: %s`, k, f[k])
	}
	fmt.Fprintf(&b, `, "event_name": %s, "details": %s, "created_at": %s}`, f["event_type"], f["details"], f["created_at"])
	return b.Bytes()
}

// streamedAsCurrent is a streaming sample as current GitLab sends it: compact,
// with the id as a string (the docs' older examples show a number).
func streamedAsCurrent(t *testing.T, streamed string, id int) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(streamed)); err != nil {
		t.Fatal(err)
	}
	s, ok := strings.CutPrefix(b.String(), `{"id":1,`)
	if !ok {
		t.Fatalf("sample does not start with id 1: %.40s", b.String())
	}
	return fmt.Sprintf(`{"id":"%d",%s`, id, s)
}

// TestStreamingFromRESTRebuildsStreamingSamples converts the REST record of
// each event of GitLab's streaming examples (shared testdata) and gets the
// streamed payload back, field for field and in GitLab's order. The one
// difference is documented: streaming's top-level author_name is the
// author's current name (AuditEvent#author_name), REST has only the name
// recorded in details.
func TestStreamingFromRESTRebuildsStreamingSamples(t *testing.T) {
	for i, s := range sampleLines(t) {
		t.Run(fmt.Sprintf("sample %d", i+1), func(t *testing.T) {
			id := 5000 + i
			got, err := StreamingFromREST(restView(t, s, id))
			if err != nil {
				t.Fatal(err)
			}
			want := streamedAsCurrent(t, s, id)
			if string(got) == want {
				return
			}
			// Only author_name may differ, and only where the sample's own
			// top-level name differs from details.author_name.
			var g, w map[string]json.RawMessage
			if json.Unmarshal(got, &g) != nil || json.Unmarshal([]byte(want), &w) != nil {
				t.Fatalf("got %s", got)
			}
			var d struct {
				AuthorName json.RawMessage `json:"author_name"`
			}
			_ = json.Unmarshal(w["details"], &d)
			if bytes.Equal(d.AuthorName, w["author_name"]) || !bytes.Equal(g["author_name"], d.AuthorName) {
				t.Fatalf("converted\n%s\nwant\n%s", got, want)
			}
			g["author_name"] = w["author_name"]
			if gb, _ := json.Marshal(g); string(gb) != mustRemarshal(t, want) {
				t.Fatalf("converted\n%s\nwant\n%s", got, want)
			}
			if fieldNames(t, got) != fieldNames(t, json.RawMessage(want)) {
				t.Fatalf("fields %s, want %s", fieldNames(t, got), fieldNames(t, json.RawMessage(want)))
			}
		})
	}
}

func mustRemarshal(t *testing.T, s string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// fieldNames lists an object's top-level fields in order.
func fieldNames(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	_, order, err := decodeObject(raw)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(order, ",")
}

// TestStreamingFromRESTOnAPISamples converts the REST API's own example
// records (shared testdata): each comes out with exactly the fields, in the
// order, of the streamed event of the same type in GitLab's streaming
// examples (audit_operation, the type of events without a name), with the
// values lifted from details.
func TestStreamingFromRESTOnAPISamples(t *testing.T) {
	var records []json.RawMessage
	if err := json.Unmarshal(sharedSample(t, "api_instance_audit_events_example.json"), &records); err != nil {
		t.Fatal(err)
	}
	var streamedAuditOperation string
	for _, s := range sampleLines(t) {
		if strings.Contains(s, `"event_type": "audit_operation"`) {
			streamedAuditOperation = s
		}
	}
	if streamedAuditOperation == "" || len(records) != 4 {
		t.Fatalf("samples changed: %d REST records, audit_operation sample %q", len(records), streamedAuditOperation)
	}
	wantFields := fieldNames(t, json.RawMessage(streamedAuditOperation))
	want := []struct {
		body, key string
	}{
		{`{"id":"1","author_id":1,"entity_id":6,"entity_type":"Project","details":{"custom_message":"Project archived","author_name":"Administrator","author_email":"admin@example.com","target_id":"flightjs/flight","target_type":"Project","target_details":"flightjs/flight","ip_address":"127.0.0.1","entity_path":"flightjs/flight"},"ip_address":"127.0.0.1","author_name":"Administrator","entity_path":"flightjs/flight","target_details":"flightjs/flight","created_at":"2019-08-30T07:00:41.885Z","target_type":"Project","target_id":"flightjs/flight","event_type":"audit_operation"}`,
			"project/2019/08/audit_operation_1_1567148441885.json"},
		{`{"id":"2","author_id":1,"entity_id":60,"entity_type":"Group","details":{"add":"group","author_name":"Administrator","author_email":"admin@example.com","target_id":"flightjs","target_type":"Group","target_details":"flightjs","ip_address":"127.0.0.1","entity_path":"flightjs"},"ip_address":"127.0.0.1","author_name":"Administrator","entity_path":"flightjs","target_details":"flightjs","created_at":"2019-08-27T18:36:44.162Z","target_type":"Group","target_id":"flightjs","event_type":"audit_operation"}`,
			"group/2019/08/audit_operation_2_1566931004162.json"},
		// details.ip_address is null: streaming sends "" (ip_address.to_s).
		{`{"id":"3","author_id":51,"entity_id":51,"entity_type":"User","details":{"change":"email address","from":"hello@flightjs.com","to":"maintainer@flightjs.com","author_name":"Andreas","author_email":"admin@example.com","target_id":51,"target_type":"User","target_details":"Andreas","ip_address":null,"entity_path":"Andreas"},"ip_address":"","author_name":"Andreas","entity_path":"Andreas","target_details":"Andreas","created_at":"2019-08-22T16:34:25.639Z","target_type":"User","target_id":51,"event_type":"audit_operation"}`,
			"user/2019/08/audit_operation_3_1566491665639.json"},
		// A record that already carries the streaming fields keeps them.
		{`{"id":"4","author_id":43,"entity_id":1,"entity_type":"Gitlab::Audit::InstanceScope","details":{"author_name":"Administrator","author_class":"User","target_id":32,"target_type":"AuditEvents::Streaming::InstanceHeader","target_details":"unknown","custom_message":"Created custom HTTP header with key X-arg.","ip_address":"127.0.0.1","entity_path":"gitlab_instance"},"ip_address":"127.0.0.1","author_name":"Administrator","entity_path":"gitlab_instance","target_details":"unknown","created_at":"2023-08-01T11:29:44.764Z","target_type":"AuditEvents::Streaming::InstanceHeader","target_id":32,"event_type":"audit_events_streaming_instance_headers_create"}`,
			"instance/2023/08/audit_events_streaming_instance_headers_create_4_1690889384764.json"},
	}
	for i, rec := range records {
		t.Run(fmt.Sprintf("record %d", i+1), func(t *testing.T) {
			got, err := StreamingFromREST(rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want[i].body {
				t.Errorf("converted\n%s\nwant\n%s", got, want[i].body)
			}
			if f := fieldNames(t, got); f != wantFields {
				t.Errorf("fields %s, want those of the streamed event %s", f, wantFields)
			}
			e, err := ParseEvent(got)
			if err != nil {
				t.Fatal(err)
			}
			if k := GitLabS3Key(e); k != want[i].key {
				t.Errorf("key %s, want %s", k, want[i].key)
			}
		})
	}
}

func TestStreamingFromRESTRules(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"event_name names the type and is dropped",
			`{"id":7,"author_id":1,"entity_id":2,"entity_type":"Group","event_name":"group_created","details":{"event_name":"group_created"},"created_at":"2025-03-02T00:00:00Z"}`,
			`{"id":"7","author_id":1,"entity_id":2,"entity_type":"Group","details":{"event_name":"group_created"},"ip_address":"","author_name":null,"entity_path":null,"target_details":null,"created_at":"2025-03-02T00:00:00Z","target_type":null,"target_id":null,"event_type":"group_created"}`},
		{"details.event_name when the record has none",
			`{"id":7,"details":{"event_name":"member_added","target_id":"12"},"created_at":"2025-03-02T00:00:00Z"}`,
			`{"id":"7","details":{"event_name":"member_added","target_id":"12"},"ip_address":"","author_name":null,"entity_path":null,"target_details":null,"created_at":"2025-03-02T00:00:00Z","target_type":null,"target_id":12,"event_type":"member_added"}`},
		{"event_type wins; event_name kept then; extras keep their order",
			`{"zeta":1,"id":"7","event_type":"a","event_name":"b","created_at":"2025-03-02T00:00:00Z","alpha":[1, 2]}`,
			`{"id":"7","details":{},"ip_address":"","author_name":null,"entity_path":null,"target_details":null,"created_at":"2025-03-02T00:00:00Z","target_type":null,"target_id":null,"event_type":"a","zeta":1,"event_name":"b","alpha":[1,2]}`},
		{"top-level null falls back to details; values keep their spelling",
			"{\"id\": 8, \"author_name\": null, \"details\": {\"author_name\": \"\\u00e9t\\u00e9\", \"ip_address\": \"::1\", \"target_id\": 1.50}, \"created_at\": \"2025-03-02T00:00:00.123456Z\"}",
			`{"id":"8","details":{"author_name":"\u00e9t\u00e9","ip_address":"::1","target_id":1.50},"ip_address":"::1","author_name":"\u00e9t\u00e9","entity_path":null,"target_details":null,"created_at":"2025-03-02T00:00:00.123456Z","target_type":null,"target_id":1.50,"event_type":"audit_operation"}`},
		{"details that are not an object are kept, nothing lifted",
			`{"id":9,"details":"x","created_at":"2025-03-02T00:00:00Z"}`,
			`{"id":"9","details":"x","ip_address":"","author_name":null,"entity_path":null,"target_details":null,"created_at":"2025-03-02T00:00:00Z","target_type":null,"target_id":null,"event_type":"audit_operation"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := StreamingFromREST(json.RawMessage(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON")
			}
		})
	}
	for _, bad := range []string{`[]`, `{"created_at":"2025-03-02T00:00:00Z"}`, `{"id":-1}`, `{"id":1,"a":}`, `{"id":1} {}`, `"x"`} {
		if got, err := StreamingFromREST(json.RawMessage(bad)); err == nil {
			t.Errorf("StreamingFromREST(%s) = %s, want an error", bad, got)
		}
	}
}
