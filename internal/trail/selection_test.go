package trail

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/trailfill/trailfill/internal/testkit"
)

// realRecords are the shared test data's records as JSON, and their fields
// as plain maps for the expectations.
func realRecords(t *testing.T) ([][]byte, []map[string]any) {
	t.Helper()
	recs := testkit.RealRecords(t)
	out := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out, recs
}

func str(r map[string]any, k string) string {
	s, _ := r[k].(string)
	return s
}

func readOnly(r map[string]any) bool { b, _ := r["readOnly"].(bool); return b }

// global is the test's own statement of a global service event: IAM,
// CloudFront, sign-in, and STS through its global endpoint (or with no host
// header), recorded in us-east-1.
func global(r map[string]any) bool {
	if str(r, "awsRegion") != "us-east-1" {
		return false
	}
	switch str(r, "eventSource") {
	case "iam.amazonaws.com", "cloudfront.amazonaws.com", "signin.amazonaws.com":
		return true
	case "sts.amazonaws.com":
		tls, _ := r["tlsDetails"].(map[string]any)
		h, _ := tls["clientProvidedHostHeader"].(string)
		return h == "" || h == "sts.amazonaws.com"
	}
	return false
}

func mgmt(fs ...cttypes.AdvancedFieldSelector) cttypes.AdvancedEventSelector {
	return cttypes.AdvancedEventSelector{FieldSelectors: append([]cttypes.AdvancedFieldSelector{
		{Field: aws.String("eventCategory"), Equals: []string{"Management"}}}, fs...)}
}

func field(name string) cttypes.AdvancedFieldSelector {
	return cttypes.AdvancedFieldSelector{Field: aws.String(name)}
}

func TestSelectionOnRealRecords(t *testing.T) {
	recs, plain := realRecords(t)
	noKMS := func(r map[string]any) bool {
		s := str(r, "eventSource")
		return s != "kms.amazonaws.com" && s != "rdsdata.amazonaws.com"
	}
	ro := func(v bool) cttypes.AdvancedFieldSelector {
		f := field("readOnly")
		f.Equals = []string{map[bool]string{true: "true", false: "false"}[v]}
		return f
	}
	notSources := func(op string, v ...string) cttypes.AdvancedFieldSelector {
		f := field("eventSource")
		switch op {
		case "NotEquals":
			f.NotEquals = v
		case "StartsWith":
			f.StartsWith = v
		case "NotStartsWith":
			f.NotStartsWith = v
		case "EndsWith":
			f.EndsWith = v
		case "NotEndsWith":
			f.NotEndsWith = v
		case "Equals":
			f.Equals = v
		}
		return f
	}
	cases := []struct {
		name     string
		basic    []cttypes.EventSelector
		advanced []cttypes.AdvancedEventSelector
		noGlobal bool
		want     func(map[string]any) bool
		notes    int // selectors of unrecoverable events
	}{
		{name: "no selectors: the default of a new trail", want: func(map[string]any) bool { return true }},
		{name: "basic All", basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeAll}}, want: func(map[string]any) bool { return true }},
		{name: "basic WriteOnly", basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeWriteOnly}},
			want: func(r map[string]any) bool { return !readOnly(r) }},
		{name: "basic ReadOnly", basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeReadOnly, IncludeManagementEvents: aws.Bool(true)}},
			want: readOnly},
		{name: "basic excluding KMS and RDS Data API", basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeAll, ExcludeManagementEventSources: []string{"rdsdata.amazonaws.com", "kms.amazonaws.com"}}},
			want: noKMS},
		{name: "basic ReadOnly or WriteOnly without KMS",
			basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeReadOnly}, {ReadWriteType: cttypes.ReadWriteTypeWriteOnly, ExcludeManagementEventSources: []string{"kms.amazonaws.com"}}},
			want:  func(r map[string]any) bool { return readOnly(r) || str(r, "eventSource") != "kms.amazonaws.com" }},
		{name: "basic data events only",
			basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeAll, IncludeManagementEvents: aws.Bool(false),
				DataResources: []cttypes.DataResource{{Type: aws.String("AWS::S3::Object"), Values: []string{"arn:aws:s3:::bucket/"}}}}},
			want: func(map[string]any) bool { return false }, notes: 1},
		{name: "advanced excluding KMS and RDS Data API",
			advanced: []cttypes.AdvancedEventSelector{mgmt(notSources("NotEquals", "kms.amazonaws.com", "rdsdata.amazonaws.com"))},
			want:     noKMS},
		{name: "advanced write events without KMS",
			advanced: []cttypes.AdvancedEventSelector{mgmt(ro(false), notSources("NotEquals", "kms.amazonaws.com"))},
			want:     func(r map[string]any) bool { return !readOnly(r) && str(r, "eventSource") != "kms.amazonaws.com" }},
		{name: "advanced selectors combine with or",
			advanced: []cttypes.AdvancedEventSelector{mgmt(ro(true), notSources("NotEquals", "kms.amazonaws.com")), mgmt(ro(false))},
			want:     func(r map[string]any) bool { return !readOnly(r) || str(r, "eventSource") != "kms.amazonaws.com" }},
		{name: "advanced startsWith", advanced: []cttypes.AdvancedEventSelector{mgmt(notSources("StartsWith", "s3.", "ssm."))},
			want: func(r map[string]any) bool {
				s := str(r, "eventSource")
				return strings.HasPrefix(s, "s3.") || strings.HasPrefix(s, "ssm.")
			}},
		{name: "advanced notStartsWith and endsWith in one field selector",
			advanced: []cttypes.AdvancedEventSelector{mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("eventSource"), NotStartsWith: []string{"ec2."}, EndsWith: []string{".amazonaws.com"}})},
			want:     func(r map[string]any) bool { return !strings.HasPrefix(str(r, "eventSource"), "ec2.") }},
		{name: "advanced notEndsWith", advanced: []cttypes.AdvancedEventSelector{mgmt(notSources("NotEndsWith", "s.amazonaws.com"))},
			want: func(r map[string]any) bool { return !strings.HasSuffix(str(r, "eventSource"), "s.amazonaws.com") }},
		{name: "advanced eventName of event data stores", advanced: []cttypes.AdvancedEventSelector{mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("eventName"), Equals: []string{"AssumeRole", "GetCallerIdentity"}})},
			want: func(r map[string]any) bool {
				n := str(r, "eventName")
				return n == "AssumeRole" || n == "GetCallerIdentity"
			}},
		{name: "advanced data and network selectors beside management",
			advanced: []cttypes.AdvancedEventSelector{
				{Name: aws.String("S3 objects"), FieldSelectors: []cttypes.AdvancedFieldSelector{
					{Field: aws.String("eventCategory"), Equals: []string{"Data"}}, {Field: aws.String("resources.type"), Equals: []string{"AWS::S3::Object"}}}},
				{Name: aws.String("VPC endpoints"), FieldSelectors: []cttypes.AdvancedFieldSelector{
					{Field: aws.String("eventCategory"), Equals: []string{"NetworkActivity"}}, {Field: aws.String("eventSource"), Equals: []string{"s3.amazonaws.com"}}}},
				mgmt(ro(false)),
			},
			want: func(r map[string]any) bool { return !readOnly(r) }, notes: 2},
		{name: "no global service events", noGlobal: true, want: func(r map[string]any) bool { return !global(r) }},
		{name: "write events without global service events", basic: []cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeWriteOnly}}, noGlobal: true,
			want: func(r map[string]any) bool { return !readOnly(r) && !global(r) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sel, notes, err := fromSelectors(c.basic, c.advanced)
			if err != nil {
				t.Fatal(err)
			}
			if len(notes) != c.notes {
				t.Errorf("notes %q, want %d", notes, c.notes)
			}
			if c.noGlobal {
				sel = sel.And(Cond{Field: FieldGlobalServiceEvent, Op: OpEquals, Values: []string{"false"}})
			}
			// The name reads back as the same selection.
			back, err := ParseSelection(sel.Name())
			if err != nil || back.Name() != sel.Name() {
				t.Fatalf("ParseSelection(%q) = %q, %v", sel.Name(), back.Name(), err)
			}
			kept := 0
			for i, rec := range recs {
				want := c.want(plain[i])
				sels := []Selection{sel}
				if i%7 == 0 {
					sels = append(sels, back) // the parsed name selects alike
				}
				for _, s := range sels {
					got, err := s.Keep(rec)
					if err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Fatalf("%s: record %d (%s %s readOnly %v) kept %v, want %v", s.Name(), i, str(plain[i], "eventSource"), str(plain[i], "eventName"), plain[i]["readOnly"], got, want)
					}
				}
				if want {
					kept++ // sel.Keep agreed with want above
				}
			}
			t.Logf("%s: %d of %d records", sel.Name(), kept, len(recs))
		})
	}
}

// The real records hold both kinds of STS events and every kind of event the
// cases tell apart, so each case above can fail.
func TestRealRecordsCoverTheCases(t *testing.T) {
	_, plain := realRecords(t)
	count := map[string]int{}
	for _, r := range plain {
		if readOnly(r) {
			count["read"]++
		} else {
			count["write"]++
		}
		if global(r) {
			count["global"]++
		}
		if str(r, "eventSource") == "sts.amazonaws.com" && !global(r) {
			count["regional sts"]++
		}
		if str(r, "eventSource") == "kms.amazonaws.com" {
			count["kms"]++
		}
	}
	for _, k := range []string{"read", "write", "global", "regional sts", "kms"} {
		if count[k] == 0 {
			t.Errorf("no %s records in the shared test data", k)
		}
	}
}

func TestSelectionNameIsCanonical(t *testing.T) {
	a := []cttypes.AdvancedEventSelector{
		mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("eventSource"), NotEquals: []string{"rdsdata.amazonaws.com", "kms.amazonaws.com"}}, cttypes.AdvancedFieldSelector{Field: aws.String("readOnly"), Equals: []string{"false"}}),
		mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("readOnly"), Equals: []string{"true"}}),
	}
	b := []cttypes.AdvancedEventSelector{
		mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("readOnly"), Equals: []string{"true"}}),
		mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("readOnly"), Equals: []string{"false"}}, cttypes.AdvancedFieldSelector{Field: aws.String("eventSource"), NotEquals: []string{"kms.amazonaws.com", "rdsdata.amazonaws.com", "kms.amazonaws.com"}}),
	}
	sa, _, err := fromSelectors(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, _, err := fromSelectors(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	const want = `eventSource notEquals ["kms.amazonaws.com","rdsdata.amazonaws.com"] && readOnly equals ["false"] || readOnly equals ["true"]`
	if sa.Name() != want || sb.Name() != want {
		t.Fatalf("names\n %q\n %q\nwant %q", sa.Name(), sb.Name(), want)
	}
	// Basic selectors with the same meaning get the same name.
	basic, _, err := fromSelectors([]cttypes.EventSelector{{ReadWriteType: cttypes.ReadWriteTypeWriteOnly, ExcludeManagementEventSources: []string{"rdsdata.amazonaws.com", "kms.amazonaws.com"}}, {ReadWriteType: cttypes.ReadWriteTypeReadOnly}}, nil)
	if err != nil || basic.Name() != want {
		t.Fatalf("basic: %q, %v", basic.Name(), err)
	}
	for _, c := range []struct{ name, sel string }{
		{"every management event", ""},
		{"none", "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSelection(c.sel)
			if err != nil || s.Name() != c.sel {
				t.Fatalf("%q: %q, %v", c.sel, s.Name(), err)
			}
		})
	}
}

func TestParseSelectionRefusesNonCanonicalText(t *testing.T) {
	for _, c := range []struct{ name, text, want string }{
		{"unknown field", `resources.ARN equals ["x"]`, "expected a field"},
		{"unknown operator", `readOnly is ["true"]`, "expected an operator"},
		{"values not a list", `readOnly equals "true"`, "JSON list"},
		{"unsorted values", `eventSource notEquals ["rdsdata.amazonaws.com","kms.amazonaws.com"]`, "canonical"},
		{"unsorted terms", `readOnly equals ["true"] || readOnly equals ["false"]`, "canonical"},
		{"bad connective", `readOnly equals ["true"] and readOnly equals ["false"]`, "expected && or ||"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseSelection(c.text); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseSelection(%q) = %v, want an error containing %q", c.text, err, c.want)
			}
		})
	}
}

func TestSelectionForRegion(t *testing.T) {
	write := NewSelection(Term{{Field: FieldReadOnly, Op: OpEquals, Values: []string{"false"}}})
	noGlobal := write.And(Cond{Field: FieldGlobalServiceEvent, Op: OpEquals, Values: []string{"false"}})
	cases := []struct {
		region string
		sel    Selection
		want   string
		nilSel bool
	}{
		{"us-east-1", noGlobal, `globalServiceEvent equals ["false"] && readOnly equals ["false"]`, false},
		{"eu-west-1", noGlobal, `readOnly equals ["false"]`, false},
		{"eu-west-1", All().And(Cond{Field: FieldGlobalServiceEvent, Op: OpEquals, Values: []string{"false"}}), "", true},
		{"us-east-1", All(), "", true},
		{"cn-northwest-1", noGlobal, `readOnly equals ["false"]`, false},
		{"cn-north-1", noGlobal, `globalServiceEvent equals ["false"] && readOnly equals ["false"]`, false},
	}
	for _, c := range cases {
		t.Run(c.region+" "+c.sel.Name(), func(t *testing.T) {
			if got := c.sel.ForRegion(c.region).Name(); got != c.want {
				t.Fatalf("ForRegion(%s) = %q, want %q", c.region, got, c.want)
			}
			if got := c.sel.Selector(c.region); (got == nil) != c.nilSel {
				t.Fatalf("Selector(%s) = %v, want nil %v", c.region, got, c.nilSel)
			}
		})
	}
}

func TestUnknownManagementFieldIsRefused(t *testing.T) {
	_, _, err := fromSelectors(nil, []cttypes.AdvancedEventSelector{mgmt(cttypes.AdvancedFieldSelector{Field: aws.String("resources.ARN"), StartsWith: []string{"arn:"}})})
	if err == nil || !strings.Contains(err.Error(), `field "resources.ARN"`) {
		t.Fatalf("got %v", err)
	}
	if !slices.Contains(knownFields, FieldReadOnly) {
		t.Fatal("readOnly is not a known field")
	}
}
