package gitlab

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseLayout(t *testing.T) {
	for in, want := range map[string]Layout{"": LayoutDefault, "default": LayoutDefault, " gitlab-s3 ": LayoutGitLabS3, "gitlab-s3": LayoutGitLabS3} {
		got, err := ParseLayout(in)
		if err != nil || got != want {
			t.Errorf("ParseLayout(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"GitLab-S3", "s3", "native", "default,gitlab-s3"} {
		if l, err := ParseLayout(in); err == nil || !strings.Contains(err.Error(), "gitlab-s3") {
			t.Errorf("ParseLayout(%q) = %q, %v; want an error naming the layouts", in, l, err)
		}
	}
	if Layout("").String() != "default" || Layout("").Validate() != nil || Layout("x").Validate() == nil {
		t.Error("the zero Layout is not the default layout")
	}
}

// TestGitLabS3Key derives keys from payloads as GitLab's S3 destination
// names them (amazon_s3_stream_destination.rb #filename), with created_at for
// the upload time.
func TestGitLabS3Key(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		want    string
	}{
		{"project", `{"id":"1","entity_type":"Project","event_type":"repository_git_operation","created_at":"2022-02-23T06:21:05.283Z"}`,
			"project/2022/02/repository_git_operation_1_1645597265283.json"},
		{"group, numeric id", `{"id":887,"entity_type":"Group","event_type":"update_approval_rules","created_at":"2022-02-23T06:21:05.283Z"}`,
			"group/2022/02/update_approval_rules_887_1645597265283.json"},
		{"user", `{"id":"3","entity_type":"User","event_type":"user_email_changed","created_at":"2022-02-23T06:21:05.283Z"}`,
			"user/2022/02/user_email_changed_3_1645597265283.json"},
		{"instance scope", `{"id":"4","entity_type":"Gitlab::Audit::InstanceScope","event_type":"audit_events_streaming_instance_headers_create","created_at":"2023-08-01T11:29:44.764Z"}`,
			"instance/2023/08/audit_events_streaming_instance_headers_create_4_1690889384764.json"},
		{"user namespace", `{"id":"5","entity_type":"Namespaces::UserNamespace","event_type":"x","created_at":"2023-08-01T11:29:44.764Z"}`,
			"user/2023/08/x_5_1690889384764.json"},
		{"other namespace class", `{"id":"6","entity_type":"Namespaces::ProjectNamespace","event_type":"x","created_at":"2023-08-01T11:29:44.764Z"}`,
			"namespaces_projectnamespace/2023/08/x_6_1690889384764.json"},
		{"runs of odd characters", `{"id":"7","entity_type":"Ci::Runner--Manager  v2!","event_type":"x","created_at":"2023-08-01T11:29:44.764Z"}`,
			"ci_runner_manager_v2_/2023/08/x_7_1690889384764.json"},
		{"leading separator and non-ASCII", `{"id":"8","entity_type":"::Über/Group","event_type":"x","created_at":"2023-08-01T11:29:44.764Z"}`,
			"_ber_group/2023/08/x_8_1690889384764.json"},
		{"no entity type", `{"id":"9","event_type":"x","created_at":"2023-08-01T11:29:44.764Z"}`,
			"unspecified/2023/08/x_9_1690889384764.json"},
		{"null entity type", `{"id":"9","entity_type":null,"event_type":"x","created_at":"2023-08-01T11:29:44.764Z"}`,
			"unspecified/2023/08/x_9_1690889384764.json"},
		{"no event type", `{"id":"10","entity_type":"Project","created_at":"2023-08-01T11:29:44.764Z"}`,
			"project/2023/08/audit_operation_10_1690889384764.json"},
		{"event type with a slash", `{"id":"11","entity_type":"Project","event_type":"../a/b c","created_at":"2023-08-01T11:29:44.764Z"}`,
			"project/2023/08/.._a_b_c_11_1690889384764.json"},
		{"event type of dots", `{"id":"11","entity_type":"Project","event_type":"..","created_at":"2023-08-01T11:29:44.764Z"}`,
			"project/2023/08/__11_1690889384764.json"},
		{"streaming-only event (UUID id)", `{"id":"3f2b7c1e-0000-4000-8000-00000000abcd","entity_type":"Project","event_type":"repository_git_operation","created_at":"2023-08-01T11:29:44.764Z"}`,
			"project/2023/08/repository_git_operation_3f2b7c1e-0000-4000-8000-00000000abcd_1690889384764.json"},
		// Month and milliseconds come from created_at in UTC.
		{"local evening is the next UTC month", `{"id":"12","entity_type":"Project","event_type":"x","created_at":"2025-01-31T23:59:59.999-05:00"}`,
			"project/2025/02/x_12_1738385999999.json"},
		{"local morning is the previous UTC month", `{"id":"13","entity_type":"Project","event_type":"x","created_at":"2025-02-01T00:30:00+01:00"}`,
			"project/2025/01/x_13_1738366200000.json"},
		{"last millisecond of a year", `{"id":"14","entity_type":"Project","event_type":"x","created_at":"2024-12-31T23:59:59.999Z"}`,
			"project/2024/12/x_14_1735689599999.json"},
		{"first instant of a year", `{"id":"15","entity_type":"Project","event_type":"x","created_at":"2025-01-01T00:00:00Z"}`,
			"project/2025/01/x_15_1735689600000.json"},
		{"leap day, half a second", `{"id":"16","entity_type":"Project","event_type":"x","created_at":"2024-02-29T12:00:00.5Z"}`,
			"project/2024/02/x_16_1709208000500.json"},
		{"microseconds are cut to milliseconds", `{"id":"17","entity_type":"Project","event_type":"x","created_at":"2025-03-03T15:04:05.006789Z"}`,
			"project/2025/03/x_17_1741014245006.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := ParseEvent(json.RawMessage(c.payload))
			if err != nil {
				t.Fatal(err)
			}
			if got := GitLabS3Key(e); got != c.want {
				t.Errorf("GitLabS3Key = %s, want %s", got, c.want)
			}
			if got := LayoutGitLabS3.Key("ignored", e); got != c.want {
				t.Errorf("Layout.Key = %s, want %s", got, c.want)
			}
			o, ok := ParseEventObjectKey(c.want)
			if !ok || o.ID != e.ID || o.TimeMS != e.CreatedAt.UnixMilli() || o.Batch {
				t.Errorf("ParseEventObjectKey(%s) = %+v, %v", c.want, o, ok)
			}
		})
	}
	e, _ := ParseEvent(json.RawMessage(cases[0].payload))
	if got := LayoutDefault.Key("acme", e); got != "GitLab/acme/2022/02/23/1.json" {
		t.Errorf("default key %s", got)
	}
	if got := EventTypeSegment(strings.Repeat("a", 300)); len(got) != maxEventTypeLen {
		t.Errorf("long event type gives a %d-byte segment", len(got))
	}
}

func TestParseNativeKeys(t *testing.T) {
	t.Run("GitLab's own example", func(t *testing.T) {
		// The example in GitLab's source comment of #filename.
		o, ok := ParseEventObjectKey("Group/2023/09/update_approval_rules_887_1694441509820.json")
		if !ok || o.ID != "887" || o.TimeMS != 1694441509820 {
			t.Fatalf("%+v, %v", o, ok)
		}
	})
	t.Run("batches", func(t *testing.T) {
		for key, want := range map[string]NativeObject{
			"2025/03/02/1740873600123_42.json": {Key: "2025/03/02/1740873600123_42.json", TimeMS: 1740873600123, ID: "42", Batch: true},
			"2025/03/02/1740873600123_42":      {Key: "2025/03/02/1740873600123_42", TimeMS: 1740873600123, ID: "42", Batch: true},
			"2025/12/31/1767225599999_3f2b7c1e-0000-4000-8000-00000000abcd.json": {
				Key: "2025/12/31/1767225599999_3f2b7c1e-0000-4000-8000-00000000abcd.json", TimeMS: 1767225599999, ID: "3f2b7c1e-0000-4000-8000-00000000abcd", Batch: true},
		} {
			o, ok := ParseBatchObjectKey(key)
			if !ok || o != want {
				t.Errorf("ParseBatchObjectKey(%s) = %+v, %v", key, o, ok)
			}
		}
	})
	t.Run("not native keys", func(t *testing.T) {
		for _, k := range []string{
			"project/2025/03/x_1_1.txt", "project/2025/13/x_1_1.json", "project/25/03/x_1_1.json",
			"project/2025/03/_1_1.json", "project/2025/03/1_1.json", "project/2025/03/x_01_1.json",
			"project/2025/03/x_1_-1.json", "project/2025/03/x_1_z.json", "a/project/2025/03/x_1_1.json",
			"GitLab/gitlab/2025/03/01/1.json", "trailfill/gitlab-s3-manifests/instance/2025/03/01/20250301T0000Z.json",
			"2025/03/02/1740873600123_42.json",
		} {
			if o, ok := ParseEventObjectKey(k); ok {
				t.Errorf("ParseEventObjectKey(%s) = %+v", k, o)
			}
		}
		for _, k := range []string{
			"2025/03/32/1_42.json", "2025/03/00/1_42.json", "2025/03/02/x_42.json", "2025/03/02/1740873600123.json",
			"2025/03/02/1_4_2.json", "2025/03/02/sub/1_42.json", "project/2025/03/x_1_1.json",
		} {
			if o, ok := ParseBatchObjectKey(k); ok {
				t.Errorf("ParseBatchObjectKey(%s) = %+v", k, o)
			}
		}
	})
}

func TestNativeMonths(t *testing.T) {
	f := func(ms []time.Time) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Format("2006-01"))
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		at        string
		lookahead int
		want      string
	}{
		{"2025-03-15T10:00:00Z", 1, "2025-03 2025-04"},
		{"2025-03-15T10:00:00Z", 0, "2025-03"},
		{"2025-03-15T10:00:00Z", 2, "2025-03 2025-04 2025-05"},
		{"2025-12-31T23:59:59Z", 1, "2025-12 2026-01"},
		// Within 12 hours of a month's start an instance behind UTC may still
		// name the previous month.
		{"2025-03-01T11:59:59Z", 1, "2025-02 2025-03 2025-04"},
		{"2025-03-01T12:00:00Z", 1, "2025-03 2025-04"},
		{"2025-01-01T00:00:00Z", 0, "2024-12 2025-01"},
	} {
		at, _ := time.Parse(time.RFC3339, c.at)
		if got := f(NativeMonths(at, c.lookahead)); got != c.want {
			t.Errorf("NativeMonths(%s, %d) = %s, want %s", c.at, c.lookahead, got, c.want)
		}
	}
}
