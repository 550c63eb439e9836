package stacks

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/gitlab"
)

const sampleGitLabRoleArn = "arn:aws:iam::111122223333:role/trailfill-gitlab-us-east-1"

func TestGitLabConfig(t *testing.T) {
	c, err := ConfigFromContext(ctx(map[string]any{KeyGitLab: "true"}))
	if err != nil {
		t.Fatal(err)
	}
	want := GitLabConfig{Enabled: true, Source: "gitlab", TokensParam: "/trailfill/gitlab/tokens", MaxBody: gitlab.DefaultMaxBody, Layout: GitLabLayoutDefault}
	if c.GitLab != want {
		t.Fatalf("defaults: got %+v, want %+v", c.GitLab, want)
	}
	if c.GitLabStackName() != "trailfill-gitlab" {
		t.Fatalf("stack name %q", c.GitLabStackName())
	}

	// cdk.json gives JSON types; -c gives strings.
	c, err = ConfigFromContext(ctx(map[string]any{
		KeyStackName:                 "audit",
		KeyGitLab:                    true,
		KeyGitLabSource:              "gitlab-com",
		KeyGitLabTokensParam:         "gitlab-tokens",
		KeyGitLabTokensKMSKeyArn:     "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		KeyGitLabMaxBody:             float64(262144),
		KeyGitLabReservedConcurrency: "5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want = GitLabConfig{
		Enabled: true, Source: "gitlab-com", TokensParam: "gitlab-tokens",
		TokensKMSKeyArn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		MaxBody:         262144, ReservedConcurrency: 5, Layout: GitLabLayoutDefault,
	}
	if c.GitLab != want {
		t.Fatalf("parsed: got %+v, want %+v", c.GitLab, want)
	}

	// The receiver's prefix is the archive's unless gitlabPrefix says
	// otherwise; "/" is the bucket root.
	for _, tc := range []struct {
		name         string
		kv           map[string]any
		layout, pref string
	}{
		{"archive prefix", map[string]any{KeyGitLab: "true", KeyPrefix: "org"}, GitLabLayoutDefault, "org"},
		{"own prefix", map[string]any{KeyGitLab: "true", KeyPrefix: "org", KeyGitLabPrefix: "/gitlab-audit/"}, GitLabLayoutDefault, "gitlab-audit"},
		{"root", map[string]any{KeyGitLab: "true", KeyPrefix: "org", KeyGitLabPrefix: "/", KeyGitLabLayout: "gitlab-s3"}, GitLabLayoutS3, ""},
		{"next to the trail folders", map[string]any{KeyGitLab: "true", KeyPrefix: "org", KeyGitLabLayout: "gitlab-s3"}, GitLabLayoutS3, "org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromContext(ctx(tc.kv))
			if err != nil {
				t.Fatal(err)
			}
			if c.GitLab.Layout != tc.layout || c.GitLab.Prefix != tc.pref {
				t.Fatalf("layout %q prefix %q, want %q %q", c.GitLab.Layout, c.GitLab.Prefix, tc.layout, tc.pref)
			}
		})
	}

	// The default parameter follows the stack name.
	c, err = ConfigFromContext(ctx(map[string]any{KeyStackName: "audit", KeyGitLab: "true"}))
	if err != nil || c.GitLab.TokensParam != "/audit/gitlab/tokens" {
		t.Fatalf("tokens parameter %q, %v", c.GitLab.TokensParam, err)
	}

	// Off (absent or false): the zero configuration, whatever else is set.
	for _, kv := range []map[string]any{nil, {KeyGitLab: "false", KeyGitLabSource: "gitlab-com"}} {
		c, err := ConfigFromContext(ctx(kv))
		if err != nil {
			t.Fatal(err)
		}
		if c.GitLab != (GitLabConfig{}) {
			t.Fatalf("%v: got %+v, want the zero GitLabConfig", kv, c.GitLab)
		}
	}
}

func TestGitLabConfigErrors(t *testing.T) {
	const body = `: give the request body limit in bytes, a whole number from 1024 to 4700000 (the Function URL payload limit)`
	cases := []struct {
		name string
		kv   map[string]any
		want string // the whole message
	}{
		{"not a bool", map[string]any{KeyGitLab: "yes"}, `context gitlab="yes": use true or false`},
		{"source", map[string]any{KeyGitLab: "true", KeyGitLabSource: "git lab"}, `context gitlabSource: invalid source "git lab": use only A-Z a-z 0-9 . _ -`},
		{"hidden source", map[string]any{KeyGitLab: "true", KeyGitLabSource: ".gitlab"}, `context gitlabSource: invalid source ".gitlab": it must not start with '.' or '_' (query engines skip such folders)`},
		{"param arn", map[string]any{KeyGitLab: "true", KeyGitLabTokensParam: "arn:aws:ssm:eu-west-1:111122223333:parameter/t"},
			`context gitlabTokensParam: "arn:aws:ssm:eu-west-1:111122223333:parameter/t" is an ARN: give the parameter's name, e.g. /trailfill/gitlab/tokens`},
		{"param slash inside", map[string]any{KeyGitLab: "true", KeyGitLabTokensParam: "trailfill/tokens"},
			`context gitlabTokensParam: invalid SSM parameter name "trailfill/tokens": use letters, digits, . - _ and a leading / for a hierarchy (e.g. /trailfill/gitlab/tokens)`},
		{"param trailing slash", map[string]any{KeyGitLab: "true", KeyGitLabTokensParam: "/trailfill/"},
			`context gitlabTokensParam: invalid SSM parameter name "/trailfill/": use letters, digits, . - _ and a leading / for a hierarchy (e.g. /trailfill/gitlab/tokens)`},
		{"param reserved", map[string]any{KeyGitLab: "true", KeyGitLabTokensParam: "/aws/tokens"},
			`context gitlabTokensParam: invalid SSM parameter name "/aws/tokens": names starting with aws or ssm are reserved`},
		{"param reserved plain", map[string]any{KeyGitLab: "true", KeyGitLabTokensParam: "SSMTokens"},
			`context gitlabTokensParam: invalid SSM parameter name "SSMTokens": names starting with aws or ssm are reserved`},
		{"key alias", map[string]any{KeyGitLab: "true", KeyGitLabTokensKMSKeyArn: "alias/aws/ssm"},
			`context gitlabTokensKmsKeyArn="alias/aws/ssm": give the ARN of the KMS key encrypting the tokens parameter (arn:aws:kms:<region>:<account>:key/<id>), or omit it for the AWS managed key aws/ssm`},
		{"body too small", map[string]any{KeyGitLab: "true", KeyGitLabMaxBody: "1023"}, `context gitlabMaxBody="1023"` + body},
		{"body too large", map[string]any{KeyGitLab: "true", KeyGitLabMaxBody: float64(4_700_001)}, `context gitlabMaxBody="4700001"` + body},
		{"body unit", map[string]any{KeyGitLab: "true", KeyGitLabMaxBody: "1MiB"}, `context gitlabMaxBody="1MiB"` + body},
		{"concurrency", map[string]any{KeyGitLab: "true", KeyGitLabReservedConcurrency: "0"},
			`context gitlabReservedConcurrency="0": give the receiver's reserved concurrency, a whole number from 1 to 1000`},
		{"not a string", map[string]any{KeyGitLab: "true", KeyGitLabSource: map[string]any{"a": 1}},
			`context gitlabSource: unsupported value map[a:1] (map[string]interface {}): give a string`},
		{"layout", map[string]any{KeyGitLab: "true", KeyGitLabLayout: "s3"},
			`context gitlabLayout="s3": use default (GitLab/<source>/YYYY/MM/DD/<id>.json) or gitlab-s3 (GitLab's own S3 streaming layout)`},
		{"prefix", map[string]any{KeyGitLab: "true", KeyGitLabPrefix: "a b"},
			`context gitlabPrefix="a b": give the receiver's S3 key prefix (e.g. gitlab-audit), or / for the bucket root`},
		{"prefix in the trail folder", map[string]any{KeyGitLab: "true", KeyPrefix: "org", KeyGitLabPrefix: "org/AWSLogs/gitlab"},
			`context gitlabPrefix="org/AWSLogs/gitlab" is inside org/AWSLogs/: give a prefix outside the archive's trail files and trailfill's state`},
		{"prefix in the state folder", map[string]any{KeyGitLab: "true", KeyGitLabPrefix: "trailfill"},
			`context gitlabPrefix="trailfill" is inside trailfill/: give a prefix outside the archive's trail files and trailfill's state`},
		// Checked even while the stack is off.
		{"off but invalid", map[string]any{KeyGitLabSource: "a/b"}, `context gitlabSource: invalid source "a/b": use only A-Z a-z 0-9 . _ -`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConfigFromContext(ctx(tc.kv))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n got %v\nwant %s", err, tc.want)
			}
			var ce configErrors
			if !errors.As(err, &ce) || len(ce) != 1 {
				t.Fatalf("want exactly one error, got %v", err)
			}
		})
	}

	// The limits themselves are accepted.
	for _, n := range []string{"1024", "4700000"} {
		c, err := ConfigFromContext(ctx(map[string]any{KeyGitLab: "true", KeyGitLabMaxBody: n}))
		if err != nil || strconv.FormatInt(c.GitLab.MaxBody, 10) != n {
			t.Fatalf("gitlabMaxBody=%s: %d, %v", n, c.GitLab.MaxBody, err)
		}
	}
}

func TestGitLabContextKeysListed(t *testing.T) {
	for _, k := range []string{KeyGitLab, KeyGitLabSource, KeyGitLabTokensParam, KeyGitLabTokensKMSKeyArn, KeyGitLabMaxBody, KeyGitLabReservedConcurrency, KeyGitLabLayout, KeyGitLabPrefix} {
		if !slices.Contains(ContextKeys, k) {
			t.Errorf("ContextKeys lacks %s", k)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ContextKeys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/deploy.md has no row for context key %s", k)
		}
	}
}

func TestCheckGitLabAsset(t *testing.T) {
	dir := t.TempDir()
	err := checkGitLabAsset(dir)
	if err == nil || !strings.Contains(err.Error(), "the GitLab receiver function is not built") || !strings.Contains(err.Error(), "./functions/gitlab-receiver") {
		t.Fatalf("missing bootstrap: %v", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error does not wrap the stat error: %v", err)
	}
	p := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkGitLabAsset(dir); err == nil || !strings.Contains(err.Error(), "is not an executable file") {
		t.Fatalf("non-executable bootstrap: %v", err)
	}
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkGitLabAsset(dir); err != nil {
		t.Fatal(err)
	}
	if err := checkGitLabAsset(""); err == nil {
		t.Fatal("empty folder accepted")
	}
}

// buildGitLab synthesizes the app for the context kv and returns what Build
// made with the GitLab stack's template (nil when there is none) and the
// backfill stack's.
func buildGitLab(t *testing.T, kv map[string]any) (app awscdk.App, a *App, gitlabTmpl, backfillTmpl tmpl) {
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
	app = awscdk.NewApp(nil)
	a, err = Build(app, cfg, Options{AssetDir: dir, GitLabAssetDir: glDir})
	if err != nil {
		t.Fatal(err)
	}
	if a.GitLab != nil {
		gitlabTmpl = *assertions.Template_FromStack(a.GitLab.Stack, nil).ToJSON()
	}
	backfillTmpl = *assertions.Template_FromStack(a.Backfill.Stack, nil).ToJSON()
	return app, a, gitlabTmpl, backfillTmpl
}

// exportOf returns the name of the backfill stack's export whose value is v.
func exportOf(t *testing.T, backfillTmpl tmpl, v string) string {
	t.Helper()
	outs, _ := backfillTmpl["Outputs"].(map[string]any)
	for _, o := range outs {
		om := o.(map[string]any)
		if exp, ok := om["Export"].(map[string]any); ok && asJSON(om["Value"]) == v {
			return exp["Name"].(string)
		}
	}
	t.Fatalf("the backfill stack exports no %s", v)
	return ""
}

// receiverPolicy returns the statements of the receiver role's only policy and
// checks that the role has no other permissions.
func receiverPolicy(t *testing.T, tp tmpl) []map[string]any {
	t.Helper()
	roleID, role := only(t, tp, "AWS::IAM::Role")
	if asJSON(role["AssumeRolePolicyDocument"]) != `{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"}}],"Version":"2012-10-17"}` {
		t.Errorf("trust: %s", asJSON(role["AssumeRolePolicyDocument"]))
	}
	if role["ManagedPolicyArns"] != nil || role["Policies"] != nil {
		t.Errorf("role has further policies: %s", asJSON(role))
	}
	if n := len(resources(tp, "AWS::IAM::ManagedPolicy")); n != 0 {
		t.Errorf("%d managed policies", n)
	}
	_, pol := only(t, tp, "AWS::IAM::Policy")
	if asJSON(pol["Roles"]) != asJSON([]any{map[string]any{"Ref": roleID}}) {
		t.Errorf("policy attached to %s", asJSON(pol["Roles"]))
	}
	return statements(pol["PolicyDocument"].(map[string]any))
}

func paramArnJSON(name string) string {
	return `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ssm:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":parameter` + name + `"]]}`
}

const viaSSMJSON = `{"Fn::Join":["",["ssm.",{"Ref":"AWS::Region"},".",{"Ref":"AWS::URLSuffix"}]]}`

const viaS3JSON = `{"Fn::Join":["",["s3.",{"Ref":"AWS::Region"},".",{"Ref":"AWS::URLSuffix"}]]}`

const createOnlyJSON = `{"StringEquals":{"s3:if-none-match":"*","s3:x-amz-acl":"bucket-owner-full-control"}}`

func TestGitLabStackNewBucket(t *testing.T) {
	skipShort(t)
	const archiveKey = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	_, a, tp, bf := buildGitLab(t, map[string]any{KeyGitLab: "true", KeyPrefix: "audit", KeyKMSKeyArn: archiveKey})
	if tp == nil {
		t.Fatal("gitlab=true made no GitLab stack")
	}
	if got := *a.GitLab.StackName(); got != "trailfill-gitlab" {
		t.Errorf("stack name %q", got)
	}
	deps := a.GitLab.Dependencies()
	if deps == nil || len(*deps) != 1 || *(*deps)[0].StackName() != "trailfill" {
		t.Errorf("the GitLab stack should depend on the backfill stack (its bucket) only")
	}

	// The archive is the backfill stack's new bucket, imported.
	bucketID := logicalID(t, bf, "AWS::S3::Bucket", "Archive")
	bucketRef := `{"Fn::ImportValue":"` + exportOf(t, bf, `{"Ref":"`+bucketID+`"}`) + `"}`
	bucketArn := `{"Fn::ImportValue":"` + exportOf(t, bf, `{"Fn::GetAtt":["`+bucketID+`","Arn"]}`) + `"}`

	// The function.
	fnID, fn := only(t, tp, "AWS::Lambda::Function")
	logID, logGroup := only(t, tp, "AWS::Logs::LogGroup")
	roleID, role := only(t, tp, "AWS::IAM::Role")
	if asJSON(role["RoleName"]) != `{"Fn::Join":["",["trailfill-gitlab-",{"Ref":"AWS::Region"}]]}` {
		t.Errorf("role name %s", asJSON(role["RoleName"]))
	}
	if fn["Runtime"] != "provided.al2023" || asJSON(fn["Architectures"]) != `["arm64"]` || fn["Timeout"] != float64(30) ||
		fn["MemorySize"] != float64(256) || fn["Handler"] != "bootstrap" || fn["ReservedConcurrentExecutions"] != nil ||
		asJSON(fn["Role"]) != `{"Fn::GetAtt":["`+roleID+`","Arn"]}` ||
		asJSON(fn["LoggingConfig"]) != `{"LogFormat":"JSON","LogGroup":{"Ref":"`+logID+`"}}` {
		t.Errorf("function: %s", asJSON(fn))
	}
	wantEnv := `{"` + contract.EnvGitLabBucket + `":` + bucketRef + `,"` + contract.EnvGitLabMaxBody + `":"4700000","` + contract.EnvGitLabPrefix + `":"audit","` +
		contract.EnvGitLabSource + `":"gitlab","` + contract.EnvGitLabTokensParam + `":"/trailfill/gitlab/tokens","` + contract.EnvKMSKeyArn + `":"` + archiveKey + `"}`
	if got := asJSON(fn["Environment"].(map[string]any)["Variables"]); got != wantEnv {
		t.Errorf("environment\n got %s\nwant %s", got, wantEnv)
	}
	if logGroup["RetentionInDays"] != float64(365) {
		t.Errorf("log retention %v", logGroup["RetentionInDays"])
	}
	if r := resources(tp, "AWS::Logs::LogGroup")[logID]; r["DeletionPolicy"] != "Retain" {
		t.Errorf("log group deletion policy %v", r["DeletionPolicy"])
	}

	// The public Function URL: auth type NONE, and the two permissions Lambda
	// requires for it (InvokeFunctionUrl, and InvokeFunction only through the URL).
	urlID, url := only(t, tp, "AWS::Lambda::Url")
	if asJSON(url) != `{"AuthType":"NONE","InvokeMode":"BUFFERED","TargetFunctionArn":{"Fn::GetAtt":["`+fnID+`","Arn"]}}` {
		t.Errorf("function URL: %s", asJSON(url))
	}
	var perms []string
	for _, p := range resources(tp, "AWS::Lambda::Permission") {
		perms = append(perms, asJSON(p["Properties"]))
	}
	slices.Sort(perms)
	fnArn := `{"Fn::GetAtt":["` + fnID + `","Arn"]}`
	wantPerms := []string{
		`{"Action":"lambda:InvokeFunction","FunctionName":` + fnArn + `,"InvokedViaFunctionUrl":true,"Principal":"*"}`,
		`{"Action":"lambda:InvokeFunctionUrl","FunctionName":` + fnArn + `,"FunctionUrlAuthType":"NONE","Principal":"*"}`,
	}
	if !reflect.DeepEqual(perms, wantPerms) {
		t.Errorf("permissions\n got %v\nwant %v", perms, wantPerms)
	}

	// The role may create objects under audit/GitLab/gitlab/ and nothing else in
	// S3, read its parameter, decrypt it only through SSM, use the archive key
	// to encrypt, and write its logs.
	got := receiverPolicy(t, tp)
	want := []string{
		`{"Action":"s3:PutObject","Condition":` + createOnlyJSON + `,"Effect":"Allow","Resource":{"Fn::Join":["",[` + bucketArn + `,"/audit/GitLab/gitlab/*"]]},"Sid":"WriteGitLabEvents"}`,
		`{"Action":"ssm:GetParameter","Effect":"Allow","Resource":` + paramArnJSON("/trailfill/gitlab/tokens") + `,"Sid":"ReadTokensParameter"}`,
		`{"Action":"kms:Decrypt","Condition":{"StringEquals":{"kms:EncryptionContext:PARAMETER_ARN":` + paramArnJSON("/trailfill/gitlab/tokens") +
			`,"kms:ViaService":` + viaSSMJSON + `}},"Effect":"Allow","Resource":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":kms:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":key/*"]]},"Sid":"DecryptTokensParameter"}`,
		`{"Action":"kms:GenerateDataKey","Condition":{"StringEquals":{"kms:ViaService":` + viaS3JSON + `}},"Effect":"Allow","Resource":"` + archiveKey + `","Sid":"ArchiveKey"}`,
		`{"Action":["logs:CreateLogStream","logs:PutLogEvents"],"Effect":"Allow","Resource":{"Fn::GetAtt":["` + logID + `","Arn"]}}`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d statements, want %d: %s", len(got), len(want), asJSON(got))
	}
	for i := range want {
		if asJSON(got[i]) != want[i] {
			t.Errorf("statement %d\n got %s\nwant %s", i, asJSON(got[i]), want[i])
		}
	}
	checkLeastPrivilege(t, tp)

	// Outputs.
	outs := tp["Outputs"].(map[string]any)
	wantOuts := map[string]string{
		contract.OutputGitLabReceiverURL:          `{"Fn::GetAtt":["` + urlID + `","FunctionUrl"]}`,
		contract.OutputGitLabReceiverRoleArn:      `{"Fn::GetAtt":["` + roleID + `","Arn"]}`,
		contract.OutputGitLabReceiverFunctionName: `{"Ref":"` + fnID + `"}`,
		contract.OutputGitLabTokensParameter:      `"/trailfill/gitlab/tokens"`,
		contract.OutputGitLabArchiveLocation:      `{"Fn::Join":["",["s3://",` + bucketRef + `,"/audit/GitLab/gitlab/"]]}`,
	}
	// With kmsKeyArn the key-policy statement is printed even for the stack's
	// own bucket: the stack imports the key, its policy is the key owner's.
	if o, ok := outs[contract.OutputGitLabKMSKeyPolicyStatement].(map[string]any); !ok || o["Value"] == nil {
		t.Errorf("no %s", contract.OutputGitLabKMSKeyPolicyStatement)
	}
	delete(outs, contract.OutputGitLabKMSKeyPolicyStatement)
	if len(outs) != len(wantOuts) {
		t.Errorf("outputs: %s", asJSON(outs))
	}
	for k, v := range wantOuts {
		o, _ := outs[k].(map[string]any)
		if asJSON(o["Value"]) != v {
			t.Errorf("output %s = %s, want %s", k, asJSON(o["Value"]), v)
		}
	}
}

func TestGitLabStackExistingBucket(t *testing.T) {
	skipShort(t)
	const (
		archiveKey = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		tokensKey  = "arn:aws:kms:eu-west-1:111122223333:key/99999999-12ab-34cd-56ef-1234567890ab"
	)
	_, a, tp, bf := buildGitLab(t, map[string]any{
		KeyGitLab: "true", KeyBucketName: "org-trail-logs", KeyKMSKeyArn: archiveKey,
		KeyGitLabSource: "gitlab-com", KeyGitLabTokensParam: "gitlab-tokens", KeyGitLabTokensKMSKeyArn: tokensKey,
		KeyGitLabMaxBody: "262144", KeyGitLabReservedConcurrency: "5",
	})
	if deps := a.GitLab.Dependencies(); deps != nil && len(*deps) != 0 {
		t.Errorf("an existing bucket needs no dependency on the backfill stack: %d", len(*deps))
	}
	outs, _ := bf["Outputs"].(map[string]any)
	for k, o := range outs {
		if _, ok := o.(map[string]any)["Export"]; ok {
			t.Errorf("the backfill stack exports %s for an existing bucket", k)
		}
	}

	_, fn := only(t, tp, "AWS::Lambda::Function")
	wantEnv := `{"` + contract.EnvGitLabBucket + `":"org-trail-logs","` + contract.EnvGitLabMaxBody + `":"262144","` +
		contract.EnvGitLabSource + `":"gitlab-com","` + contract.EnvGitLabTokensParam + `":"gitlab-tokens","` + contract.EnvKMSKeyArn + `":"` + archiveKey + `"}`
	if got := asJSON(fn["Environment"].(map[string]any)["Variables"]); got != wantEnv {
		t.Errorf("environment\n got %s\nwant %s", got, wantEnv)
	}
	if fn["ReservedConcurrentExecutions"] != float64(5) {
		t.Errorf("reserved concurrency %v", fn["ReservedConcurrentExecutions"])
	}

	objects := `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":s3:::org-trail-logs/GitLab/gitlab-com/*"]]}`
	got := receiverPolicy(t, tp)
	want := []string{
		`{"Action":"s3:PutObject","Condition":` + createOnlyJSON + `,"Effect":"Allow","Resource":` + objects + `,"Sid":"WriteGitLabEvents"}`,
		`{"Action":"ssm:GetParameter","Effect":"Allow","Resource":` + paramArnJSON("/gitlab-tokens") + `,"Sid":"ReadTokensParameter"}`,
		`{"Action":"kms:Decrypt","Condition":{"StringEquals":{"kms:EncryptionContext:PARAMETER_ARN":` + paramArnJSON("/gitlab-tokens") +
			`,"kms:ViaService":` + viaSSMJSON + `}},"Effect":"Allow","Resource":"` + tokensKey + `","Sid":"DecryptTokensParameter"}`,
		`{"Action":"kms:GenerateDataKey","Condition":{"StringEquals":{"kms:ViaService":` + viaS3JSON + `}},"Effect":"Allow","Resource":"` + archiveKey + `","Sid":"ArchiveKey"}`,
	}
	if len(got) != len(want)+1 { // + the log group statement
		t.Fatalf("%d statements, want %d: %s", len(got), len(want)+1, asJSON(got))
	}
	for i := range want {
		if asJSON(got[i]) != want[i] {
			t.Errorf("statement %d\n got %s\nwant %s", i, asJSON(got[i]), want[i])
		}
	}
	checkLeastPrivilege(t, tp)

	// What the bucket and key owners paste, with the receiver's role.
	outs = tp["Outputs"].(map[string]any)
	value := func(k string) string {
		o, ok := outs[k].(map[string]any)
		if !ok {
			t.Fatalf("no output %s", k)
		}
		return render(t, o["Value"], sampleGitLabRoleArn)
	}
	if got := value(contract.OutputGitLabArchiveLocation); got != "s3://org-trail-logs/GitLab/gitlab-com/" {
		t.Errorf("archive location %s", got)
	}
	var bucketStmt, keyStmt map[string]any
	if err := json.Unmarshal([]byte(value(contract.OutputGitLabBucketPolicyStatement)), &bucketStmt); err != nil {
		t.Fatal(err)
	}
	if asJSON(bucketStmt) != `{"Action":"s3:PutObject","Condition":{"ArnEquals":{"aws:PrincipalArn":"`+sampleGitLabRoleArn+`"},"StringEquals":{"s3:if-none-match":"*","s3:x-amz-acl":"bucket-owner-full-control"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Resource":"arn:aws:s3:::org-trail-logs/GitLab/gitlab-com/*","Sid":"TrailfillGitLabReceiverEvents"}` {
		t.Errorf("bucket policy statement %s", asJSON(bucketStmt))
	}
	if err := json.Unmarshal([]byte(value(contract.OutputGitLabKMSKeyPolicyStatement)), &keyStmt); err != nil {
		t.Fatal(err)
	}
	if asJSON(keyStmt) != `{"Action":"kms:GenerateDataKey","Condition":{"ArnEquals":{"aws:PrincipalArn":"`+sampleGitLabRoleArn+`"},"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Resource":"*","Sid":"TrailfillGitLabReceiverArchiveKey"}` {
		t.Errorf("key policy statement %s", asJSON(keyStmt))
	}
}

func TestGitLabStackOff(t *testing.T) {
	skipShort(t)
	for _, kv := range []map[string]any{nil, {KeyGitLab: false, KeyGitLabSource: "gitlab-com"}} {
		app, a, tp, bf := buildGitLab(t, kv)
		if a.GitLab != nil || tp != nil {
			t.Fatalf("%v: a GitLab stack was built", kv)
		}
		if app.Node().TryFindChild(jsii.String("trailfill-gitlab")) != nil {
			t.Fatalf("%v: the app holds trailfill-gitlab", kv)
		}
		var stacks []string
		for _, c := range *app.Node().Children() {
			if *awscdk.Stack_IsStack(c) {
				stacks = append(stacks, *awscdk.Stack_Of(c).StackName())
			}
		}
		if !reflect.DeepEqual(stacks, []string{"trailfill"}) {
			t.Errorf("%v: stacks %v, want [trailfill]", kv, stacks)
		}
		if n := len(resources(bf, "AWS::Lambda::Url")); n != 0 {
			t.Errorf("%v: %d function URLs in the backfill stack", kv, n)
		}
	}
}

// TestGitLabStackS3Layout: with GitLab's own layout the receiver creates
// objects anywhere under its prefix (one top folder per entity type), create
// only, and is denied the trail folders and trailfill's state wherever they
// lie under that prefix.
func TestGitLabStackS3Layout(t *testing.T) {
	skipShort(t)
	bucket := `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":s3:::org-trail-logs/`
	cases := []struct {
		name       string
		kv         map[string]any
		folder     string   // where the receiver writes
		denied     []string // folders it is denied
		envPrefix  any
		locationIs string
	}{
		{"beside the trail folders", map[string]any{KeyPrefix: "org"}, "org/", []string{"org/AWSLogs/", "org/trailfill/"}, "org", "s3://org-trail-logs/org/"},
		{"bucket root", map[string]any{KeyGitLabPrefix: "/"}, "", []string{"AWSLogs/", "trailfill/"}, nil, "s3://org-trail-logs/"},
		{"own prefix", map[string]any{KeyPrefix: "org", KeyGitLabPrefix: "gitlab-audit"}, "gitlab-audit/", nil, "gitlab-audit", "s3://org-trail-logs/gitlab-audit/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kv := map[string]any{KeyGitLab: "true", KeyBucketName: "org-trail-logs", KeyGitLabLayout: "gitlab-s3"}
			for k, v := range tc.kv {
				kv[k] = v
			}
			_, _, tp, _ := buildGitLab(t, kv)
			_, fn := only(t, tp, "AWS::Lambda::Function")
			env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			if env[contract.EnvGitLabLayout] != GitLabLayoutS3 || env[contract.EnvGitLabPrefix] != tc.envPrefix {
				t.Errorf("environment %s", asJSON(env))
			}
			got := receiverPolicy(t, tp)
			want := []string{
				`{"Action":"s3:PutObject","Condition":` + createOnlyJSON + `,"Effect":"Allow","Resource":` + bucket + tc.folder + `*"]]},"Sid":"WriteGitLabEvents"}`,
			}
			if len(tc.denied) > 0 {
				var res []string
				for _, f := range tc.denied {
					res = append(res, bucket+f+`*"]]}`)
				}
				want = append(want, `{"Action":"s3:PutObject","Effect":"Deny","Resource":[`+strings.Join(res, ",")+`],"Sid":"StayOutOfTrailFolders"}`)
			}
			for i := range want {
				if i >= len(got) || asJSON(got[i]) != want[i] {
					t.Errorf("statement %d\n got %s\nwant %s", i, asJSON(got), want[i])
				}
			}
			for _, st := range got[len(want):] {
				if strings.Contains(asJSON(st), "s3:") {
					t.Errorf("further S3 statement %s", asJSON(st))
				}
			}
			outs := tp["Outputs"].(map[string]any)
			if loc := render(t, outs[contract.OutputGitLabArchiveLocation].(map[string]any)["Value"], ""); loc != tc.locationIs {
				t.Errorf("archive location %s, want %s", loc, tc.locationIs)
			}
			var printed map[string]any
			if err := json.Unmarshal([]byte(render(t, outs[contract.OutputGitLabBucketPolicyStatement].(map[string]any)["Value"], sampleGitLabRoleArn)), &printed); err != nil {
				t.Fatal(err)
			}
			if printed["Resource"] != "arn:aws:s3:::org-trail-logs/"+tc.folder+"*" {
				t.Errorf("printed statement on %v", printed["Resource"])
			}
		})
	}
}
