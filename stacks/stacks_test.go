package stacks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine"
)

// The tests below synthesize CDK stacks (a Node.js jsii process, seconds each):
// `go test -short` skips them; CI runs them.

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("CDK synthesis test: run without -short")
	}
}

const (
	sampleFunctionArn   = "arn:aws:lambda:us-east-1:111122223333:function:trailfill-BackfillFunction"
	sampleStagingBucket = "trailfill-staging-1a2b3c"
)
const sampleRoleArn = "arn:aws:iam::111122223333:role/trailfill-backfill-us-east-1"

type tmpl = map[string]any

// build synthesizes the app for the context kv and returns the backfill
// stack's template and, in readRoles=stack, the read-role stack's.
func build(t *testing.T, kv map[string]any) (backfillTmpl, readRoleTmpl tmpl) {
	t.Helper()
	t.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	cfg, err := ConfigFromContext(ctx(kv))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(nil)
	a, err := Build(app, cfg, Options{AssetDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	backfillTmpl = *assertions.Template_FromStack(a.Backfill.Stack, nil).ToJSON()
	if a.ReadRole != nil {
		readRoleTmpl = *assertions.Template_FromStack(a.ReadRole, nil).ToJSON()
	}
	return backfillTmpl, readRoleTmpl
}

// resources returns the template's resources of type typ by logical ID.
func resources(t tmpl, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	rs, _ := t["Resources"].(map[string]any)
	for id, r := range rs {
		rm := r.(map[string]any)
		if rm["Type"] == typ {
			out[id] = rm
		}
	}
	return out
}

// only returns the single resource of type typ and its logical ID.
func only(t *testing.T, tp tmpl, typ string) (string, map[string]any) {
	t.Helper()
	rs := resources(tp, typ)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s, want 1", len(rs), typ)
	}
	for id, r := range rs {
		props, _ := r["Properties"].(map[string]any)
		return id, props
	}
	return "", nil
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// policyDocuments lists every policy document of a template with where it is.
func policyDocuments(tp tmpl) map[string]map[string]any {
	docs := map[string]map[string]any{}
	rs, _ := tp["Resources"].(map[string]any)
	for id, r := range rs {
		rm := r.(map[string]any)
		p, _ := rm["Properties"].(map[string]any)
		switch rm["Type"] {
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy":
			docs[id], _ = p["PolicyDocument"].(map[string]any)
		case "AWS::IAM::Role":
			docs[id+"/trust"], _ = p["AssumeRolePolicyDocument"].(map[string]any)
			pols, _ := p["Policies"].([]any)
			for i, pol := range pols {
				docs[fmt.Sprintf("%s/policy%d", id, i)], _ = pol.(map[string]any)["PolicyDocument"].(map[string]any)
			}
		}
	}
	return docs
}

func statements(doc map[string]any) []map[string]any {
	var out []map[string]any
	switch s := doc["Statement"].(type) {
	case []any:
		for _, e := range s {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
	case map[string]any:
		out = append(out, s)
	}
	return out
}

// resourceStarActions may be granted on Resource "*": they have no
// resource-level permissions (CloudTrail LookupEvents, account ListRegions, the
// Organizations reads of the read role, and
// the CloudWatch Logs delivery actions Step Functions logging requires).
var resourceStarActions = []string{
	"cloudtrail:LookupEvents", "account:ListRegions", "organizations:DescribeOrganization", "organizations:ListAccounts",
	"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
	"logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}

// checkLeastPrivilege fails on an Allow with a wildcard action, NotAction or
// NotResource, or with Resource "*" for an action that has resource-level
// permissions.
func checkLeastPrivilege(t *testing.T, tp tmpl) {
	t.Helper()
	for where, doc := range policyDocuments(tp) {
		for _, st := range statements(doc) {
			if st["Effect"] != "Allow" {
				continue // the TLS-only Deny statements name s3:* on purpose
			}
			if _, ok := st["NotAction"]; ok {
				t.Errorf("%s: NotAction in %s", where, asJSON(st))
			}
			if _, ok := st["NotResource"]; ok {
				t.Errorf("%s: NotResource in %s", where, asJSON(st))
			}
			actions := strs(st["Action"])
			for _, a := range actions {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("%s: wildcard action %q in %s", where, a, asJSON(st))
				}
			}
			if slices.Contains(strs(st["Resource"]), "*") {
				for _, a := range actions {
					if !slices.Contains(resourceStarActions, a) {
						t.Errorf("%s: %s on Resource \"*\" in %s", where, a, asJSON(st))
					}
				}
			}
		}
	}
}

// findStatement returns the statement with sid in the template's policies.
func findStatement(t *testing.T, tp tmpl, sid string) map[string]any {
	t.Helper()
	for _, doc := range policyDocuments(tp) {
		for _, st := range statements(doc) {
			if st["Sid"] == sid {
				return st
			}
		}
	}
	t.Fatalf("no policy statement %q", sid)
	return nil
}

// logicalID returns the logical ID of the single resource of type typ whose
// ID starts with prefix.
func logicalID(t *testing.T, tp tmpl, typ, prefix string) string {
	t.Helper()
	var ids []string
	for id := range resources(tp, typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d resources of type %s named %s*, want 1", len(ids), typ, prefix)
	}
	return ids[0]
}

// roleStatements returns the statements of the policies attached to the role
// whose logical ID starts with prefix.
func roleStatements(t *testing.T, tp tmpl, prefix string) []map[string]any {
	t.Helper()
	roleID := logicalID(t, tp, "AWS::IAM::Role", prefix)
	var out []map[string]any
	for _, r := range resources(tp, "AWS::IAM::Policy") {
		p := r["Properties"].(map[string]any)
		if asJSON(p["Roles"]) == asJSON([]any{map[string]any{"Ref": roleID}}) {
			out = append(out, statements(p["PolicyDocument"].(map[string]any))...)
		}
	}
	return out
}

func TestBackfillStackNewBucket(t *testing.T) {
	skipShort(t)
	tp, _ := build(t, map[string]any{
		KeyObjectLock: "true", KeyObjectLockDays: "30", KeyAlarmTopicArn: "arn:aws:sns:us-east-1:111122223333:alerts",
		KeyMemoryMB: "2048", KeyReservedConcurrency: "20", KeyRate: "1.5", KeyStopMargin: "120", KeyLogRetentionDays: "90",
	})
	checkLeastPrivilege(t, tp)

	// The function.
	fnID, fn := only(t, tp, "AWS::Lambda::Function")
	if fn["Runtime"] != "provided.al2023" || fn["Handler"] != "bootstrap" || asJSON(fn["Architectures"]) != `["arm64"]` ||
		fn["Timeout"] != float64(900) || fn["MemorySize"] != float64(2048) || fn["ReservedConcurrentExecutions"] != float64(20) {
		t.Errorf("function: %s", asJSON(fn))
	}
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	bucketID := logicalID(t, tp, "AWS::S3::Bucket", "Archive")
	bucketRes := resources(tp, "AWS::S3::Bucket")[bucketID]
	bucket := bucketRes["Properties"].(map[string]any)
	if asJSON(env[contract.EnvBucket]) != asJSON(map[string]any{"Ref": bucketID}) || env[contract.EnvRoleName] != "trailfill-read" ||
		env[contract.EnvRate] != "1.5" || env[contract.EnvStopMargin] != "120" || env[contract.EnvPrefix] != nil || env[contract.EnvOrgID] != nil ||
		env[contract.EnvKMSKeyArn] != nil {
		t.Errorf("function environment: %s", asJSON(env))
	}
	if lc := fn["LoggingConfig"].(map[string]any); lc["LogFormat"] != "JSON" || lc["LogGroup"] == nil {
		t.Errorf("function logging: %s", asJSON(lc))
	}
	for id, lg := range resources(tp, "AWS::Logs::LogGroup") {
		if lg["Properties"].(map[string]any)["RetentionInDays"] != float64(90) || lg["DeletionPolicy"] != "Retain" {
			t.Errorf("log group %s: %s", id, asJSON(lg))
		}
	}
	roleID := logicalID(t, tp, "AWS::IAM::Role", "BackfillFunctionRole")
	role := resources(tp, "AWS::IAM::Role")[roleID]["Properties"].(map[string]any)
	if asJSON(role["RoleName"]) != `{"Fn::Join":["",["trailfill-backfill-",{"Ref":"AWS::Region"}]]}` {
		t.Errorf("function role name: %s", asJSON(role["RoleName"]))
	}
	if asJSON(fn["Role"]) != asJSON(map[string]any{"Fn::GetAtt": []any{roleID, "Arn"}}) {
		t.Errorf("function role: %s", asJSON(fn["Role"]))
	}

	// The function's permissions, exactly.
	bucketArn := asJSON(map[string]any{"Fn::GetAtt": []any{bucketID, "Arn"}})
	trail := `{"Fn::Join":["",[` + bucketArn + `,"/AWSLogs/*"]]}`
	state := `{"Fn::Join":["",[` + bucketArn + `,"/trailfill/*"]]}`
	logsID := logicalID(t, tp, "AWS::Logs::LogGroup", "BackfillFunctionLogs")
	want := []string{
		`{"Action":"sts:AssumeRole","Effect":"Allow","Resource":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":iam::*:role/trailfill-read"]]},"Sid":"AssumeReadRoles"}`,
		`{"Action":"cloudtrail:LookupEvents","Effect":"Allow","Resource":"*","Sid":"LookupEventsOwnAccount"}`,
		`{"Action":"s3:GetObject","Effect":"Allow","Resource":[` + trail + `,` + state + `],"Sid":"ArchiveRead"}`,
		`{"Action":"s3:PutObject","Condition":{"StringEquals":{"s3:if-none-match":"*","s3:x-amz-acl":"bucket-owner-full-control"}},"Effect":"Allow","Resource":` + trail + `,"Sid":"ArchiveCreateTrailFiles"}`,
		`{"Action":"s3:PutObject","Condition":{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}},"Effect":"Allow","Resource":` + state + `,"Sid":"ArchiveWriteState"}`,
		`{"Action":"s3:DeleteObject","Effect":"Allow","Resource":` + state + `,"Sid":"ArchiveDeleteState"}`,
		`{"Action":"s3:ListBucket","Condition":{"StringLike":{"s3:prefix":["AWSLogs/*","trailfill/*"]}},"Effect":"Allow","Resource":` + bucketArn + `,"Sid":"ArchiveList"}`,
		`{"Action":["s3:DeleteObject","s3:DeleteObjectVersion","s3:PutObjectAcl","s3:PutObjectVersionAcl"],"Effect":"Deny","Resource":` + trail + `,"Sid":"NeverDeleteTrailFiles"}`,
		`{"Action":"s3:PutObject","Condition":{"StringNotEquals":{"s3:if-none-match":"*"}},"Effect":"Deny","Resource":` + trail + `,"Sid":"NeverOverwriteTrailFiles"}`,
		`{"Action":["logs:CreateLogStream","logs:PutLogEvents"],"Effect":"Allow","Resource":{"Fn::GetAtt":["` + logsID + `","Arn"]}}`,
	}
	got := roleStatements(t, tp, "BackfillFunctionRole")
	if len(got) != len(want) {
		t.Fatalf("%d statements, want %d: %s", len(got), len(want), asJSON(got))
	}
	for i := range want {
		if asJSON(got[i]) != want[i] {
			t.Errorf("statement %d\n got %s\nwant %s", i, asJSON(got[i]), want[i])
		}
	}

	// The bucket: private, TLS only, encrypted, versioned, Object Lock, access
	// logs, retained.
	accessLogsID := logicalID(t, tp, "AWS::S3::Bucket", "AccessLogs")
	if asJSON(bucket["PublicAccessBlockConfiguration"]) != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` ||
		asJSON(bucket["VersioningConfiguration"]) != `{"Status":"Enabled"}` ||
		asJSON(bucket["BucketEncryption"]) != `{"ServerSideEncryptionConfiguration":[{"ServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}` ||
		bucket["ObjectLockEnabled"] != true ||
		asJSON(bucket["ObjectLockConfiguration"]) != `{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Days":30,"Mode":"GOVERNANCE"}}}` ||
		asJSON(bucket["OwnershipControls"]) != `{"Rules":[{"ObjectOwnership":"BucketOwnerEnforced"}]}` ||
		asJSON(bucket["LoggingConfiguration"]) != `{"DestinationBucketName":{"Ref":"`+accessLogsID+`"},"LogFilePrefix":"archive/"}` {
		t.Errorf("bucket: %s", asJSON(bucket))
	}
	if bucketRes["DeletionPolicy"] != "Retain" || bucketRes["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("bucket removal policy: %s %s", bucketRes["DeletionPolicy"], bucketRes["UpdateReplacePolicy"])
	}
	for id, bp := range resources(tp, "AWS::S3::BucketPolicy") {
		tlsOnly := false
		for _, st := range statements(bp["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)) {
			if st["Effect"] == "Deny" && asJSON(st["Condition"]) == `{"Bool":{"aws:SecureTransport":"false"}}` && asJSON(st["Principal"]) == `{"AWS":"*"}` {
				tlsOnly = true
			}
		}
		if !tlsOnly {
			t.Errorf("bucket policy %s is not TLS-only: %s", id, asJSON(bp))
		}
	}
	if n := len(resources(tp, "AWS::S3::BucketPolicy")); n != 3 {
		t.Errorf("%d bucket policies, want 3 (archive, staging, access logs)", n)
	}

	// The state machine: the embedded definition, unchanged.
	_, sm := only(t, tp, "AWS::StepFunctions::StateMachine")
	if sm["StateMachineType"] != "STANDARD" || sm["StateMachineName"] != "trailfill-backfill" {
		t.Errorf("state machine: type %v name %v", sm["StateMachineType"], sm["StateMachineName"])
	}
	stagingID := logicalID(t, tp, "AWS::S3::Bucket", "Staging")
	wantSubs := map[string]any{PartitionPlaceholder: map[string]any{"Ref": "AWS::Partition"}}
	for k, v := range statemachine.Substitutions(sampleFunctionArn, sampleStagingBucket) {
		wantSubs[k] = v
	}
	wantSubs[contract.FunctionPlaceholder] = map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}}
	wantSubs[contract.StagingBucketPlaceholder] = map[string]any{"Ref": stagingID}
	if asJSON(sm["DefinitionSubstitutions"]) != asJSON(wantSubs) {
		t.Errorf("substitutions: %s", asJSON(sm["DefinitionSubstitutions"]))
	}
	defString, ok := sm["DefinitionString"].(string)
	if !ok {
		t.Fatalf("DefinitionString is not a plain string: %s", asJSON(sm["DefinitionString"]))
	}
	if strings.Contains(defString, "arn:aws:") || !strings.Contains(defString, `"Resource": "arn:${Partition}:states:::lambda:invoke"`) {
		t.Errorf("the deployed definition names the aws partition")
	}
	// In the aws partition it is the embedded definition exactly.
	subs := statemachine.Substitutions(sampleFunctionArn, sampleStagingBucket)
	subs[PartitionPlaceholder] = "aws"
	var deployed, wantDef map[string]any
	if err := json.Unmarshal([]byte(statemachine.Substitute(defString, subs)), &deployed); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(statemachine.Render(sampleFunctionArn, sampleStagingBucket)), &wantDef); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(deployed, wantDef) {
		t.Errorf("deployed definition differs from statemachine/backfill.asl.json")
	}
	if deployed["QueryLanguage"] != "JSONata" {
		t.Errorf("QueryLanguage %v", deployed["QueryLanguage"])
	}
	if !strings.Contains(asJSON(deployed), `"FunctionName":"`+sampleFunctionArn+`"`) {
		t.Errorf("the Task does not invoke the substituted function")
	}
	// The ItemReader and the ResultWriter name the staging bucket, which the
	// role's staging grants cover; nothing else in the definition names a bucket.
	if n := strings.Count(asJSON(deployed), `"Bucket":"`+sampleStagingBucket+`"`); n != 2 || strings.Count(asJSON(deployed), `"Bucket":`) != 2 {
		t.Errorf("the definition names the staging bucket %d times, want 2 (ItemReader, ResultWriter)", n)
	}
	if lc := sm["LoggingConfiguration"].(map[string]any); lc["Level"] != "ERROR" || lc["IncludeExecutionData"] != true {
		t.Errorf("state machine logging: %s", asJSON(lc))
	}

	// The state machine's role: only this function, its own executions, its
	// staging folders.
	fnArn := asJSON(map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}})
	own := func(kind, name string) string {
		return `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":states:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},":` + kind + `:` + name + `"]]}`
	}
	stagingArn := asJSON(map[string]any{"Fn::GetAtt": []any{stagingID, "Arn"}})
	wantStatements := map[string]string{
		"lambda:InvokeFunction":    `[` + fnArn + `,{"Fn::Join":["",[` + fnArn + `,":*"]]}]`,
		"states:StartExecution":    own("stateMachine", "trailfill-backfill"),
		"states:DescribeExecution": `[` + own("execution", "trailfill-backfill:*") + `,` + own("execution", "trailfill-backfill/*") + `]`,
		"states:RedriveExecution":  own("execution", "trailfill-backfill/Partition:*"),
		"states:DescribeMapRun":    own("mapRun", "trailfill-backfill/Partition:*"),
		"StagingReadItems":         `{"Action":"s3:GetObject","Effect":"Allow","Resource":{"Fn::Join":["",[` + stagingArn + `,"/inputs/*"]]},"Sid":"StagingReadItems"}`,
		"StagingWriteResults":      `{"Action":["s3:PutObject","s3:GetObject","s3:ListMultipartUploadParts","s3:AbortMultipartUpload"],"Effect":"Allow","Resource":{"Fn::Join":["",[` + stagingArn + `,"/results/*"]]},"Sid":"StagingWriteResults"}`,
	}
	for _, st := range roleStatements(t, tp, "StateMachineRole") {
		if sid, _ := st["Sid"].(string); strings.HasPrefix(sid, "Staging") {
			if asJSON(st) != wantStatements[sid] {
				t.Errorf("state machine %s\n got %s\nwant %s", sid, asJSON(st), wantStatements[sid])
			}
			delete(wantStatements, sid)
			continue
		}
		for _, a := range strs(st["Action"]) {
			if w, ok := wantStatements[a]; ok {
				if asJSON(st["Resource"]) != w {
					t.Errorf("state machine %s on %s, want %s", a, asJSON(st["Resource"]), w)
				}
				delete(wantStatements, a)
			} else if !strings.HasPrefix(a, "logs:") && a != "states:StopExecution" {
				t.Errorf("state machine role may %s", a)
			}
		}
	}
	if len(wantStatements) > 0 {
		t.Errorf("state machine role lacks %v", wantStatements)
	}

	// The alarm.
	_, alarm := only(t, tp, "AWS::CloudWatch::Alarm")
	if alarm["MetricName"] != "ExecutionsFailed" || alarm["Namespace"] != "AWS/States" || alarm["Threshold"] != float64(1) ||
		alarm["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || alarm["TreatMissingData"] != "notBreaching" ||
		asJSON(alarm["AlarmActions"]) != `["arn:aws:sns:us-east-1:111122223333:alerts"]` {
		t.Errorf("alarm: %s", asJSON(alarm))
	}

	// Outputs.
	outs := tp["Outputs"].(map[string]any)
	for _, k := range []string{contract.OutputStateMachineArn, contract.OutputArchiveBucket, contract.OutputArchiveDestination, contract.OutputReadRoleName, contract.OutputBackfillFunctionRoleArn, contract.OutputConsoleURL, contract.OutputStagingBucket} {
		o, ok := outs[k].(map[string]any)
		if !ok || o["Value"] == nil || o["Value"] == "" {
			t.Errorf("output %s missing or empty: %v", k, outs[k])
		}
	}
	if o := outs[contract.OutputStagingBucket].(map[string]any); asJSON(o["Value"]) != `{"Ref":"`+stagingID+`"}` {
		t.Errorf("staging output %s", asJSON(o["Value"]))
	}
	for _, k := range []string{contract.OutputArchivePrefix, contract.OutputBucketPolicyStatement, contract.OutputKMSKeyPolicyStatement, contract.OutputReadRoleStackSet} {
		if _, ok := outs[k]; ok {
			t.Errorf("output %s present", k)
		}
	}
	if len(resources(tp, "AWS::CloudFormation::StackSet")) != 0 {
		t.Error("readRoles=none made a StackSet")
	}
}

func TestStagingBucket(t *testing.T) {
	skipShort(t)
	for _, m := range []synthMode{synthModes[0], synthModes[1]} {
		t.Run(m.name, func(t *testing.T) {
			s := m.synth(t)
			tp := s.templates["trailfill"]
			id := logicalID(t, tp, "AWS::S3::Bucket", "Staging")
			res := resources(tp, "AWS::S3::Bucket")[id]
			accessLogsID := logicalID(t, tp, "AWS::S3::Bucket", "AccessLogs")
			want := `{"BucketEncryption":{"ServerSideEncryptionConfiguration":[{"ServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]},` +
				`"LifecycleConfiguration":{"Rules":[{"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1},"ExpirationInDays":30,"Id":"ExpireStagedObjects","Status":"Enabled"}]},` +
				`"LoggingConfiguration":{"DestinationBucketName":{"Ref":"` + accessLogsID + `"},"LogFilePrefix":"staging/"},` +
				`"OwnershipControls":{"Rules":[{"ObjectOwnership":"BucketOwnerEnforced"}]},` +
				`"PublicAccessBlockConfiguration":{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true},` +
				`"Tags":[{"Key":"trailfill","Value":"trailfill"}]}`
			if got := asJSON(res["Properties"]); got != want {
				t.Errorf("staging bucket\n got %s\nwant %s", got, want)
			}
			// Unversioned (no VersioningConfiguration above), retained: see
			// newStagingBucket.
			if res["DeletionPolicy"] != "Retain" || res["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("staging removal policy %v/%v", res["DeletionPolicy"], res["UpdateReplacePolicy"])
			}
			// No custom resource empties it (autoDeleteObjects off).
			if n := len(resources(tp, "Custom::S3AutoDeleteObjects")); n != 0 {
				t.Errorf("%d auto-delete custom resources", n)
			}
			var tlsDeny, tls12 bool
			for _, bp := range resources(tp, "AWS::S3::BucketPolicy") {
				p := bp["Properties"].(map[string]any)
				if asJSON(p["Bucket"]) != `{"Ref":"`+id+`"}` {
					continue
				}
				for _, st := range statements(p["PolicyDocument"].(map[string]any)) {
					tlsDeny = tlsDeny || (st["Effect"] == "Deny" && asJSON(st["Condition"]) == `{"Bool":{"aws:SecureTransport":"false"}}`)
					tls12 = tls12 || (st["Effect"] == "Deny" && asJSON(st["Condition"]) == `{"NumericLessThan":{"s3:TlsVersion":1.2}}`)
				}
			}
			if !tlsDeny || !tls12 {
				t.Errorf("staging bucket policy: TLS-only %v, TLS 1.2 %v", tlsDeny, tls12)
			}
			// The access-log target accepts logs only from this stack's buckets.
			var logSources []string
			for _, bp := range resources(tp, "AWS::S3::BucketPolicy") {
				p := bp["Properties"].(map[string]any)
				for _, st := range statements(p["PolicyDocument"].(map[string]any)) {
					if asJSON(st["Principal"]) == `{"Service":"logging.s3.amazonaws.com"}` {
						logSources = append(logSources, asJSON(st["Condition"]))
					}
				}
			}
			if len(logSources) == 0 {
				t.Error("no server access log delivery statement")
			}
			for _, c := range logSources {
				if !strings.Contains(c, `"aws:SourceAccount":{"Ref":"AWS::AccountId"}`) {
					t.Errorf("log delivery without aws:SourceAccount: %s", c)
				}
			}
		})
	}
}

func TestBackfillStackExistingBucketStackSetOrg(t *testing.T) {
	skipShort(t)
	const key = sampleKeyArn
	tp, rr := build(t, map[string]any{
		KeyReadRoleStack: true, KeyBackfillRoleArn: sampleRoleArn, // the management account's role
		KeyBucketName: "org-trail-logs", KeyPrefix: "org", KeyKMSKeyArn: key, KeyOrgID: "o-abcdefghij",
		KeyReadRoles: "stackset-org", KeyTargetOUIDs: "r-ab12,ou-ab12-abcdefgh", KeyStackSetCallAs: "DELEGATED_ADMIN",
		KeyTargetRegion: "eu-west-1", KeyAlarmEmail: "sec@example.com",
		KeyLocalPrincipalArn: "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*",
	})
	checkLeastPrivilege(t, tp)
	for id := range resources(tp, "AWS::S3::Bucket") {
		if strings.HasPrefix(id, "Archive") {
			t.Error("an existing bucket was given but the stack creates one")
		}
	}
	_, fn := only(t, tp, "AWS::Lambda::Function")
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	if env[contract.EnvBucket] != "org-trail-logs" || env[contract.EnvPrefix] != "org" || env[contract.EnvOrgID] != "o-abcdefghij" || env[contract.EnvKMSKeyArn] != key {
		t.Errorf("environment: %s", asJSON(env))
	}
	var objects []string
	for _, r := range findStatement(t, tp, "ArchiveRead")["Resource"].([]any) {
		objects = append(objects, render(t, r, sampleRoleArn))
	}
	if !reflect.DeepEqual(objects, []string{"arn:aws:s3:::org-trail-logs/org/AWSLogs/*", "arn:aws:s3:::org-trail-logs/org/trailfill/*"}) {
		t.Errorf("objects: %v", objects)
	}
	if st := findStatement(t, tp, "ArchiveList"); asJSON(st["Condition"]) != `{"StringLike":{"s3:prefix":["org/AWSLogs/*","org/trailfill/*"]}}` {
		t.Errorf("list: %s", asJSON(st))
	}
	if st := findStatement(t, tp, "ArchiveKey"); st["Resource"] != key || !reflect.DeepEqual(strs(st["Action"]), []string{"kms:GenerateDataKey", "kms:Decrypt"}) ||
		asJSON(st["Condition"]) != `{"StringEquals":{"kms:ViaService":{"Fn::Join":["",["s3.",{"Ref":"AWS::Region"},".",{"Ref":"AWS::URLSuffix"}]]}}}` {
		t.Errorf("kms: %s", asJSON(st))
	}
	if st := findStatement(t, tp, "AssumeReadRoles"); asJSON(st["Condition"]) != `{"StringEquals":{"aws:ResourceOrgID":"o-abcdefghij"}}` {
		t.Errorf("assume: %s", asJSON(st))
	}

	// The statements the bucket and key owners add: the central account's
	// root, on condition that the caller is the function's role.
	outs := tp["Outputs"].(map[string]any)
	policy := render(t, outs[contract.OutputBucketPolicyStatement].(map[string]any)["Value"], sampleRoleArn)
	var sts []map[string]any
	if err := json.Unmarshal([]byte(policy), &sts); err != nil {
		t.Fatalf("bucket policy statement is not JSON: %v: %s", err, policy)
	}
	who := `"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"}`
	by := `"ArnEquals":{"aws:PrincipalArn":"` + sampleRoleArn + `"}`
	wantBP := []string{
		`{"Action":"s3:GetObject","Condition":{` + by + `},` + who + `,"Resource":["arn:aws:s3:::org-trail-logs/org/AWSLogs/*","arn:aws:s3:::org-trail-logs/org/trailfill/*"],"Sid":"TrailfillBackfillArchiveRead"}`,
		`{"Action":"s3:PutObject","Condition":{` + by + `,"StringEquals":{"s3:if-none-match":"*","s3:x-amz-acl":"bucket-owner-full-control"}},` + who + `,"Resource":"arn:aws:s3:::org-trail-logs/org/AWSLogs/*","Sid":"TrailfillBackfillArchiveCreateTrailFiles"}`,
		`{"Action":"s3:PutObject","Condition":{` + by + `,"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control"}},` + who + `,"Resource":"arn:aws:s3:::org-trail-logs/org/trailfill/*","Sid":"TrailfillBackfillArchiveWriteState"}`,
		`{"Action":"s3:DeleteObject","Condition":{` + by + `},` + who + `,"Resource":"arn:aws:s3:::org-trail-logs/org/trailfill/*","Sid":"TrailfillBackfillArchiveDeleteState"}`,
		`{"Action":"s3:ListBucket","Condition":{` + by + `,"StringLike":{"s3:prefix":["org/AWSLogs/*","org/trailfill/*"]}},` + who + `,"Resource":"arn:aws:s3:::org-trail-logs","Sid":"TrailfillBackfillArchiveList"}`,
	}
	if len(sts) != len(wantBP) {
		t.Fatalf("%d bucket policy statements, want %d: %s", len(sts), len(wantBP), policy)
	}
	for i := range wantBP {
		if asJSON(sts[i]) != wantBP[i] {
			t.Errorf("bucket policy statement %d\n got %s\nwant %s", i, asJSON(sts[i]), wantBP[i])
		}
	}
	keyPolicy := render(t, outs[contract.OutputKMSKeyPolicyStatement].(map[string]any)["Value"], sampleRoleArn)
	if want := `{"Action":["kms:GenerateDataKey","kms:Decrypt"],"Condition":{` + by + `,"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}},` + who + `,"Resource":"*","Sid":"TrailfillBackfillArchiveKey"}`; keyPolicy != want {
		t.Errorf("key policy statement\n got %s\nwant %s", keyPolicy, want)
	}
	if o := outs[contract.OutputArchivePrefix].(map[string]any); o["Value"] != "org" {
		t.Errorf("prefix output %v", o)
	}

	// Email alarm.
	_, sub := only(t, tp, "AWS::SNS::Subscription")
	if sub["Protocol"] != "email" || sub["Endpoint"] != "sec@example.com" {
		t.Errorf("subscription: %s", asJSON(sub))
	}

	// The StackSet: service-managed, auto-deployed to the OUs, in one region.
	_, ss := only(t, tp, "AWS::CloudFormation::StackSet")
	if ss["PermissionModel"] != "SERVICE_MANAGED" || ss["CallAs"] != "DELEGATED_ADMIN" || ss["StackSetName"] != "trailfill-read-role" ||
		asJSON(ss["AutoDeployment"]) != `{"Enabled":true,"RetainStacksOnAccountRemoval":false}` ||
		asJSON(ss["Capabilities"]) != `["CAPABILITY_NAMED_IAM"]` || asJSON(ss["ManagedExecution"]) != `{"Active":true}` ||
		asJSON(ss["StackInstancesGroup"]) != `[{"DeploymentTargets":{"OrganizationalUnitIds":["r-ab12","ou-ab12-abcdefgh"]},"Regions":["eu-west-1"]}]` {
		t.Errorf("stack set: %s", asJSON(withoutBody(ss)))
	}
	body, params := stackSetTemplate(t, ss)
	if params[ParamTrustedRoleArn] != sampleRoleArn || params[ParamOrganizationID] != "o-abcdefghij" || params[ParamReadRoleName] != "trailfill-read" {
		t.Errorf("stack set parameters: %v", params)
	}
	checkLeastPrivilege(t, body)
	trust := readRoleTrust(t, body, params)
	if len(trust) != 2 {
		t.Fatalf("trust statements: %s", asJSON(trust))
	}
	if asJSON(trust[1]) != `{"Action":"sts:AssumeRole","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*"},"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Sid":"TrailfillLocalRuns"}` {
		t.Errorf("local principal trust: %s", asJSON(trust[1]))
	}

	// The read-role stack for the management account trusts the same principals.
	if rr == nil {
		t.Fatal("readRoleStack=true made no read-role stack")
	}
	if got := readRoleTrust(t, rr, nil); asJSON(got) != asJSON(trust) {
		t.Errorf("read-role stack trust %s, StackSet trust %s", asJSON(got), asJSON(trust))
	}
}

func TestBackfillStackSetAccounts(t *testing.T) {
	skipShort(t)
	tp, _ := build(t, map[string]any{
		KeyReadRoles: "stackset-accounts", KeyTargetAccounts: "222233334444,555566667777", KeyReadAccounts: "222233334444,555566667777",
		KeyStackSetExecRole: "OrgStackSetExecution", KeyReadRoleName: "audit-trail-read", KeyKMSKeyArn: sampleLocalKeyArn,
	})
	checkLeastPrivilege(t, tp)
	archive := resources(tp, "AWS::S3::Bucket")[logicalID(t, tp, "AWS::S3::Bucket", "Archive")]["Properties"].(map[string]any)
	if asJSON(archive["BucketEncryption"]) != `{"ServerSideEncryptionConfiguration":[{"BucketKeyEnabled":true,"ServerSideEncryptionByDefault":{"KMSMasterKeyID":"`+sampleLocalKeyArn+`","SSEAlgorithm":"aws:kms"}}]}` ||
		archive["ObjectLockEnabled"] != nil {
		t.Errorf("bucket: %s", asJSON(archive))
	}
	_, ss := only(t, tp, "AWS::CloudFormation::StackSet")
	if ss["PermissionModel"] != "SELF_MANAGED" || ss["AutoDeployment"] != nil || ss["ExecutionRoleName"] != "OrgStackSetExecution" ||
		asJSON(ss["StackInstancesGroup"]) != `[{"DeploymentTargets":{"Accounts":["222233334444","555566667777"]},"Regions":["us-east-1"]}]` {
		t.Errorf("stack set: %s", asJSON(withoutBody(ss)))
	}
	body, params := stackSetTemplate(t, ss)
	if params[ParamReadRoleName] != "audit-trail-read" || params[ParamOrganizationID] != "" || params[ParamLocalPrincipalArn] != "" {
		t.Errorf("parameters: %v", params)
	}
	trust := readRoleTrust(t, body, params)
	if asJSON(trust) != `[{"Action":"sts:AssumeRole","Condition":{"ArnEquals":{"aws:PrincipalArn":"`+sampleRoleArn+`"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Sid":"TrailfillBackfillFunction"}]` {
		t.Errorf("trust without organization: %s", asJSON(trust))
	}
	if size := len(ss["TemplateBody"].(string)); size > MaxTemplateBody {
		t.Errorf("template body %d bytes", size)
	}
	if st := findStatement(t, tp, "AssumeReadRoles"); !strings.Contains(asJSON(st["Resource"]), ":iam::222233334444:role/audit-trail-read") ||
		!strings.Contains(asJSON(st["Resource"]), ":iam::555566667777:role/audit-trail-read") || strings.Contains(asJSON(st["Resource"]), "::*:") {
		t.Errorf("assume restricted to the read accounts: %s", asJSON(st["Resource"]))
	}
	// A new bucket with a key: the key-policy statement is printed too (the
	// stack imports the key and does not manage its policy), no bucket policy.
	outs := tp["Outputs"].(map[string]any)
	if _, ok := outs[contract.OutputKMSKeyPolicyStatement]; !ok {
		t.Error("no key policy statement for a new bucket with kmsKeyArn")
	}
	if _, ok := outs[contract.OutputBucketPolicyStatement]; ok {
		t.Error("a bucket policy statement for the stack's own bucket")
	}
}

func TestReadRoleStack(t *testing.T) {
	skipShort(t)
	const backfillRole = "arn:aws:iam::999988887777:role/trailfill-backfill-eu-central-1"
	tp, rr := build(t, map[string]any{KeyReadRoles: "stack", KeyBackfillRoleArn: backfillRole, KeyOrgID: "o-abcdefghij", KeyOrgTrail: false, KeyReadRoleName: "trailfill-read",
		KeyLocalPrincipalArn: "arn:aws:iam::999988887777:user/ops"})
	if rr == nil {
		t.Fatal("no read-role stack")
	}
	if len(resources(tp, "AWS::CloudFormation::StackSet")) != 0 {
		t.Error("readRoles=stack made a StackSet")
	}
	checkLeastPrivilege(t, rr)
	_, role := only(t, rr, "AWS::IAM::Role")
	pols := role["Policies"].([]any)
	if len(pols) != 1 || asJSON(pols[0].(map[string]any)["PolicyDocument"]) != `{"Statement":[{"Action":"cloudtrail:LookupEvents","Effect":"Allow","Resource":"*","Sid":"LookupEvents"},{"Action":"account:ListRegions","Effect":"Allow","Resource":"*","Sid":"ListRegions"},`+
		`{"Action":["cloudtrail:GetEventSelectors","cloudtrail:GetTrail","cloudtrail:GetTrailStatus"],"Effect":"Allow","Resource":{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":cloudtrail:*:",{"Ref":"AWS::AccountId"},":trail/*"]]},"Sid":"ReadTrails"},`+
		`{"Action":["organizations:DescribeOrganization","organizations:ListAccounts"],"Effect":"Allow","Resource":"*","Sid":"ReadOrganization"}],"Version":"2012-10-17"}` {
		t.Errorf("read role permissions: %s", asJSON(pols))
	}
	if len(resources(rr, "AWS::IAM::Policy")) > 0 {
		t.Error("extra IAM policies on the read role")
	}
	// Literal values (`cdk deploy` would reuse previous parameter values), and
	// no BootstrapVersion parameter: the account to read needs no CDK bootstrap.
	if ps, _ := rr["Parameters"].(map[string]any); len(ps) > 0 {
		t.Errorf("the read-role stack has parameters: %v", ps)
	}
	if role["RoleName"] != "trailfill-read" {
		t.Errorf("role name %v", role["RoleName"])
	}
	params := map[string]string{}
	trust := readRoleTrust(t, rr, params)
	if asJSON(trust) != `[{"Action":"sts:AssumeRole","Condition":{"ArnEquals":{"aws:PrincipalArn":"`+backfillRole+`"},"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999988887777:root"},"Sid":"TrailfillBackfillFunction"},`+
		`{"Action":"sts:AssumeRole","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::999988887777:user/ops"},"StringEquals":{"aws:PrincipalOrgID":"o-abcdefghij"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999988887777:root"},"Sid":"TrailfillLocalRuns"}]` {
		t.Errorf("trust: %s", asJSON(trust))
	}
	_, fn := only(t, tp, "AWS::Lambda::Function")
	if env := fn["Environment"].(map[string]any)["Variables"].(map[string]any); env[contract.EnvOrgID] != nil {
		t.Errorf("orgTrail=false still sets %s", contract.EnvOrgID)
	}
	if _, ok := rr["Outputs"].(map[string]any)["ReadRoleArn"]; !ok {
		t.Error("no ReadRoleArn output")
	}
}

func TestReadRoleTemplateIsClean(t *testing.T) {
	skipShort(t)
	body, err := ReadRoleTemplate()
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > MaxTemplateBody {
		t.Fatalf("%d bytes", len(body))
	}
	for _, s := range []string{"aws:cdk:path", "CDKMetadata", "BootstrapVersion", "cdk_nag"} {
		if strings.Contains(body, s) {
			t.Errorf("template body carries %s", s)
		}
	}
}

func withoutBody(ss map[string]any) map[string]any {
	c := map[string]any{}
	for k, v := range ss {
		if k != "TemplateBody" {
			c[k] = v
		}
	}
	return c
}

// stackSetTemplate parses a StackSet's TemplateBody and its parameters, with
// the backfill role's GetAtt replaced by sampleRoleArn.
func stackSetTemplate(t *testing.T, ss map[string]any) (tmpl, map[string]string) {
	t.Helper()
	body, ok := ss["TemplateBody"].(string)
	if !ok {
		t.Fatalf("TemplateBody is not a plain string: %s", asJSON(ss["TemplateBody"]))
	}
	var tp tmpl
	if err := json.Unmarshal([]byte(body), &tp); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for _, p := range ss["Parameters"].([]any) {
		pm := p.(map[string]any)
		v, ok := pm["ParameterValue"].(string)
		if !ok {
			if !strings.Contains(asJSON(pm["ParameterValue"]), "BackfillFunctionRole") {
				t.Fatalf("parameter %v", asJSON(pm))
			}
			v = sampleRoleArn
		}
		params[pm["ParameterKey"].(string)] = v
	}
	for k := range tp["Parameters"].(map[string]any) {
		if _, ok := params[k]; !ok {
			t.Fatalf("the StackSet does not pass parameter %s", k)
		}
	}
	return tp, params
}

// readRoleTrust evaluates the read role's trust policy for the parameters, as
// CloudFormation would, and returns its statements.
func readRoleTrust(t *testing.T, tp tmpl, params map[string]string) []map[string]any {
	t.Helper()
	conds := map[string]bool{}
	cs, _ := tp["Conditions"].(map[string]any)
	for name, c := range cs {
		conds[name] = evalCFN(t, c, params, conds).(bool)
	}
	_, role := only(t, tp, "AWS::IAM::Role")
	doc := evalCFN(t, role["AssumeRolePolicyDocument"], params, conds).(map[string]any)
	if doc["Version"] != "2012-10-17" {
		t.Errorf("trust version %v", doc["Version"])
	}
	return statements(doc)
}
