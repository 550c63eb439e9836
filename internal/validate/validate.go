// Package validate checks user input shared by every command and the Lambda.
package validate

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Lookback is how far back CloudTrail event history reaches.
const Lookback = 90 * 24 * time.Hour

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	orgRE     = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	roleRE    = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)
)

// Account checks a 12-digit AWS account ID.
func Account(a string) error {
	if !accountRE.MatchString(a) {
		return fmt.Errorf("invalid account ID %q: use the 12-digit account number", a)
	}
	return nil
}

// Regions lists the AWS regions (commercial, GovCloud and China) where CloudTrail
// event history exists. A region launched after this list was written is refused
// until trailfill knows it.
var Regions = []string{
	"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
	"ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1",
	"cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
	"eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
	"me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1",
	"us-gov-west-1", "us-west-1", "us-west-2",
}

var knownRegion = func() map[string]bool {
	m := make(map[string]bool, len(Regions))
	for _, r := range Regions {
		m[r] = true
	}
	return m
}()

// Region checks an AWS region name (e.g. eu-west-1).
func Region(r string) error {
	if !knownRegion[r] {
		return fmt.Errorf("unknown region %q: use region names such as us-east-1, or all", r)
	}
	return nil
}

// OrgID checks an AWS Organizations ID (o-...).
func OrgID(o string) error {
	if !orgRE.MatchString(o) {
		return fmt.Errorf("invalid organization ID %q: use the o-... ID shown by aws organizations describe-organization", o)
	}
	return nil
}

// RoleName checks an IAM role name.
func RoleName(n string) error {
	if !roleRE.MatchString(n) {
		return fmt.Errorf("invalid role name %q: use an IAM role name (letters, digits and +=,.@_-)", n)
	}
	return nil
}

// Time parses an RFC 3339 time for the named flag, in whole seconds (the
// resolution of CloudTrail event times).
func Time(flag, s string) (time.Time, error) {
	t, err := Instant(flag, s)
	if err != nil {
		return t, err
	}
	if t.Nanosecond() != 0 {
		return time.Time{}, fmt.Errorf("invalid --%s %q: CloudTrail event times are whole seconds", flag, s)
	}
	return t, nil
}

// Instant parses an RFC 3339 time for the named flag, fractions of a second
// allowed (GitLab's times have milliseconds), in UTC.
func Instant(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("missing --%s: give an RFC 3339 time such as 2025-04-17T15:00:00Z", flag)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid --%s %q: use RFC 3339, e.g. 2025-04-17T15:00:00Z", flag, s)
	}
	return t.UTC(), nil
}

// Range checks a backfill range [start, end) against now: end after start, end not
// in the future, start within CloudTrail's 90-day lookback unless noLimit.
func Range(start, end, now time.Time, noLimit bool) error {
	if !start.Before(end) {
		return fmt.Errorf("--start %s is not before --end %s: the range is [start, end)", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	if end.After(now) {
		return fmt.Errorf("--end %s is in the future: events after now do not exist yet", end.Format(time.RFC3339))
	}
	if !noLimit && start.Before(now.Add(-Lookback)) {
		return fmt.Errorf("--start %s is more than 90 days ago: CloudTrail keeps 90 days of event history (use --no-lookback-limit for emulators)", start.Format(time.RFC3339))
	}
	return nil
}

// List splits a comma-separated flag value, dropping empty items and duplicates.
func List(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// KMSKeyArn checks a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>),
// as SSE-KMS with a bucket policy that names the key needs it (an alias or a
// bare key ID would not match the policy's condition).
func KMSKeyArn(s string) error {
	a, err := arn.Parse(s)
	if err != nil || a.Service != "kms" || a.Region == "" || Account(a.AccountID) != nil || !strings.HasPrefix(a.Resource, "key/") || len(a.Resource) == len("key/") {
		return fmt.Errorf("%q is not a KMS key ARN: give arn:aws:kms:<region>:<account>:key/<key id>", s)
	}
	return nil
}
