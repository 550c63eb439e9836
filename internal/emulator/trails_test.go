package emulator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"
)

const (
	acctOutsider = "333333333333"
	acctAdmin    = "444444444444"
	orgTrailKey  = "arn:aws:kms:us-east-1:111111111111:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
)

var (
	deliveredAt = time.Date(2025, 4, 17, 15, 5, 12, 345e6, time.UTC)
	startedAt   = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	attemptAt   = time.Date(2025, 4, 18, 9, 0, 0, 0, time.UTC)
)

// orgTrail is a multi-region organization trail of the management account
// A whose advanced selectors exclude KMS and RDS Data API events.
func orgTrail() Trail {
	return Trail{
		Name: "org-trail", S3BucketName: "log-archive", S3KeyPrefix: "central",
		IsOrganizationTrail: true, IsMultiRegionTrail: true, IncludeGlobalServiceEvents: true,
		KmsKeyId: orgTrailKey, LogFileValidationEnabled: true,
		AdvancedEventSelectors: []AdvancedEventSelector{{
			Name: "Management events without KMS and RDS Data API",
			FieldSelectors: []AdvancedFieldSelector{
				{Field: "eventCategory", Equals: []string{"Management"}},
				{Field: "eventSource", NotEquals: []string{"kms.amazonaws.com", "rdsdata.amazonaws.com"}},
			},
		}},
		Status: TrailStatus{
			IsLogging: true, LatestDeliveryTime: deliveredAt, StartLoggingTime: startedAt,
			LatestDeliveryError: "AccessDenied", LatestDeliveryAttemptTime: attemptAt,
		},
	}
}

// trailWorld is a server with an organization (A manages it, B is a
// member, D a delegated administrator, C is outside) and four trails.
type trailWorld struct {
	s                                          *Server
	orgARN, regionalARN, defaultARN, memberARN string
}

func newTrailWorld(t *testing.T) trailWorld {
	t.Helper()
	s := start(t, fast())
	s.SetOrganization(Organization{ID: "o-abc123defg", ManagementAccount: acctA, Members: []string{acctB, acctAdmin}, DelegatedAdministrators: []string{acctAdmin}})
	w := trailWorld{s: s}
	add := func(acct, region string, tr Trail) string {
		arn, err := s.AddTrail(acct, region, tr)
		if err != nil {
			t.Fatal(err)
		}
		return arn
	}
	w.orgARN = add(acctA, "us-east-1", orgTrail())
	w.regionalARN = add(acctA, "eu-west-1", Trail{
		Name: "regional", S3BucketName: "regional-logs",
		EventSelectors: []EventSelector{{
			ReadWriteType:                 "WriteOnly",
			ExcludeManagementEventSources: []string{"kms.amazonaws.com"},
			DataResources:                 []DataResource{{Type: "AWS::S3::Object", Values: []string{"arn:aws:s3:::data/"}}},
		}},
	})
	w.defaultARN = add(acctA, "us-east-1", Trail{Name: "default.trail_1", S3BucketName: "default-logs"})
	w.memberARN = add(acctB, "us-west-2", Trail{Name: "member-own", S3BucketName: "member-logs", IncludeGlobalServiceEvents: true})
	return w
}

func (w trailWorld) client(acct, region string) *cloudtrail.Client {
	return ctClient(w.s, acct, region)
}

func trailNames(ts []types.Trail) []string {
	var out []string
	for _, t := range ts {
		out = append(out, aws.ToString(t.Name))
	}
	return out
}

func TestTrailARNs(t *testing.T) {
	t.Parallel()
	cases := []struct{ region, want string }{
		{"us-east-1", "arn:aws:cloudtrail:us-east-1:111111111111:trail/trail-1"},
		{"cn-north-1", "arn:aws-cn:cloudtrail:cn-north-1:111111111111:trail/trail-1"},
		{"us-gov-west-1", "arn:aws-us-gov:cloudtrail:us-gov-west-1:111111111111:trail/trail-1"},
	}
	for _, tc := range cases {
		t.Run(tc.region, func(t *testing.T) {
			t.Parallel()
			s := start(t, fast())
			arn, err := s.AddTrail(acctA, tc.region, Trail{Name: "trail-1", S3BucketName: "b"})
			if err != nil || arn != tc.want || TrailARN(acctA, tc.region, "trail-1") != tc.want {
				t.Fatalf("AddTrail = %q, %v; want %q", arn, err, tc.want)
			}
			out, err := ctClient(s, acctA, tc.region).GetTrail(context.Background(), &cloudtrail.GetTrailInput{Name: aws.String(arn)})
			if err != nil || aws.ToString(out.Trail.TrailARN) != tc.want {
				t.Errorf("GetTrail by ARN: %v", err)
			}
		})
	}
}

func TestGetTrail(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	ctx := context.Background()
	get := func(acct, region, name string) (*types.Trail, error) {
		out, err := w.client(acct, region).GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String(name)})
		if err != nil {
			return nil, err
		}
		return out.Trail, nil
	}
	wantOrg := func(t *testing.T, tr *types.Trail) {
		t.Helper()
		if aws.ToString(tr.Name) != "org-trail" || aws.ToString(tr.S3BucketName) != "log-archive" || aws.ToString(tr.S3KeyPrefix) != "central" ||
			!aws.ToBool(tr.IsOrganizationTrail) || !aws.ToBool(tr.IsMultiRegionTrail) || !aws.ToBool(tr.IncludeGlobalServiceEvents) ||
			aws.ToString(tr.HomeRegion) != "us-east-1" || aws.ToString(tr.TrailARN) != w.orgARN || aws.ToString(tr.KmsKeyId) != orgTrailKey ||
			!aws.ToBool(tr.LogFileValidationEnabled) || !aws.ToBool(tr.HasCustomEventSelectors) || aws.ToBool(tr.HasInsightSelectors) {
			t.Errorf("trail = %+v", *tr)
		}
	}

	t.Run("by name in its home region", func(t *testing.T) {
		t.Parallel()
		tr, err := get(acctA, "us-east-1", "org-trail")
		if err != nil {
			t.Fatal(err)
		}
		wantOrg(t, tr)
	})
	t.Run("by ARN where it is a shadow trail", func(t *testing.T) {
		t.Parallel()
		tr, err := get(acctA, "ap-south-1", w.orgARN)
		if err != nil {
			t.Fatal(err)
		}
		wantOrg(t, tr)
	})
	t.Run("a trail without selectors or prefix", func(t *testing.T) {
		t.Parallel()
		tr, err := get(acctA, "us-east-1", "default.trail_1")
		if err != nil {
			t.Fatal(err)
		}
		if tr.S3KeyPrefix != nil || tr.KmsKeyId != nil || aws.ToBool(tr.HasCustomEventSelectors) || aws.ToBool(tr.IsMultiRegionTrail) ||
			tr.IsOrganizationTrail == nil || aws.ToBool(tr.IsOrganizationTrail) || aws.ToString(tr.TrailARN) != w.defaultARN {
			t.Errorf("trail = %+v", *tr)
		}
	})
	t.Run("from a member account by ARN", func(t *testing.T) {
		t.Parallel()
		tr, err := get(acctB, "eu-west-1", w.orgARN)
		if err != nil {
			t.Fatal(err)
		}
		wantOrg(t, tr)
	})

	notFound := []struct {
		name, acct, region, trail string
	}{
		{"a name outside its home region", acctA, "eu-west-1", "org-trail"},
		{"a single-region trail's ARN elsewhere", acctA, "us-east-1", "arn:aws:cloudtrail:eu-west-1:111111111111:trail/regional"},
		{"an unknown name", acctA, "us-east-1", "nothing-here"},
		{"an unknown ARN of the caller", acctA, "us-east-1", "arn:aws:cloudtrail:us-east-1:111111111111:trail/nothing"},
		{"the organization trail by name from a member", acctB, "us-east-1", "org-trail"},
		{"a member's own trail elsewhere", acctB, "us-east-1", "member-own"},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := get(tc.acct, tc.region, tc.trail)
			if !isA[*types.TrailNotFoundException](err) {
				t.Fatalf("err = %v, want TrailNotFoundException", err)
			}
			want := fmt.Sprintf("Unknown trail: %s for the user: %s", tc.trail, tc.acct)
			if code, status := apiCode(t, err); code != "TrailNotFoundException" || status != 400 {
				t.Errorf("%s %d", code, status)
			}
			if msg := errMessage(err); msg != want {
				t.Errorf("message %q, want %q", msg, want)
			}
		})
	}

	invalid := []struct{ name, trail, code string }{
		{"too short", "ab", "InvalidTrailNameException"},
		{"too long", string(slices.Repeat([]byte("a"), 129)), "InvalidTrailNameException"},
		{"adjacent punctuation", "my-_trail", "InvalidTrailNameException"},
		{"a space", "my trail", "InvalidTrailNameException"},
		{"starts with a dash", "-trail", "InvalidTrailNameException"},
		{"an IP address", "192.168.5.4", "InvalidTrailNameException"},
		{"a malformed ARN", "arn:aws:cloudtrail:us-east-1:1111:trail/x", "CloudTrailARNInvalidException"},
		{"another service's ARN", "arn:aws:s3:::log-archive", "CloudTrailARNInvalidException"},
		{"another account's trail", "arn:aws:cloudtrail:us-west-2:222222222222:trail/member-own", "CloudTrailARNInvalidException"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := get(acctA, "us-east-1", tc.trail)
			if code, status := apiCode(t, err); code != tc.code || status != 400 {
				t.Errorf("%s %d, want %s 400 (%v)", code, status, tc.code, err)
			}
		})
	}
	t.Run("outside the organization", func(t *testing.T) {
		t.Parallel()
		_, err := get(acctOutsider, "us-east-1", w.orgARN)
		if !isA[*types.CloudTrailARNInvalidException](err) {
			t.Fatalf("err = %v", err)
		}
		if want := "AccountID in ARN is wrong, you can only access resources with AccountID 333333333333."; errMessage(err) != want {
			t.Errorf("message %q", errMessage(err))
		}
	})
}

func TestGetEventSelectors(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	ctx := context.Background()
	sel := func(acct, region, name string) (*cloudtrail.GetEventSelectorsOutput, error) {
		return w.client(acct, region).GetEventSelectors(ctx, &cloudtrail.GetEventSelectorsInput{TrailName: aws.String(name)})
	}

	t.Run("advanced selectors", func(t *testing.T) {
		t.Parallel()
		out, err := sel(acctA, "us-east-1", "org-trail")
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.TrailARN) != w.orgARN || out.EventSelectors != nil || len(out.AdvancedEventSelectors) != 1 {
			t.Fatalf("out = %+v", out)
		}
		as := out.AdvancedEventSelectors[0]
		fs := as.FieldSelectors
		if aws.ToString(as.Name) != "Management events without KMS and RDS Data API" || len(fs) != 2 ||
			aws.ToString(fs[0].Field) != "eventCategory" || !slices.Equal(fs[0].Equals, []string{"Management"}) || fs[0].NotEquals != nil ||
			aws.ToString(fs[1].Field) != "eventSource" || !slices.Equal(fs[1].NotEquals, []string{"kms.amazonaws.com", "rdsdata.amazonaws.com"}) ||
			fs[1].Equals != nil || fs[1].StartsWith != nil || fs[1].NotStartsWith != nil || fs[1].EndsWith != nil || fs[1].NotEndsWith != nil {
			t.Errorf("advanced selector = %+v", as)
		}
	})
	t.Run("basic selectors", func(t *testing.T) {
		t.Parallel()
		out, err := sel(acctA, "eu-west-1", "regional")
		if err != nil {
			t.Fatal(err)
		}
		if out.AdvancedEventSelectors != nil || len(out.EventSelectors) != 1 {
			t.Fatalf("out = %+v", out)
		}
		es := out.EventSelectors[0]
		if es.ReadWriteType != types.ReadWriteTypeWriteOnly || !aws.ToBool(es.IncludeManagementEvents) ||
			!slices.Equal(es.ExcludeManagementEventSources, []string{"kms.amazonaws.com"}) || len(es.DataResources) != 1 ||
			aws.ToString(es.DataResources[0].Type) != "AWS::S3::Object" || !slices.Equal(es.DataResources[0].Values, []string{"arn:aws:s3:::data/"}) {
			t.Errorf("selector = %+v", es)
		}
	})
	t.Run("the default selector of a new trail", func(t *testing.T) {
		t.Parallel()
		out, err := sel(acctA, "us-east-1", w.defaultARN)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.EventSelectors) != 1 {
			t.Fatalf("out = %+v", out)
		}
		es := out.EventSelectors[0]
		if es.ReadWriteType != types.ReadWriteTypeAll || !aws.ToBool(es.IncludeManagementEvents) ||
			es.DataResources == nil || len(es.DataResources) != 0 || es.ExcludeManagementEventSources == nil || len(es.ExcludeManagementEventSources) != 0 {
			t.Errorf("selector = %+v", es)
		}
	})
	t.Run("management events excluded", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		if _, err := s.AddTrail(acctA, "us-east-1", Trail{Name: "data-only", S3BucketName: "b", EventSelectors: []EventSelector{{IncludeManagementEvents: aws.Bool(false), ReadWriteType: "ReadOnly"}}}); err != nil {
			t.Fatal(err)
		}
		out, err := ctClient(s, acctA, "us-east-1").GetEventSelectors(ctx, &cloudtrail.GetEventSelectorsInput{TrailName: aws.String("data-only")})
		if err != nil || len(out.EventSelectors) != 1 || aws.ToBool(out.EventSelectors[0].IncludeManagementEvents) || out.EventSelectors[0].ReadWriteType != types.ReadWriteTypeReadOnly {
			t.Errorf("out = %+v, %v", out, err)
		}
	})
	t.Run("delegated administrator reads the organization trail's", func(t *testing.T) {
		t.Parallel()
		out, err := sel(acctAdmin, "eu-west-1", w.orgARN)
		if err != nil || len(out.AdvancedEventSelectors) != 1 || aws.ToString(out.TrailARN) != w.orgARN {
			t.Errorf("out = %+v, %v", out, err)
		}
	})
	t.Run("member account may not read the organization trail's", func(t *testing.T) {
		t.Parallel()
		_, err := sel(acctB, "us-east-1", w.orgARN)
		if !isA[*types.CloudTrailARNInvalidException](err) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("unknown trail", func(t *testing.T) {
		t.Parallel()
		_, err := sel(acctA, "us-east-1", "regional")
		if !isA[*types.TrailNotFoundException](err) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestGetTrailStatus(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	ctx := context.Background()
	status := func(acct, region, name string) (*cloudtrail.GetTrailStatusOutput, error) {
		return w.client(acct, region).GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String(name)})
	}
	wantOrgStatus := func(t *testing.T, out *cloudtrail.GetTrailStatusOutput) {
		t.Helper()
		if !aws.ToBool(out.IsLogging) || !aws.ToTime(out.LatestDeliveryTime).Equal(deliveredAt) || !aws.ToTime(out.StartLoggingTime).Equal(startedAt) ||
			out.StopLoggingTime != nil || aws.ToString(out.LatestDeliveryError) != "AccessDenied" ||
			aws.ToString(out.LatestDeliveryAttemptTime) != "2025-04-18T09:00:00Z" || aws.ToString(out.LatestDeliveryAttemptSucceeded) != "2025-04-17T15:05:12Z" ||
			aws.ToString(out.TimeLoggingStarted) != "2024-01-02T03:04:05Z" || aws.ToString(out.TimeLoggingStopped) != "" {
			t.Errorf("status = %+v", out)
		}
	}
	t.Run("in the home region", func(t *testing.T) {
		t.Parallel()
		out, err := status(acctA, "us-east-1", "org-trail")
		if err != nil {
			t.Fatal(err)
		}
		wantOrgStatus(t, out)
	})
	t.Run("of a shadow trail by ARN", func(t *testing.T) {
		t.Parallel()
		out, err := status(acctA, "eu-north-1", w.orgARN)
		if err != nil {
			t.Fatal(err)
		}
		wantOrgStatus(t, out)
	})
	t.Run("from a member account by ARN", func(t *testing.T) {
		t.Parallel()
		out, err := status(acctB, "us-east-1", w.orgARN)
		if err != nil {
			t.Fatal(err)
		}
		wantOrgStatus(t, out)
	})
	t.Run("of a shadow trail by name", func(t *testing.T) {
		t.Parallel()
		_, err := status(acctA, "eu-north-1", "org-trail")
		if !isA[*types.TrailNotFoundException](err) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a trail that never logged", func(t *testing.T) {
		t.Parallel()
		out, err := status(acctA, "us-east-1", "default.trail_1")
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToBool(out.IsLogging) || out.IsLogging == nil || out.LatestDeliveryTime != nil || out.StartLoggingTime != nil ||
			out.LatestDeliveryError != nil || aws.ToString(out.LatestDeliveryAttemptTime) != "" {
			t.Errorf("status = %+v", out)
		}
	})
	t.Run("SetTrailStatus", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		arn, err := s.AddTrail(acctA, "us-east-1", Trail{Name: "trail-1", S3BucketName: "b", Status: TrailStatus{IsLogging: true}})
		if err != nil {
			t.Fatal(err)
		}
		stopped := deliveredAt.Add(time.Hour)
		if err := s.SetTrailStatus(arn, TrailStatus{IsLogging: false, StopLoggingTime: stopped, LatestDeliveryTime: deliveredAt}); err != nil {
			t.Fatal(err)
		}
		out, err := ctClient(s, acctA, "us-east-1").GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("trail-1")})
		if err != nil || aws.ToBool(out.IsLogging) || !aws.ToTime(out.StopLoggingTime).Equal(stopped) || aws.ToString(out.TimeLoggingStopped) != "2025-04-17T16:05:12Z" {
			t.Errorf("status = %+v, %v", out, err)
		}
		if err := s.SetTrailStatus("arn:aws:cloudtrail:us-east-1:111111111111:trail/none", TrailStatus{}); err == nil {
			t.Error("SetTrailStatus of an unknown trail: no error")
		}
	})
}

func TestDescribeTrails(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	cases := []struct {
		name    string
		acct    string
		region  string
		names   []string
		shadows *bool
		want    []string
	}{
		{"home region, shadows by default", acctA, "us-east-1", nil, nil, []string{"org-trail", "default.trail_1"}},
		{"another region: multi-region shadow and own", acctA, "eu-west-1", nil, nil, []string{"org-trail", "regional"}},
		{"another region without shadows", acctA, "eu-west-1", nil, aws.Bool(false), []string{"regional"}},
		{"a region with only a shadow", acctA, "sa-east-1", nil, nil, []string{"org-trail"}},
		{"member account sees the organization trail", acctB, "us-west-2", nil, nil, []string{"org-trail", "member-own"}},
		{"member account without shadows", acctB, "us-west-2", nil, aws.Bool(false), []string{"member-own"}},
		{"outsider sees nothing", acctOutsider, "us-east-1", nil, nil, []string{}},
		{"names of this region only", acctA, "us-east-1", []string{"regional", "org-trail", "nothing"}, nil, []string{"org-trail"}},
		{"ARNs across regions", acctA, "eu-west-1", []string{"arn:aws:cloudtrail:us-east-1:111111111111:trail/org-trail", "regional", "arn:aws:cloudtrail:us-east-1:111111111111:trail/default.trail_1"}, nil, []string{"org-trail", "regional"}},
		{"a shadow ARN without shadows", acctA, "eu-west-1", []string{"arn:aws:cloudtrail:us-east-1:111111111111:trail/org-trail"}, aws.Bool(false), []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := w.client(tc.acct, tc.region).DescribeTrails(context.Background(), &cloudtrail.DescribeTrailsInput{TrailNameList: tc.names, IncludeShadowTrails: tc.shadows})
			if err != nil {
				t.Fatal(err)
			}
			if got := trailNames(out.TrailList); !slices.Equal(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Errorf("trails %q, want %q", got, tc.want)
			}
			if out.TrailList == nil {
				t.Error("trailList absent, want a list")
			}
			for _, tr := range out.TrailList {
				if aws.ToString(tr.Name) == "org-trail" && (aws.ToString(tr.HomeRegion) != "us-east-1" || aws.ToString(tr.TrailARN) != w.orgARN) {
					t.Errorf("org trail = %+v", tr)
				}
			}
		})
	}
	t.Run("invalid name in the list", func(t *testing.T) {
		t.Parallel()
		_, err := w.client(acctA, "us-east-1").DescribeTrails(context.Background(), &cloudtrail.DescribeTrailsInput{TrailNameList: []string{"org-trail", "x"}})
		if !isA[*types.InvalidTrailNameException](err) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestListTrails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	listAll := func(t *testing.T, c *cloudtrail.Client) ([]types.TrailInfo, int) {
		t.Helper()
		var all []types.TrailInfo
		pages := 0
		p := cloudtrail.NewListTrailsPaginator(c, &cloudtrail.ListTrailsInput{})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			all = append(all, out.Trails...)
		}
		return all, pages
	}
	w := newTrailWorld(t)
	cases := []struct {
		name, acct string
		want       []string // ARNs
	}{
		{"every region of the account", acctA, []string{w.regionalARN, w.defaultARN, w.orgARN}},
		{"member: own and organization trails", acctB, []string{w.orgARN, w.memberARN}},
		{"outsider: none", acctOutsider, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, region := range []string{"us-east-1", "ap-southeast-2"} {
				got, pages := listAll(t, w.client(tc.acct, region))
				var arns []string
				for _, ti := range got {
					arns = append(arns, aws.ToString(ti.TrailARN))
					if want := TrailARN(acctOf(ti), aws.ToString(ti.HomeRegion), aws.ToString(ti.Name)); want != aws.ToString(ti.TrailARN) {
						t.Errorf("entry %+v is inconsistent", ti)
					}
				}
				if !slices.Equal(arns, tc.want) || pages != 1 {
					t.Errorf("%s: %d pages, %q; want %q", region, pages, arns, tc.want)
				}
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		regions := []string{"us-east-1", "us-west-2", "eu-west-1", "ap-south-1"}
		for i := range 120 {
			if _, err := s.AddTrail(acctA, regions[i%4], Trail{Name: fmt.Sprintf("trail-%03d", i), S3BucketName: "b"}); err != nil {
				t.Fatal(err)
			}
		}
		got, pages := listAll(t, ctClient(s, acctA, "us-east-1"))
		if len(got) != 120 || pages != 3 {
			t.Errorf("%d trails in %d pages", len(got), pages)
		}
		if !slices.IsSortedFunc(got, func(a, b types.TrailInfo) int {
			return strings.Compare(aws.ToString(a.TrailARN), aws.ToString(b.TrailARN))
		}) {
			t.Error("not in ARN order")
		}
		_, err := ctClient(s, acctA, "us-east-1").ListTrails(ctx, &cloudtrail.ListTrailsInput{NextToken: aws.String("bogus")})
		if code, _ := apiCode(t, err); code != "InvalidNextTokenException" {
			t.Errorf("bad token: %v", err)
		}
	})
}

// acctOf returns the account of a TrailInfo's ARN.
func acctOf(ti types.TrailInfo) string {
	m := trailARNPattern.FindStringSubmatch(aws.ToString(ti.TrailARN))
	if m == nil {
		return ""
	}
	return m[3]
}

// errMessage returns the message of an API error.
func errMessage(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	return ae.ErrorMessage()
}

func TestOrganizationTrailWithoutOrganization(t *testing.T) {
	t.Parallel()
	s := start(t, fast())
	arn, err := s.AddTrail(acctA, "us-east-1", orgTrail())
	if err != nil {
		t.Fatal(err)
	}
	// Without SetOrganization every other account is taken for a member.
	out, err := ctClient(s, acctOutsider, "us-east-1").GetTrail(context.Background(), &cloudtrail.GetTrailInput{Name: aws.String(arn)})
	if err != nil || aws.ToString(out.Trail.TrailARN) != arn {
		t.Errorf("GetTrail from another account: %v", err)
	}
}

func TestAddTrailValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, acct, region string
		trail              Trail
		want               string // in the error
	}{
		{"bad account", "1234", "us-east-1", Trail{Name: "trail-1", S3BucketName: "b"}, "12 digits"},
		{"bad region", acctA, "mars", Trail{Name: "trail-1", S3BucketName: "b"}, "not a region"},
		{"bad name", acctA, "us-east-1", Trail{Name: "t", S3BucketName: "b"}, "too short"},
		{"no bucket", acctA, "us-east-1", Trail{Name: "trail-1"}, "S3BucketName"},
		{"both selector kinds", acctA, "us-east-1", Trail{Name: "trail-1", S3BucketName: "b",
			EventSelectors:         []EventSelector{{}},
			AdvancedEventSelectors: []AdvancedEventSelector{{FieldSelectors: []AdvancedFieldSelector{{Field: "eventCategory", Equals: []string{"Management"}}}}}}, "both"},
		{"bad ReadWriteType", acctA, "us-east-1", Trail{Name: "trail-1", S3BucketName: "b", EventSelectors: []EventSelector{{ReadWriteType: "Sometimes"}}}, "ReadWriteType"},
		{"empty advanced selector", acctA, "us-east-1", Trail{Name: "trail-1", S3BucketName: "b", AdvancedEventSelectors: []AdvancedEventSelector{{Name: "x"}}}, "no field selectors"},
		{"field selector without a condition", acctA, "us-east-1", Trail{Name: "trail-1", S3BucketName: "b",
			AdvancedEventSelectors: []AdvancedEventSelector{{FieldSelectors: []AdvancedFieldSelector{{Field: "readOnly"}}}}}, "no condition"},
		{"duplicate", acctA, "us-east-1", Trail{Name: "taken", S3BucketName: "b"}, "already exists"},
	}
	s := start(t, fast())
	if _, err := s.AddTrail(acctA, "us-east-1", Trail{Name: "taken", S3BucketName: "b"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.AddTrail(tc.acct, tc.region, tc.trail); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// The same name in another region or account is another trail.
	for _, where := range [][2]string{{acctA, "us-west-2"}, {acctB, "us-east-1"}} {
		if _, err := s.AddTrail(where[0], where[1], Trail{Name: "taken", S3BucketName: "b"}); err != nil {
			t.Errorf("%v: %v", where, err)
		}
	}
	// AddTrail copies its input.
	tr := Trail{Name: "copied", S3BucketName: "b", EventSelectors: []EventSelector{{ExcludeManagementEventSources: []string{"kms.amazonaws.com"}}}}
	if _, err := s.AddTrail(acctA, "us-east-1", tr); err != nil {
		t.Fatal(err)
	}
	tr.EventSelectors[0].ExcludeManagementEventSources[0] = "changed"
	out, err := ctClient(s, acctA, "us-east-1").GetEventSelectors(context.Background(), &cloudtrail.GetEventSelectorsInput{TrailName: aws.String("copied")})
	if err != nil || out.EventSelectors[0].ExcludeManagementEventSources[0] != "kms.amazonaws.com" {
		t.Errorf("selectors changed with the caller's slice: %v %v", out, err)
	}
}

func TestTrailAPICallsAndErrors(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	ctx := context.Background()
	c := w.client(acctA, "us-east-1")
	for range 2 {
		if _, err := c.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("org-trail")}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("nothing")})
	if _, err := c.ListTrails(ctx, &cloudtrail.ListTrailsInput{}); err != nil {
		t.Fatal(err)
	}
	if got := [4]int{w.s.CloudTrailCalls("GetTrail"), w.s.CloudTrailCalls("GetTrailStatus"), w.s.CloudTrailCalls("ListTrails"), w.s.CloudTrailCalls("")}; got != [4]int{2, 1, 1, 4} {
		t.Errorf("calls = %v", got)
	}
	t.Run("unimplemented operation", func(t *testing.T) {
		_, err := c.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("new"), S3BucketName: aws.String("b")})
		if code, status := apiCode(t, err); code != "UnknownOperationException" || status != 400 {
			t.Errorf("%s %d", code, status)
		}
	})
	t.Run("unknown credentials", func(t *testing.T) {
		cfg := awsConfig(w.s, acctA, "us-east-1")
		cfg.Credentials = aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: "x"}, nil
		}))
		_, err := cloudtrail.NewFromConfig(cfg).GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String("org-trail")})
		if code, status := apiCode(t, err); code != "UnrecognizedClientException" || status != 403 {
			t.Errorf("%s %d", code, status)
		}
	})
	// LookupEvents still works beside the trail APIs.
	if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{}); err != nil {
		t.Errorf("LookupEvents: %v", err)
	}
}
