package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

// The emulated organization of the trail tests: the management account
// (which owns the trails and is the caller), a member with the read role.
const (
	twMgmt   = "111111111111"
	twMember = "222222222222"
	twOrgID  = "o-a1b2c3d4e5"
	twKey    = "arn:aws:kms:us-east-1:111111111111:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
)

var twRegions = []string{"eu-west-1", "us-east-1"}

// trailWorld is an emulated organization with four trails and real events
// (all read/write kinds and sources mixed, some turned into RDS Data API
// events) in every partition.
type trailWorld struct {
	emu    *emulator.Server
	cfg    aws.Config // the management account's CLI configuration
	events map[string][]testkit.Event
	arns   map[string]string // trail name -> ARN
}

func newTrailWorld(t *testing.T) *trailWorld {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Rate: 1000, Burst: 10})
	w := &trailWorld{emu: emu, events: map[string][]testkit.Event{}, arns: map[string]string{}}
	emu.AddAccount(twMgmt, contract.DefaultRoleName)
	emu.AddAccount(twMember, contract.DefaultRoleName)
	emu.SetOrganization(emulator.Organization{ID: twOrgID, ManagementAccount: twMgmt, Members: []string{twMember}})
	for _, a := range []string{twMgmt, twMember} {
		emu.SetEnabledRegions(a, twRegions...)
		for _, r := range twRegions {
			n := 300
			step := (3*time.Hour - time.Minute) / time.Duration(n)
			evs := testkit.Retimed(t, a, r, testkit.Spaced(tfStart.Add(3*time.Second), step.Truncate(time.Second), n))
			for i := range evs {
				if i%10 == 3 {
					evs[i].Record = withSource(t, evs[i].Record, "rdsdata.amazonaws.com")
				}
			}
			testkit.Load(t, emu, evs)
			w.events[a+"/"+r] = evs
		}
	}
	for _, b := range []string{"org-archive", "regional-logs", "writes-logs", "nokms-logs"} {
		if err := emu.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	add := func(home string, tr emulator.Trail) {
		arn, err := emu.AddTrail(twMgmt, home, tr)
		if err != nil {
			t.Fatal(err)
		}
		w.arns[tr.Name] = arn
	}
	add("us-east-1", emulator.Trail{Name: "org-trail", S3BucketName: "org-archive", S3KeyPrefix: "central",
		IsOrganizationTrail: true, IsMultiRegionTrail: true, IncludeGlobalServiceEvents: true, KmsKeyId: twKey,
		Status: emulator.TrailStatus{IsLogging: true, LatestDeliveryTime: tfStart.Add(-time.Minute), LatestDeliveryError: "AccessDenied", LatestDeliveryAttemptTime: tfEnd}})
	add("eu-west-1", emulator.Trail{Name: "regional", S3BucketName: "regional-logs", Status: emulator.TrailStatus{IsLogging: true}})
	add("us-east-1", emulator.Trail{Name: "writes", S3BucketName: "writes-logs", IsMultiRegionTrail: true, IncludeGlobalServiceEvents: true,
		EventSelectors: []emulator.EventSelector{{ReadWriteType: "WriteOnly"}}, Status: emulator.TrailStatus{IsLogging: true}})
	add("us-east-1", emulator.Trail{Name: "no-kms", S3BucketName: "nokms-logs", S3KeyPrefix: "p/q", IsMultiRegionTrail: true,
		AdvancedEventSelectors: []emulator.AdvancedEventSelector{
			{Name: "Management events without KMS and RDS Data API", FieldSelectors: []emulator.AdvancedFieldSelector{
				{Field: "eventCategory", Equals: []string{"Management"}},
				{Field: "eventSource", NotEquals: []string{"kms.amazonaws.com", "rdsdata.amazonaws.com"}}}},
			{Name: "S3 objects", FieldSelectors: []emulator.AdvancedFieldSelector{
				{Field: "eventCategory", Equals: []string{"Data"}}, {Field: "resources.type", Equals: []string{"AWS::S3::Object"}}}},
		}, Status: emulator.TrailStatus{IsLogging: true}})
	w.cfg = testkit.AWSConfig(t, emu, twMgmt)
	return w
}

func withSource(t *testing.T, rec json.RawMessage, source string) json.RawMessage {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec, &m); err != nil {
		t.Fatal(err)
	}
	m["eventSource"] = source
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// main runs the command line with cfg as the AWS configuration (no process
// environment: the tests run in parallel).
func (w *trailWorld) main(t *testing.T, cfg aws.Config, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdout: &stdout, Stderr: &stderr, Now: func() time.Time { return tfNow }, Clock: local.NewFakeClock(tfNow),
		Getenv: func(string) string { return "" }}
	env.defaults()
	d := &deps{env: env}
	d.useConfig(cfg)
	tr := newTree(env, d)
	if err := tr.root.Parse(args); err != nil {
		return tr.reportParse(err), stdout.String(), stderr.String()
	}
	err := tr.root.Run(context.Background())
	if errors.Is(err, flag.ErrHelp) {
		tr.printHelp()
		return ExitOK, stdout.String(), stderr.String()
	}
	return report(env, err), stdout.String(), stderr.String()
}

func (w *trailWorld) store(bucket, prefix string) archive.Store {
	return &archive.S3Store{Client: awsconf.NewS3(w.cfg), Bucket: bucket, Prefix: prefix}
}

// keep returns the events of the partitions that pred keeps.
func (w *trailWorld) keep(t *testing.T, parts []string, pred func(p string, r map[string]any) bool) []testkit.Event {
	t.Helper()
	var out []testkit.Event
	for _, p := range parts {
		for _, e := range w.events[p] {
			var r map[string]any
			if err := json.Unmarshal(e.Record, &r); err != nil {
				t.Fatal(err)
			}
			if pred(p, r) {
				out = append(out, e)
			}
		}
	}
	return out
}

// isGlobal is the test's statement of a global service event (us-east-1,
// IAM, CloudFront, sign-in, STS not through a regional endpoint).
func isGlobal(r map[string]any) bool {
	src, _ := r["eventSource"].(string)
	if r["awsRegion"] != "us-east-1" {
		return false
	}
	switch src {
	case "iam.amazonaws.com", "signin.amazonaws.com", "cloudfront.amazonaws.com":
		return true
	case "sts.amazonaws.com":
		tls, _ := r["tlsDetails"].(map[string]any)
		h, _ := tls["clientProvidedHostHeader"].(string)
		return h == "" || h == "sts.amazonaws.com"
	}
	return false
}

// TestRunTrailArchivesWhatTheTrailWouldHaveDelivered: for each kind of
// trail, `trailfill run --trail` backfills real events of every kind into the
// trail's bucket and layout, holding exactly the events its selectors log;
// the manifests record the selection, verify --trail calls the archive
// complete, and a re-run reads nothing again.
func TestRunTrailArchivesWhatTheTrailWouldHaveDelivered(t *testing.T) {
	all := func(string, map[string]any) bool { return true }
	cases := []struct {
		name           string
		trail          string // name or "arn:" + name
		bucket, prefix string
		orgID          string
		parts          []string
		keep           func(p string, r map[string]any) bool
		filters        map[string]string // region -> manifest filter
		kms            string
		notes          []string
	}{
		{name: "multi-region organization trail with a prefix", trail: "org-trail", bucket: "org-archive", prefix: "central", orgID: twOrgID,
			parts: []string{twMgmt + "/eu-west-1", twMgmt + "/us-east-1", twMember + "/eu-west-1", twMember + "/us-east-1"},
			keep:  all, kms: twKey, notes: []string{"organization multi-region trail of " + twOrgID, "last delivery error: AccessDenied"}},
		{name: "single-region trail", trail: "arn:regional", bucket: "regional-logs",
			parts: []string{twMgmt + "/eu-west-1"}, keep: all,
			notes: []string{"single-region trail of eu-west-1", "global service events (IAM, STS, CloudFront, sign-in, recorded in us-east-1) are left out"}},
		{name: "write-only trail", trail: "writes", bucket: "writes-logs",
			parts:   []string{twMgmt + "/eu-west-1", twMgmt + "/us-east-1"},
			keep:    func(_ string, r map[string]any) bool { return r["readOnly"] == false },
			filters: map[string]string{"eu-west-1": `readOnly equals ["false"]`, "us-east-1": `readOnly equals ["false"]`},
			notes:   []string{`recovering the management events its selectors log: readOnly equals ["false"]`}},
		{name: "advanced selectors without KMS and RDS Data API, no global service events", trail: "no-kms", bucket: "nokms-logs", prefix: "p/q",
			parts: []string{twMgmt + "/eu-west-1", twMgmt + "/us-east-1"},
			keep: func(_ string, r map[string]any) bool {
				return r["eventSource"] != "kms.amazonaws.com" && r["eventSource"] != "rdsdata.amazonaws.com" && !isGlobal(r)
			},
			filters: map[string]string{
				"eu-west-1": `eventSource notEquals ["kms.amazonaws.com","rdsdata.amazonaws.com"]`,
				"us-east-1": `eventSource notEquals ["kms.amazonaws.com","rdsdata.amazonaws.com"] && globalServiceEvent equals ["false"]`},
			notes: []string{`not recoverable: advanced event selector "S3 objects" (eventCategory Data, resources.type AWS::S3::Object)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newTrailWorld(t)
			ref := c.trail
			if name, ok := strings.CutPrefix(ref, "arn:"); ok {
				ref = w.arns[name]
			}
			args := append([]string{"run", "--trail", ref}, rangeArgs()...)
			code, _, stderr := w.main(t, w.cfg, args...)
			if code != ExitOK {
				t.Fatalf("run --trail: exit %d: %s", code, stderr)
			}
			for _, n := range c.notes {
				if !strings.Contains(stderr, n) {
					t.Errorf("run did not say %q:\n%s", n, stderr)
				}
			}
			want := w.keep(t, c.parts, c.keep)
			total := len(w.keep(t, c.parts, func(string, map[string]any) bool { return true }))
			if len(want) == 0 || (c.filters != nil && len(want) == total) {
				t.Fatalf("the case keeps %d of %d events: it cannot tell a selection from none", len(want), total)
			}
			store := w.store(c.bucket, c.prefix)
			testkit.CheckArchive(t, store, testkit.Expect{OrgID: c.orgID, Events: want, Start: tfStart, End: tfEnd})
			var parts [][2]string
			for _, p := range c.parts {
				a, r, _ := strings.Cut(p, "/")
				parts = append(parts, [2]string{a, r})
				ms, err := archive.PartitionManifests(context.Background(), store, a, r, tfStart, tfEnd)
				if err != nil || len(ms) == 0 {
					t.Fatalf("%s: manifests %v, %v", p, ms, err)
				}
				for _, m := range ms {
					if m.Filter != c.filters[r] || m.OrgID != c.orgID {
						t.Fatalf("%s: manifest %s has filter %q and org %q, want %q and %q", p, m.Key(), m.Filter, m.OrgID, c.filters[r], c.orgID)
					}
				}
			}
			testkit.CheckManifests(t, store, parts, tfStart, tfEnd, engine.DefaultWindow)
			// Nothing outside the trail's partitions, and SSE-KMS with the
			// trail's key when it has one.
			for _, k := range w.emu.S3Keys(c.bucket, "") {
				info, _ := w.emu.S3ObjectInfo(c.bucket, k)
				if c.kms != "" && (info.SSE != "aws:kms" || info.SSEKMSKeyID != c.kms) {
					t.Fatalf("%s: encryption %q %q, want aws:kms with the trail's key", k, info.SSE, info.SSEKMSKeyID)
				}
			}
			code, _, stderr = w.main(t, w.cfg, append([]string{"verify", "--trail", ref}, rangeArgs()...)...)
			if code != ExitOK {
				t.Fatalf("verify --trail: exit %d: %s", code, stderr)
			}
			if c.filters != nil {
				// Without --trail, complete means every management event.
				dest := "s3://" + strings.TrimSuffix(c.bucket+"/"+c.prefix, "/")
				accts := strings.Split(c.parts[0], "/")[0]
				code, _, _ = w.main(t, w.cfg, append([]string{"verify", "--out", dest, "--accounts", accts, "--regions", "eu-west-1,us-east-1"}, rangeArgs()...)...)
				if code != ExitFailed {
					t.Fatalf("verify without --trail of a selection: exit %d, want 1", code)
				}
			}
			before := w.emu.S3Keys(c.bucket, "")
			pages := w.emu.Stats(twMgmt, c.parts[0][len(twMgmt)+1:]).Requests
			code, _, stderr = w.main(t, w.cfg, args...)
			if code != ExitOK || !strings.Contains(stderr, "0 windows done") {
				t.Fatalf("re-run: exit %d: %s", code, stderr)
			}
			if after := w.emu.S3Keys(c.bucket, ""); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatal("the re-run changed the bucket")
			}
			if n := w.emu.Stats(twMgmt, c.parts[0][len(twMgmt)+1:]).Requests; n != pages {
				t.Fatalf("the re-run made %d LookupEvents requests", n-pages)
			}
		})
	}
}

// TestTrailFlagsConflictsAreUsageErrors: explicit flags that contradict the
// trail are one-line usage errors, and nothing is read or written.
func TestTrailFlagsConflictsAreUsageErrors(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	cases := []struct {
		name, want string
		args       []string
	}{
		{"single-region trail, another region", "single-region trail of eu-west-1 and logs nothing in us-east-1", []string{"--trail", "arn:regional", "--regions", "us-east-1"}},
		{"org ID of a trail that is not an organization trail", "is not an organization trail", []string{"--trail", "writes", "--org-id", "o-zzzzzzzzzz"}},
		{"org ID of another organization", "is the organization trail of " + twOrgID, []string{"--trail", "org-trail", "--org-id", "o-zzzzzzzzzz"}},
		{"another account of an account trail", "logs account 111111111111 only", []string{"--trail", "writes", "--accounts", twMember}},
		{"unknown trail name", `no trail "nosuch"`, []string{"--trail", "nosuch"}},
		{"not a trail ARN", "is not a trail ARN", []string{"--trail", "arn:aws:s3:::bucket"}},
		{"bad trail name", "is neither a trail name", []string{"--trail", "a b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := slicesReplace(c.args, w)
			for _, cmd := range []string{"run", "plan", "verify"} {
				code, stdout, stderr := w.main(t, w.cfg, append(append([]string{cmd}, args...), rangeArgs()...)...)
				if code != ExitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) || (cmd != "plan" && stdout != "") {
					t.Errorf("%s %v: exit %d, stderr %q; want exit 2 and one line containing %q", cmd, args, code, stderr, c.want)
				}
			}
		})
	}
	for _, b := range []string{"org-archive", "regional-logs", "writes-logs", "nokms-logs"} {
		if keys := w.emu.S3Keys(b, ""); len(keys) != 0 {
			t.Fatalf("bad input wrote %d objects into %s, the first %s", len(keys), b, keys[0])
		}
	}
}

// slicesReplace turns "arn:<trail>" into the trail's ARN.
func slicesReplace(args []string, w *trailWorld) []string {
	out := append([]string{}, args...)
	for i, a := range out {
		if name, ok := strings.CutPrefix(a, "arn:"); ok && w.arns[name] != "" {
			out[i] = w.arns[name]
		}
	}
	return out
}

// TestOrganizationTrailAccess: a member account reads the organization
// trail's selectors through the management account's read role; without
// organizations:DescribeOrganization the organization ID must be given, and
// without ListAccounts the accounts.
func TestOrganizationTrailAccess(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	member := testkit.AWSConfig(t, w.emu, twMember)
	t.Run("member account through the read role", func(t *testing.T) {
		code, stdout, stderr := w.main(t, member, append([]string{"plan", "--json", "--trail", w.arns["org-trail"]}, rangeArgs()...)...)
		if code != ExitOK {
			t.Fatalf("plan: exit %d: %s", code, stderr)
		}
		var p struct {
			Partitions int `json:"partitions"`
			Accounts   int `json:"accounts"`
			Trail      struct {
				ARN       string `json:"arn"`
				Selection string `json:"selection"`
			} `json:"trail"`
		}
		if err := json.Unmarshal([]byte(stdout), &p); err != nil {
			t.Fatal(err)
		}
		if p.Trail.ARN != w.arns["org-trail"] || p.Accounts != 2 || p.Partitions != 2*17 {
			t.Fatalf("plan %+v", p)
		}
		if w.emu.AssumeRoleCalls(twMgmt) == 0 {
			t.Fatal("the management account's read role was not used")
		}
	})
	t.Run("no Organizations access", func(t *testing.T) {
		w.emu.DenyOrganizations(twMgmt)
		code, _, stderr := w.main(t, w.cfg, append([]string{"plan", "--trail", "org-trail"}, rangeArgs()...)...)
		if code != ExitUsage || !strings.Contains(stderr, "pass --org-id") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		code, _, stderr = w.main(t, w.cfg, append([]string{"plan", "--trail", "org-trail", "--org-id", twOrgID}, rangeArgs()...)...)
		if code != ExitUsage || !strings.Contains(stderr, "pass --accounts") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		code, stdout, stderr := w.main(t, w.cfg, append([]string{"plan", "--trail", "org-trail", "--org-id", twOrgID, "--accounts", twMember, "--regions", "us-east-1"}, rangeArgs()...)...)
		if code != ExitOK || !strings.Contains(stdout, "partitions            1") || !strings.Contains(stdout, "trail                 "+w.arns["org-trail"]) {
			t.Fatalf("exit %d: %s %s", code, stdout, stderr)
		}
	})
}

// TestPlanAndStartWithTrail: plan names the selectors LookupEvents cannot
// serve; start sends the selection and layout in the execution input and
// refuses a stack that writes elsewhere than the trail.
func TestPlanAndStartWithTrail(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	code, stdout, stderr := w.main(t, w.cfg, append([]string{"plan", "--trail", "no-kms"}, rangeArgs()...)...)
	if code != ExitOK || !strings.Contains(stdout, `not recoverable: advanced event selector "S3 objects"`) || !strings.Contains(stdout, "partitions            17 (1 accounts x 17 regions)") {
		t.Fatalf("plan: exit %d:\n%s%s", code, stdout, stderr)
	}
	cfn := emulator.NewCloudFormation(w.emu)
	cfn.AddStack(twMgmt, "us-east-1", "trailfill", map[string]string{
		"StateMachineArn": tfMachine, "ArchiveBucket": "org-archive", "ArchivePrefix": "central",
		"ArchiveDestination": "s3://org-archive/central", "ReadRoleName": contract.DefaultRoleName, contract.OutputStagingBucket: tfStaging,
	})
	code, stdout, stderr = w.main(t, w.cfg, append([]string{"start", "--dry-run", "--trail", "org-trail", "--regions", "us-east-1"}, rangeArgs()...)...)
	if code != ExitOK {
		t.Fatalf("start: exit %d: %s", code, stderr)
	}
	var in contract.ExecutionInput
	if err := json.Unmarshal([]byte(stdout), &in); err != nil {
		t.Fatal(err)
	}
	// The partitions (the management and the member account in us-east-1)
	// go to the staging bucket; the input counts them.
	if in.OrgID != twOrgID || in.Selection != "" || in.Partitions != 2 || !strings.Contains(stderr, "2 partition(s)") {
		t.Fatalf("input %+v; %s", in, stderr)
	}
	code, _, stderr = w.main(t, w.cfg, append([]string{"start", "--dry-run", "--trail", "writes"}, rangeArgs()...)...)
	if code != ExitUsage || !strings.Contains(stderr, "delivers to s3://writes-logs but stack trailfill writes to s3://org-archive/central") {
		t.Fatalf("start of another trail's bucket: exit %d: %s", code, stderr)
	}
}
