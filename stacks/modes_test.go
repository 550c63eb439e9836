package stacks

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

const (
	sampleKeyArn      = "arn:aws:kms:eu-west-1:999988887777:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	sampleLocalKeyArn = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)

// synthMode is one deployment shape of the app.
type synthMode struct {
	name string
	kv   map[string]any
}

// synthModes are the shapes every template-wide check runs over: a new
// bucket, an existing bucket, a KMS key (new and existing bucket), the
// organization and self-managed StackSets, the plain read-role stack, and the
// GitLab stack in both layouts.
var synthModes = []synthMode{
	{"new bucket", map[string]any{KeyObjectLock: "true", KeyObjectLockDays: "30", KeyAlarmEmail: "sec@example.com"}},
	{"existing bucket", map[string]any{KeyBucketName: "acme-trail-logs", KeyPrefix: "org", KeyAlarmTopicArn: "arn:aws:sns:us-east-1:111122223333:alerts"}},
	{"KMS key, new bucket", map[string]any{KeyKMSKeyArn: sampleLocalKeyArn, KeyPrefix: "cloudtrail"}},
	{"KMS key, existing bucket", map[string]any{KeyBucketName: "acme-trail-logs", KeyKMSKeyArn: sampleKeyArn}},
	{"org StackSet", map[string]any{
		KeyBucketName: "org-trail-logs", KeyPrefix: "org", KeyKMSKeyArn: sampleKeyArn, KeyOrgID: "o-abcdefghij",
		KeyReadRoles: "stackset-org", KeyTargetOUIDs: "r-ab12", KeyStackSetCallAs: "DELEGATED_ADMIN",
		KeyReadRoleStack: true, KeyBackfillRoleArn: sampleRoleArn, KeyAlarmEmail: "sec@example.com",
		KeyLocalPrincipalArn: "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*",
	}},
	{"self-managed StackSet", map[string]any{
		KeyReadRoles: "stackset-accounts", KeyTargetAccounts: "222233334444,555566667777", KeyReadAccounts: "222233334444,555566667777",
		KeyStackSetExecRole: "OrgStackSetExecution",
	}},
	{"read-role stack", map[string]any{KeyReadRoles: "stack", KeyBackfillRoleArn: "arn:aws:iam::999988887777:role/trailfill-backfill-eu-central-1", KeyOrgID: "o-abcdefghij"}},
	{"GitLab stack, new bucket", map[string]any{KeyGitLab: "true", KeyPrefix: "audit", KeyKMSKeyArn: sampleLocalKeyArn}},
	{"GitLab stack, existing bucket, gitlab-s3 layout at the root", map[string]any{
		KeyGitLab: "true", KeyBucketName: "org-trail-logs", KeyKMSKeyArn: sampleKeyArn,
		KeyGitLabLayout: "gitlab-s3", KeyGitLabPrefix: "/", KeyGitLabReservedConcurrency: "5",
	}},
}

// synthesized is what one mode made.
type synthesized struct {
	app       awscdk.App
	built     *App
	templates map[string]tmpl // by stack name
	stacks    []awscdk.Stack
}

// synthApp builds the app for kv; with nag, the AwsSolutions checks run on
// every stack during synthesis.
func synthApp(t *testing.T, kv map[string]any, withNag bool) synthesized {
	t.Helper()
	t.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	cfg, err := ConfigFromContext(ctx(kv))
	if err != nil {
		t.Fatal(err)
	}
	dir, glDir := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, glDir} {
		if err := os.WriteFile(filepath.Join(d, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	app := awscdk.NewApp(nil)
	a, err := Build(app, cfg, Options{AssetDir: dir, GitLabAssetDir: glDir})
	if err != nil {
		t.Fatal(err)
	}
	if withNag {
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	}
	out := synthesized{app: app, built: a, templates: map[string]tmpl{}}
	out.stacks = append(out.stacks, a.Backfill.Stack)
	if a.ReadRole != nil {
		out.stacks = append(out.stacks, a.ReadRole)
	}
	if a.GitLab != nil {
		out.stacks = append(out.stacks, a.GitLab.Stack)
	}
	for _, st := range out.stacks {
		out.templates[*st.StackName()] = *assertions.Template_FromStack(st, nil).ToJSON()
	}
	return out
}

var (
	synthCacheMu sync.Mutex
	synthCache   = map[string]synthesized{}
)

// synth is synthApp(m.kv, false), once per mode for the whole test run:
// the template-wide checks read the same templates.
func (m synthMode) synth(t *testing.T) synthesized {
	t.Helper()
	synthCacheMu.Lock()
	defer synthCacheMu.Unlock()
	if s, ok := synthCache[m.name]; ok {
		return s
	}
	s := synthApp(t, m.kv, false)
	synthCache[m.name] = s
	return s
}
