package stacks

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine"
)

// iamGlob reports whether an IAM pattern (* any run, ? one character)
// matches s; actions match case-insensitively.
func iamGlob(pattern, s string, fold bool) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	if fold {
		re = "(?i)" + re
	}
	return regexp.MustCompile(re).MatchString(s)
}

// archiveProbe names keys of one archive: a trail file, trailfill's state,
// and something else (a GitLab event), all under its prefix.
type archiveProbe struct {
	bucketArn string // arn:<partition>:s3:::<bucket>
	kp        string // "" or "<prefix>/"
}

func (a archiveProbe) trail() string {
	return a.bucketArn + "/" + a.kp + "AWSLogs/o-abcdefghij/111122223333/CloudTrail/us-east-1/2025/04/17/111122223333_CloudTrail_us-east-1_20250417T0005Z_AbCdEfGhIjKlMnOp.json.gz"
}

func (a archiveProbe) keys() []string {
	return []string{a.trail(), a.bucketArn + "/" + a.kp + "trailfill/manifests/111122223333/us-east-1/2025/04/17/0000.json",
		a.bucketArn + "/" + a.kp + "GitLab/gitlab/2025/04/17/1.json", a.bucketArn + "/project/2025/04/update_1_1744848000000.json"}
}

// appendOnlyViolations checks one resolved Allow statement against the
// archive's write rules: under AWSLogs/ no delete, no ACL change, and
// PutObject only with If-None-Match: * and bucket-owner-full-control; any
// PutObject in the archive with bucket-owner-full-control. It returns what
// the statement breaks, and whether it may create trail files.
func appendOnlyViolations(st map[string]any, archive archiveProbe) (violations []string, createsTrailFiles bool) {
	if st["Effect"] != "Allow" {
		return nil, false
	}
	if _, ok := st["NotAction"]; ok {
		return []string{"Allow with NotAction"}, false
	}
	if _, ok := st["NotResource"]; ok {
		return []string{"Allow with NotResource"}, false
	}
	allows := func(action string) bool {
		for _, a := range strs(st["Action"]) {
			if iamGlob(a, action, true) {
				return true
			}
		}
		return false
	}
	cond, _ := st["Condition"].(map[string]any)
	eq, _ := cond["StringEquals"].(map[string]any)
	for _, r := range strs(st["Resource"]) {
		if !iamGlob(r, archive.trail(), false) {
			inArchive := false
			for _, k := range archive.keys() {
				inArchive = inArchive || iamGlob(r, k, false)
			}
			if inArchive && allows("s3:PutObject") && eq[condACL] != CannedACL {
				violations = append(violations, fmt.Sprintf("s3:PutObject on %s without %s=%s", r, condACL, CannedACL))
			}
			continue
		}
		for _, a := range []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"} {
			if allows(a) {
				violations = append(violations, fmt.Sprintf("%s under AWSLogs/ (%s)", a, r))
			}
		}
		if allows("s3:PutObject") {
			if eq[condIfNoneMatch] != "*" || eq[condACL] != CannedACL {
				violations = append(violations, fmt.Sprintf("s3:PutObject under AWSLogs/ (%s) without %s=* and %s=%s", r, condIfNoneMatch, condACL, CannedACL))
			} else {
				createsTrailFiles = true
			}
		}
	}
	return violations, createsTrailFiles
}

func TestAppendOnlyChecker(t *testing.T) {
	archive := archiveProbe{bucketArn: "arn:aws:s3:::b", kp: "org/"}
	cases := []struct {
		name    string
		st      string
		bad     int
		creates bool
	}{
		{"delete everything", `{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}`, 5, false},
		{"delete by wildcard action", `{"Effect":"Allow","Action":["s3:Delete*"],"Resource":"arn:aws:s3:::b/org/AWSLogs/*"}`, 2, false},
		{"unconditional put", `{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}`, 1, false},
		{"put without the ACL", `{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/org/AWSLogs/*","Condition":{"StringEquals":{"s3:if-none-match":"*"}}}`, 1, false},
		{"Null instead of the value", `{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/org/AWSLogs/*","Condition":{"Null":{"s3:if-none-match":"false"}}}`, 1, false},
		{"state without the ACL", `{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/org/trailfill/*"}`, 1, false},
		{"create only", `{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/org/AWSLogs/*","Condition":{"StringEquals":{"s3:if-none-match":"*","s3:x-amz-acl":"bucket-owner-full-control"}}}`, 0, true},
		{"another prefix", `{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/other/AWSLogs/*"}`, 0, false},
		{"another bucket", `{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::bb/*"}`, 0, false},
		{"not action", `{"Effect":"Allow","NotAction":"s3:GetObject","Resource":"*"}`, 1, false},
		{"deny", `{"Effect":"Deny","Action":"s3:*","Resource":"*"}`, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st map[string]any
			if err := json.Unmarshal([]byte(tc.st), &st); err != nil {
				t.Fatal(err)
			}
			got, creates := appendOnlyViolations(st, archive)
			if len(got) != tc.bad || creates != tc.creates {
				t.Errorf("violations %q, creates %v; want %d, %v", got, creates, tc.bad, tc.creates)
			}
		})
	}
}

// allStatements returns every resolved policy statement of the app, by
// where it is: identity, bucket, topic and trust policies of every
// template, the StackSet's template body, and the printed bucket- and
// key-policy statements.
func allStatements(t *testing.T, s synthesized, partition string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for name, tp := range s.templates {
		env := appEnv(t, s, name, partition)
		for where, doc := range policyDocuments(tp) {
			out[name+"/"+where] = statements(env.eval(t, doc).(map[string]any))
		}
		for _, ss := range resources(tp, "AWS::CloudFormation::StackSet") {
			body, params := stackSetTemplate(t, ss["Properties"].(map[string]any))
			benv := cfnEnv{partition: partition, params: params}.withConditions(t, body)
			for where, doc := range policyDocuments(body) {
				out[name+"/StackSet/"+where] = statements(benv.eval(t, doc).(map[string]any))
			}
		}
		for k, sts := range printedStatements(t, s, name, partition) {
			out[name+"/output/"+k] = sts
		}
	}
	return out
}

// archiveOf is the archive of the app as appEnv names it.
func archiveOf(t *testing.T, s synthesized, cfg Config, partition string) archiveProbe {
	t.Helper()
	name := cfg.BucketName
	if name == "" {
		name = strings.ToLower(logicalID(t, s.templates["trailfill"], "AWS::S3::Bucket", "Archive"))
	}
	return archiveProbe{bucketArn: "arn:" + partition + ":s3:::" + name, kp: cfg.keyPrefix()}
}

func configOf(t *testing.T, kv map[string]any) Config {
	t.Helper()
	cfg, err := ConfigFromContext(ctx(kv))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAppendOnlyUnderAWSLogs checks every statement of every template of
// every synth mode: nothing may delete under AWSLogs/ or write there other
// than create-only with bucket-owner-full-control, and the writers that must
// create trail files can.
func TestAppendOnlyUnderAWSLogs(t *testing.T) {
	skipShort(t)
	for _, m := range synthModes {
		t.Run(m.name, func(t *testing.T) {
			s := m.synth(t)
			cfg := configOf(t, m.kv)
			archive := archiveOf(t, s, cfg, "aws")
			creators := map[string]bool{}
			n := 0
			for where, sts := range allStatements(t, s, "aws") {
				for _, st := range sts {
					n++
					bad, creates := appendOnlyViolations(st, archive)
					for _, b := range bad {
						t.Errorf("%s: %s in %s", where, b, asJSON(st))
					}
					if creates {
						creators[where] = true
					}
				}
			}
			if n < 20 {
				t.Fatalf("only %d statements found", n)
			}
			// The function's role, and for an existing bucket its printed
			// bucket-policy statement, may create trail files.
			want := []string{"trailfill/" + logicalID(t, s.templates["trailfill"], "AWS::IAM::Policy", "BackfillFunctionRoleDefaultPolicy")}
			if cfg.BucketName != "" {
				want = append(want, "trailfill/output/"+contract.OutputBucketPolicyStatement)
			}
			for _, w := range want {
				if !creators[w] {
					t.Errorf("%s cannot create trail files (creators: %v)", w, creators)
				}
			}
			// The function's role denies itself the rest under AWSLogs/.
			var denies []string
			for _, st := range roleStatements(t, s.templates["trailfill"], "BackfillFunctionRole") {
				if st["Effect"] == "Deny" {
					denies = append(denies, asJSON(st))
				}
			}
			if len(denies) != 2 || !strings.Contains(denies[0], `"s3:DeleteObject","s3:DeleteObjectVersion","s3:PutObjectAcl","s3:PutObjectVersionAcl"`) ||
				!strings.Contains(denies[1], `"StringNotEquals":{"s3:if-none-match":"*"}`) {
				t.Errorf("trail file denies: %v", denies)
			}
			// Nothing grants s3:PutObjectAcl anywhere (stacks/archive.go).
			for where, sts := range allStatements(t, s, "aws") {
				for _, st := range sts {
					for _, a := range strs(st["Action"]) {
						if st["Effect"] == "Allow" && iamGlob(a, "s3:PutObjectAcl", true) {
							t.Errorf("%s allows %s: %s", where, a, asJSON(st))
						}
					}
				}
			}
		})
	}
}

// TestListBucketLimitedToFolders: every s3:ListBucket of the archive is
// limited by StringLike on s3:prefix to the function's folders; no
// IfExists operator anywhere.
func TestListBucketLimitedToFolders(t *testing.T) {
	skipShort(t)
	for _, m := range synthModes {
		t.Run(m.name, func(t *testing.T) {
			s := m.synth(t)
			cfg := configOf(t, m.kv)
			if strings.Contains(asJSON(s.templates), "IfExists") {
				t.Error("a condition operator ...IfExists in the templates")
			}
			wantCond := `{"StringLike":{"s3:prefix":["` + cfg.keyPrefix() + `AWSLogs/*","` + cfg.keyPrefix() + `trailfill/*"]}}`
			lists := 0
			for where, sts := range allStatements(t, s, "aws") {
				for _, st := range sts {
					listsBucket := false
					for _, a := range strs(st["Action"]) {
						listsBucket = listsBucket || iamGlob(a, "s3:ListBucket", true)
					}
					if st["Effect"] != "Allow" || !listsBucket {
						continue
					}
					lists++
					c := map[string]any{}
					for k, v := range st["Condition"].(map[string]any) {
						if k != "ArnEquals" { // the printed statement's principal condition
							c[k] = v
						}
					}
					if asJSON(st["Action"]) != `"s3:ListBucket"` || asJSON(c) != wantCond {
						t.Errorf("%s: %s, want condition %s", where, asJSON(st), wantCond)
					}
				}
			}
			if want := 1 + map[bool]int{true: 1}[cfg.BucketName != ""]; lists != want {
				t.Errorf("%d list statements, want %d", lists, want)
			}
		})
	}
}

// TestKMSKey: with kmsKeyArn the function's role and the printed key-policy
// statement grant exactly kms:GenerateDataKey and kms:Decrypt on the key,
// through S3, and the function learns the key; the receiver encrypts only.
func TestKMSKey(t *testing.T) {
	skipShort(t)
	for _, m := range synthModes {
		t.Run(m.name, func(t *testing.T) {
			s := m.synth(t)
			cfg := configOf(t, m.kv)
			tp := s.templates["trailfill"]
			_, fn := only(t, tp, "AWS::Lambda::Function")
			env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			var kmsStatements []string
			for where, sts := range allStatements(t, s, "aws") {
				for _, st := range sts {
					if strings.Contains(asJSON(st["Action"]), "kms:") && !strings.Contains(where, "trailfill-gitlab") {
						kmsStatements = append(kmsStatements, where+" "+asJSON(st))
					}
				}
			}
			if cfg.KMSKeyArn == "" {
				if env[contract.EnvKMSKeyArn] != nil || len(kmsStatements) != 0 {
					t.Errorf("no key configured, yet %s / %v", asJSON(env), kmsStatements)
				}
				return
			}
			if env[contract.EnvKMSKeyArn] != cfg.KMSKeyArn {
				t.Errorf("%s = %v, want %s", contract.EnvKMSKeyArn, env[contract.EnvKMSKeyArn], cfg.KMSKeyArn)
			}
			policyID := logicalID(t, tp, "AWS::IAM::Policy", "BackfillFunctionRoleDefaultPolicy")
			roleArn := "arn:aws:iam::111122223333:role/" + logicalID(t, tp, "AWS::IAM::Role", "BackfillFunctionRole")
			via := `"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}`
			want := map[string]bool{
				"trailfill/" + policyID + ` {"Action":["kms:GenerateDataKey","kms:Decrypt"],"Condition":{` + via + `},"Effect":"Allow","Resource":"` + cfg.KMSKeyArn + `","Sid":"ArchiveKey"}`:                                                                                                                                         true,
				"trailfill/output/" + contract.OutputKMSKeyPolicyStatement + ` {"Action":["kms:GenerateDataKey","kms:Decrypt"],"Condition":{"ArnEquals":{"aws:PrincipalArn":"` + roleArn + `"},` + via + `},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Resource":"*","Sid":"TrailfillBackfillArchiveKey"}`: true,
			}
			for _, st := range kmsStatements {
				if !want[st] {
					t.Errorf("unexpected KMS statement %s", st)
				}
				delete(want, st)
			}
			for st := range want {
				t.Errorf("missing KMS statement %s", st)
			}
			if gl, ok := s.templates["trailfill-gitlab"]; ok {
				roleArn := "arn:aws:iam::111122223333:role/" + logicalID(t, gl, "AWS::IAM::Role", "ReceiverRole")
				if st := findStatement(t, gl, "ArchiveKey"); asJSON(appEnv(t, s, "trailfill-gitlab", "aws").eval(t, st)) !=
					`{"Action":"kms:GenerateDataKey","Condition":{`+via+`},"Effect":"Allow","Resource":"`+cfg.KMSKeyArn+`","Sid":"ArchiveKey"}` {
					t.Errorf("receiver key statement %s", asJSON(st))
				}
				printed := printedStatements(t, s, "trailfill-gitlab", "aws")[contract.OutputGitLabKMSKeyPolicyStatement]
				if len(printed) != 1 || asJSON(printed[0]) != `{"Action":"kms:GenerateDataKey","Condition":{"ArnEquals":{"aws:PrincipalArn":"`+roleArn+`"},`+via+`},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Resource":"*","Sid":"TrailfillGitLabReceiverArchiveKey"}` {
					t.Errorf("receiver key policy statement %s", asJSON(printed))
				}
			}
		})
	}
}

// TestPrintedPrincipals: every statement printed for the owner of a bucket or
// key in another account names the central account's root with an
// aws:PrincipalArn condition on the stack's role, never the role itself (a
// role ARN as Principal stops matching when the role is re-created).
func TestPrintedPrincipals(t *testing.T) {
	skipShort(t)
	seen := 0
	for _, m := range synthModes {
		t.Run(m.name, func(t *testing.T) {
			s := m.synth(t)
			for name, tp := range s.templates {
				roles := map[string]bool{}
				for id := range resources(tp, "AWS::IAM::Role") {
					roles["arn:aws:iam::111122223333:role/"+id] = true
				}
				for k, sts := range printedStatements(t, s, name, "aws") {
					for _, st := range sts {
						seen++
						pa, _ := st["Condition"].(map[string]any)["ArnEquals"].(map[string]any)
						if asJSON(st["Principal"]) != `{"AWS":"arn:aws:iam::111122223333:root"}` || pa == nil || !roles[pa["aws:PrincipalArn"].(string)] {
							t.Errorf("%s %s: principal %s, condition %s", name, k, asJSON(st["Principal"]), asJSON(st["Condition"]))
						}
					}
				}
			}
		})
	}
	if seen < 10 {
		t.Errorf("only %d printed statements checked", seen)
	}
}

// TestPartitions synthesizes once and resolves every template in each
// partition: the console URL uses the partition's console host, and no ARN
// the stacks build names the aws partition elsewhere.
func TestPartitions(t *testing.T) {
	skipShort(t)
	for _, m := range synthModes {
		t.Run(m.name, func(t *testing.T) {
			s := m.synth(t)
			// ARNs given in the configuration keep their partition.
			var given []string
			for _, v := range m.kv {
				if str, ok := v.(string); ok && strings.HasPrefix(str, "arn:") {
					given = append(given, str)
				}
			}
			for _, tc := range []struct{ partition, region, console string }{
				{"aws", "us-east-1", "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/statemachines/view/"},
				{"aws-cn", "cn-north-1", "https://console.amazonaws.cn/states/home?region=cn-north-1#/statemachines/view/"},
				{"aws-us-gov", "us-gov-west-1", "https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1#/statemachines/view/"},
			} {
				env := appEnv(t, s, "trailfill", tc.partition)
				url := env.eval(t, s.templates["trailfill"]["Outputs"].(map[string]any)[contract.OutputConsoleURL].(map[string]any)["Value"]).(string)
				smID := logicalID(t, s.templates["trailfill"], "AWS::StepFunctions::StateMachine", "StateMachine")
				if want := tc.console + "arn:" + tc.partition + ":states:" + tc.region + ":111122223333:stateMachine:" + smID; url != want {
					t.Errorf("%s console URL\n got %s\nwant %s", tc.partition, url, want)
				}
				if tc.partition == "aws" {
					continue
				}
				for name, tp := range s.templates {
					// Not the CDK bootstrap version check (Rules, Parameters).
					body := map[string]any{"Resources": tp["Resources"], "Outputs": tp["Outputs"]}
					resolved := appEnv(t, s, name, tc.partition).eval(t, body)
					text := asJSON(resolved)
					for _, g := range given {
						text = strings.ReplaceAll(text, g, "")
					}
					// The read-role template's parameter patterns say
					// arn:aws[a-z-]*, not arn:aws:.
					if i := strings.Index(text, "arn:aws:"); i >= 0 {
						t.Errorf("%s in %s: an ARN in the aws partition: ...%s...", name, tc.partition, text[max(0, i-80):min(len(text), i+120)])
					}
				}
			}
		})
	}
}

// TestAlarmTopicPolicy: the topic the stack creates for alarmEmail lets
// CloudWatch publish for this alarm only, next to the TLS-only Deny.
func TestAlarmTopicPolicy(t *testing.T) {
	skipShort(t)
	s := synthModes[0].synth(t)
	tp := s.templates["trailfill"]
	topicID, _ := only(t, tp, "AWS::SNS::Topic")
	alarmID, _ := only(t, tp, "AWS::CloudWatch::Alarm")
	_, pol := only(t, tp, "AWS::SNS::TopicPolicy")
	got := statements(pol["PolicyDocument"].(map[string]any))
	want := []string{
		`{"Action":"sns:Publish","Condition":{"Bool":{"aws:SecureTransport":"false"}},"Effect":"Deny","Principal":"*","Resource":{"Ref":"` + topicID + `"},"Sid":"AllowPublishThroughSSLOnly"}`,
		`{"Action":"sns:Publish","Condition":{"ArnEquals":{"aws:SourceArn":{"Fn::GetAtt":["` + alarmID + `","Arn"]}},"StringEquals":{"aws:SourceAccount":{"Ref":"AWS::AccountId"}}},"Effect":"Allow","Principal":{"Service":"cloudwatch.amazonaws.com"},"Resource":{"Ref":"` + topicID + `"},"Sid":"CloudWatchAlarmPublish"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("topic policy: %s", asJSON(got))
	}
	for i := range want {
		if asJSON(got[i]) != want[i] {
			t.Errorf("statement %d\n got %s\nwant %s", i, asJSON(got[i]), want[i])
		}
	}
	if asJSON(pol["Topics"]) != `[{"Ref":"`+topicID+`"}]` {
		t.Errorf("topic policy on %s", asJSON(pol["Topics"]))
	}
	_, alarm := only(t, tp, "AWS::CloudWatch::Alarm")
	if asJSON(alarm["AlarmActions"]) != `[{"Ref":"`+topicID+`"}]` {
		t.Errorf("alarm actions %s", asJSON(alarm["AlarmActions"]))
	}
}

// TestLambdaThrottleRetry: when Lambda concurrency runs out, the state
// machine keeps retrying long enough for several full Lambda runs (15 min
// each) to finish, and the retrier's Comment states the figures.
func TestLambdaThrottleRetry(t *testing.T) {
	var def struct {
		States map[string]struct {
			ItemProcessor struct {
				States map[string]struct {
					Retry []struct {
						Comment         string
						ErrorEquals     []string
						IntervalSeconds float64
						MaxAttempts     int
						BackoffRate     float64
						MaxDelaySeconds float64
						JitterStrategy  string
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(statemachine.Definition), &def); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, st := range def.States {
		for _, child := range st.ItemProcessor.States {
			for _, r := range child.Retry {
				if len(r.ErrorEquals) != 1 || r.ErrorEquals[0] != "Lambda.TooManyRequestsException" {
					continue
				}
				found++
				nominal := 0.0
				for attempt := 1; attempt <= r.MaxAttempts; attempt++ {
					d := r.IntervalSeconds * math.Pow(r.BackoffRate, float64(attempt-1))
					if r.MaxDelaySeconds > 0 {
						d = math.Min(d, r.MaxDelaySeconds)
					}
					nominal += d
				}
				// FULL jitter draws each delay uniformly between 0 and its
				// nominal value: half of it on average.
				expected := nominal
				if r.JitterStrategy == "FULL" {
					expected = nominal / 2
				}
				const lambdaRun = 15 * 60.0
				if expected < 3*lambdaRun {
					t.Errorf("expected total backoff %.0f s, want at least %.0f s (three full Lambda runs)", expected, 3*lambdaRun)
				}
				for _, fig := range []string{fmt.Sprintf("%s s (%.0f min)", thousands(nominal), nominal/60), fmt.Sprintf("%s s (%.0f min)", thousands(expected), expected/60)} {
					if !strings.Contains(r.Comment, fig) {
						t.Errorf("retrier Comment does not state %q: %s", fig, r.Comment)
					}
				}
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d Lambda.TooManyRequestsException retriers, want 1", found)
	}
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
