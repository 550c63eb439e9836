package trail

import (
	"strings"
	"testing"

	"github.com/trailfill/trailfill/internal/archive"
)

func sample(mod func(*Trail)) *Trail {
	t := &Trail{ARN: "arn:aws:cloudtrail:us-east-1:111111111111:trail/t1", Name: "t1", HomeRegion: "us-east-1", Account: "111111111111",
		Bucket: "logs", Prefix: "p", KMSKeyID: "arn:aws:kms:us-east-1:111111111111:key/k", MultiRegion: true, GlobalServiceEvents: true,
		Selection: All(), Status: Status{IsLogging: true}}
	if mod != nil {
		mod(t)
	}
	return t
}

func TestApply(t *testing.T) {
	local, err := archive.ParseDestination(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := archive.ParseDestination("s3://other/x")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		trail    *Trail
		flags    Flags
		dest     string
		kms      bool
		accounts []string
		regions  []string
		orgID    string
		sel      string
		err      string
	}{
		{name: "defaults of an account trail", trail: sample(nil), dest: "s3://logs/p", kms: true, accounts: []string{"111111111111"}},
		{name: "--out elsewhere: no KMS key", trail: sample(nil), flags: Flags{Out: &other}, dest: "s3://other/x", accounts: []string{"111111111111"}},
		{name: "--out a local folder", trail: sample(nil), flags: Flags{Out: &local}, dest: local.String(), accounts: []string{"111111111111"}},
		{name: "--regions narrow a multi-region trail", trail: sample(nil), flags: Flags{Regions: []string{"eu-west-1"}}, dest: "s3://logs/p", kms: true, accounts: []string{"111111111111"}, regions: []string{"eu-west-1"}},
		{name: "single-region trail", trail: sample(func(t *Trail) { t.MultiRegion, t.HomeRegion = false, "eu-west-1" }), dest: "s3://logs/p", kms: true, accounts: []string{"111111111111"}, regions: []string{"eu-west-1"}},
		{name: "single-region trail, its region", trail: sample(func(t *Trail) { t.MultiRegion, t.HomeRegion = false, "eu-west-1" }), flags: Flags{Regions: []string{"eu-west-1"}}, dest: "s3://logs/p", kms: true, accounts: []string{"111111111111"}, regions: []string{"eu-west-1"}},
		{name: "single-region trail, another region", trail: sample(func(t *Trail) { t.MultiRegion, t.HomeRegion = false, "eu-west-1" }), flags: Flags{Regions: []string{"eu-west-1", "us-east-1"}}, err: "logs nothing in us-east-1"},
		{name: "organization trail: accounts to list", trail: sample(func(t *Trail) { t.Organization, t.OrgID = true, "o-abcdefghij" }), dest: "s3://logs/p", kms: true, orgID: "o-abcdefghij"},
		{name: "organization trail, --accounts", trail: sample(func(t *Trail) { t.Organization, t.OrgID = true, "o-abcdefghij" }), flags: Flags{Accounts: []string{"222222222222"}}, dest: "s3://logs/p", kms: true, accounts: []string{"222222222222"}, orgID: "o-abcdefghij"},
		{name: "account trail, another account", trail: sample(nil), flags: Flags{Accounts: []string{"222222222222"}}, err: "logs account 111111111111 only"},
		{name: "account trail, --org-id", trail: sample(nil), flags: Flags{OrgID: "o-abcdefghij"}, err: "not an organization trail"},
		{name: "no global service events", trail: sample(func(t *Trail) { t.GlobalServiceEvents = false }), dest: "s3://logs/p", kms: true, accounts: []string{"111111111111"}, sel: `globalServiceEvent equals ["false"]`},
		{name: "no management events", trail: sample(func(t *Trail) { t.Selection = None(); t.Unrecoverable = []string{"data events"} }), err: "logs no management events (data events)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg, err := Apply(c.trail, c.flags)
			if c.err != "" {
				if _, ok := err.(*InputError); !ok || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want an InputError containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tg.Dest.String() != c.dest || (tg.KMSKeyID != "") != c.kms || strings.Join(tg.Accounts, ",") != strings.Join(c.accounts, ",") ||
				strings.Join(tg.Regions, ",") != strings.Join(c.regions, ",") || tg.OrgID != c.orgID || tg.Selection.Name() != c.sel {
				t.Fatalf("target %+v (selection %q)", tg, tg.Selection.Name())
			}
			if n := tg.Notes(); len(n) < 2 || !strings.HasPrefix(n[0], "trail "+c.trail.ARN) {
				t.Fatalf("notes %q", n)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	for _, c := range []struct{ in, name, account, region, err string }{
		{in: "org-trail", name: "org-trail", region: "eu-west-1"},
		{in: "arn:aws:cloudtrail:us-east-2:123456789012:trail/My.Trail_1", name: "My.Trail_1", account: "123456789012", region: "us-east-2"},
		{in: "arn:aws-cn:cloudtrail:cn-north-1:123456789012:trail/t-1", name: "t-1", account: "123456789012", region: "cn-north-1"},
		{in: "arn:aws:s3:::bucket", err: "not a trail ARN"},
		{in: "arn:aws:cloudtrail:us-east-2:1234:trail/x1x", err: "not a trail ARN"},
		{in: "ab", err: "neither a trail name"},
		{in: "-bad", err: "neither a trail name"},
	} {
		t.Run(c.in, func(t *testing.T) {
			r, err := ParseRef(c.in, "eu-west-1")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || r.Name != c.name || r.Account != c.account || r.Region != c.region {
				t.Fatalf("%+v %v", r, err)
			}
		})
	}
}
