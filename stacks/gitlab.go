package stacks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/gitlab"
)

// DefaultGitLabAssetDir is where `make build-lambda` puts the GitLab receiver's
// bootstrap binary (linux/arm64), relative to the repository root.
const DefaultGitLabAssetDir = "build/gitlab-receiver"

// The receiver function's fixed sizing. GitLab waits at most 20 s for an
// answer; a request is one body of at most MaxGitLabBody bytes written as a
// few small objects, so a small function suffices (memory also buys CPU,
// which shortens the cold start that reads the tokens).
const (
	GitLabReceiverMemoryMB       = 256
	GitLabReceiverTimeoutSeconds = 30
)

// MaxGitLabBody is the largest gitlabMaxBody: a Function URL invocation
// carries at most 6 MB, and a body the URL base64-encodes grows by a third.
const MaxGitLabBody = gitlab.FunctionURLMaxBody

// minGitLabBody is the smallest gitlabMaxBody (one audit event is about 1 KB).
const minGitLabBody = 1 << 10

// GitLabConfig configures the GitLab receiver stack (context key gitlab=true
// and the gitlab* keys).
type GitLabConfig struct {
	Enabled bool
	// Source is the <source> key segment (GitLab/<source>/...).
	Source string
	// TokensParam is the name of the SSM SecureString parameter holding the
	// verification tokens, one per line. The user creates it (CloudFormation
	// cannot create a SecureString parameter).
	TokensParam string
	// TokensKMSKeyArn is the customer managed key encrypting the parameter;
	// empty: the AWS managed key aws/ssm.
	TokensKMSKeyArn string
	// MaxBody is the request body limit in bytes.
	MaxBody int64
	// ReservedConcurrency caps concurrent receivers (0: unreserved).
	ReservedConcurrency int
	// Layout is the key layout the receiver writes: GitLabLayoutDefault or
	// GitLabLayoutS3.
	Layout string
	// Prefix is the receiver's key prefix, without leading or trailing '/'
	// (default: the archive's prefix; may be empty: the bucket root).
	Prefix string
}

// GitLab key layouts (context key gitlabLayout, and `--layout` of the
// trailfill gitlab commands).
const (
	// GitLabLayoutDefault: [prefix/]GitLab/<source>/YYYY/MM/DD/<id>.json.
	GitLabLayoutDefault = contract.GitLabLayoutDefault
	// GitLabLayoutS3: GitLab's own Amazon S3 streaming layout under the prefix,
	// [prefix/]<entity_type>/YYYY/MM/<event_type>_<id>_<time_ms>.json
	// (facts.md 6), so that recovered events sit beside natively streamed ones.
	GitLabLayoutS3 = contract.GitLabLayoutGitLabS3
)

// keyPrefixOf is prefix with its trailing '/', or "".
func keyPrefixOf(prefix string) string {
	if prefix == "" {
		return ""
	}
	return prefix + "/"
}

// GitLabStackName is the name of the GitLab receiver stack.
func (c Config) GitLabStackName() string { return c.StackName + "-gitlab" }

// DefaultGitLabTokensParam is the tokens parameter name when gitlabTokensParam
// is not set: /<stackName>/gitlab/tokens.
func DefaultGitLabTokensParam(stackName string) string { return "/" + stackName + "/gitlab/tokens" }

var ssmParamRE = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+){1,15}$|^[A-Za-z0-9_.-]+$`)

// validateParamName checks an SSM parameter name: a plain name or a hierarchy
// /a/b/c (at most 15 levels) of letters, digits, '.', '-' and '_', not starting
// with the reserved aws or ssm.
func validateParamName(name string) error {
	if strings.HasPrefix(name, "arn:") {
		return fmt.Errorf("%q is an ARN: give the parameter's name, e.g. /trailfill/gitlab/tokens", name)
	}
	if len(name) > 1011 || !ssmParamRE.MatchString(name) {
		return fmt.Errorf("invalid SSM parameter name %q: use letters, digits, . - _ and a leading / for a hierarchy (e.g. /trailfill/gitlab/tokens)", name)
	}
	first := strings.ToLower(strings.SplitN(strings.TrimPrefix(name, "/"), "/", 2)[0])
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return fmt.Errorf("invalid SSM parameter name %q: names starting with aws or ssm are reserved", name)
	}
	return nil
}

// gitLabConfigFromContext reads the gitlab* context keys with s (the context
// value as a string). The values are checked even when gitlab is off, so a
// mistake shows before the stack is turned on; the result is the zero
// GitLabConfig then.
func gitLabConfigFromContext(s func(string) (string, error), stackName, archivePrefix string) (GitLabConfig, []error) {
	var errs []error
	get := func(k string) string {
		v, err := s(k)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	g := GitLabConfig{
		Source:      gitlab.DefaultSource,
		TokensParam: DefaultGitLabTokensParam(stackName),
		MaxBody:     gitlab.DefaultMaxBody,
		Layout:      GitLabLayoutDefault,
		Prefix:      archivePrefix,
	}
	if v := get(KeyGitLab); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("context %s=%q: use true or false", KeyGitLab, v))
		}
		g.Enabled = b
	}
	if v := get(KeyGitLabSource); v != "" {
		if err := gitlab.ValidateSource(v); err != nil {
			errs = append(errs, fmt.Errorf("context %s: %w", KeyGitLabSource, err))
		}
		g.Source = v
	}
	if v := get(KeyGitLabTokensParam); v != "" {
		if err := validateParamName(v); err != nil {
			errs = append(errs, fmt.Errorf("context %s: %w", KeyGitLabTokensParam, err))
		}
		g.TokensParam = v
	}
	if v := get(KeyGitLabTokensKMSKeyArn); v != "" {
		if !kmsKeyRE.MatchString(v) {
			errs = append(errs, fmt.Errorf("context %s=%q: give the ARN of the KMS key encrypting the tokens parameter (arn:aws:kms:<region>:<account>:key/<id>), or omit it for the AWS managed key aws/ssm", KeyGitLabTokensKMSKeyArn, v))
		}
		g.TokensKMSKeyArn = v
	}
	if v := get(KeyGitLabMaxBody); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < minGitLabBody || n > MaxGitLabBody {
			errs = append(errs, fmt.Errorf("context %s=%q: give the request body limit in bytes, a whole number from %d to %d (the Function URL payload limit)", KeyGitLabMaxBody, v, minGitLabBody, MaxGitLabBody))
		}
		g.MaxBody = n
	}
	if v := get(KeyGitLabReservedConcurrency); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			errs = append(errs, fmt.Errorf("context %s=%q: give the receiver's reserved concurrency, a whole number from 1 to 1000", KeyGitLabReservedConcurrency, v))
		}
		g.ReservedConcurrency = n
	}
	if v := get(KeyGitLabLayout); v != "" {
		if v != GitLabLayoutDefault && v != GitLabLayoutS3 {
			errs = append(errs, fmt.Errorf("context %s=%q: use %s (GitLab/<source>/YYYY/MM/DD/<id>.json) or %s (GitLab's own S3 streaming layout)", KeyGitLabLayout, v, GitLabLayoutDefault, GitLabLayoutS3))
		}
		g.Layout = v
	}
	if v := get(KeyGitLabPrefix); v != "" {
		// "/" is the bucket root.
		p := strings.Trim(v, "/")
		if !prefixRE.MatchString(p) || strings.Contains(p, "//") || len(p) > 200 {
			errs = append(errs, fmt.Errorf("context %s=%q: give the receiver's S3 key prefix (e.g. gitlab-audit), or / for the bucket root", KeyGitLabPrefix, v))
		}
		g.Prefix = p
	}
	// The receiver never writes into the trail folders or trailfill's state.
	for _, f := range []string{keyPrefixOf(archivePrefix) + TrailFolder, keyPrefixOf(archivePrefix) + ManifestFolder} {
		if strings.HasPrefix(keyPrefixOf(g.Prefix), f) {
			errs = append(errs, fmt.Errorf("context %s=%q is inside %s: give a prefix outside the archive's trail files and trailfill's state", KeyGitLabPrefix, g.Prefix, f))
		}
	}
	if !g.Enabled {
		return GitLabConfig{}, errs
	}
	return g, errs
}

// GitLabStackProps configure NewGitLabStack.
type GitLabStackProps struct {
	Config Config
	// AssetDir holds the receiver function's `bootstrap` executable.
	AssetDir string
	// Bucket is the archive bucket the backfill stack created; nil when
	// Config.BucketName names an existing bucket.
	Bucket awss3.IBucket
}

// GitLabStack is the GitLab audit event streaming receiver: a Lambda function
// behind a public Function URL (the streaming token authenticates requests),
// allowed only to create objects (create-only, like trail files) under
// <prefix>/GitLab/<source>/, or under <prefix>/ with the gitlab-s3 layout,
// in the archive bucket, and to read its tokens parameter.
type GitLabStack struct {
	awscdk.Stack
	Function awslambda.Function
	Role     awsiam.Role
	URL      awslambda.FunctionUrl
}

// NewGitLabStack defines the GitLab receiver stack in scope. Its errors are
// configuration errors the caller reports before synthesis.
func NewGitLabStack(scope constructs.Construct, props GitLabStackProps) (*GitLabStack, error) {
	cfg, gl := props.Config, props.Config.GitLab
	if !gl.Enabled {
		return nil, fmt.Errorf("the GitLab stack needs context %s=true", KeyGitLab)
	}
	if gl.Source == "" || gl.TokensParam == "" || gl.MaxBody <= 0 {
		return nil, errors.New("incomplete GitLab configuration: build it with ConfigFromContext")
	}
	if err := checkGitLabAsset(props.AssetDir); err != nil {
		return nil, err
	}
	if props.Bucket == nil && cfg.BucketName == "" {
		return nil, errors.New("the GitLab stack needs the archive bucket: the backfill stack's new bucket, or context " + KeyBucketName)
	}

	name := cfg.GitLabStackName()
	stack := awscdk.NewStack(scope, jsii.String(name), &awscdk.StackProps{
		StackName:   jsii.String(name),
		Description: jsii.String("trailfill: GitLab audit event streaming receiver (Lambda Function URL) writing to the archive of stack " + cfg.StackName),
	})
	awscdk.Tags_Of(stack).Add(jsii.String("trailfill"), jsii.String(cfg.StackName), nil)
	// A new bucket is imported from the backfill stack through an export
	// (Fn::ImportValue): CloudFormation then refuses to drop it from the
	// backfill stack while this stack exists, so turning gitlab off without
	// destroying this stack first fails visibly (docs/deploy.md, step 11.6).
	awscdk.CrossStackReferences_Of(stack).Consume(awscdk.ReferenceStrength_STRONG)
	s := &GitLabStack{Stack: stack}

	bucketName, bucketArn := archiveBucket(cfg, props.Bucket)
	// [prefix/]GitLab/<source>/, or [prefix/] for <entity_type>/YYYY/MM/...
	eventsFolder := keyPrefixOf(gl.Prefix) + gitlab.Layout(gl.Layout).EventWritePrefix(gl.Source)
	layoutDesc := "GitLab/<source>/YYYY/MM/DD/<id>.json"
	if gl.Layout == GitLabLayoutS3 {
		layoutDesc = "GitLab's S3 streaming layout, <entity_type>/YYYY/MM/<event_type>_<id>_<time_ms>.json"
	}
	folderDesc := eventsFolder
	if folderDesc == "" {
		folderDesc = "the bucket root"
	}
	// Create only, like trail files: every write is conditional (If-None-Match:
	// *) and carries bucket-owner-full-control (stacks/archive.go); the
	// receiver never reads, lists, overwrites or deletes.
	write := s3Grant{sid: "WriteGitLabEvents", actions: []string{"s3:PutObject"}, resources: []*string{objectArn(bucketArn, eventsFolder)}, conditions: createOnly()}
	paramArn := stack.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("ssm"),
		Resource:     jsii.String("parameter"),
		ResourceName: jsii.String(strings.TrimPrefix(gl.TokensParam, "/")),
		ArnFormat:    awscdk.ArnFormat_SLASH_RESOURCE_NAME,
	})

	// A fixed name with the region as suffix, like the backfill function's
	// role: the printed bucket-policy statement names it by ARN
	// (aws:PrincipalArn), which then survives a re-created role, and a second
	// deployment in another region gets its own role.
	s.Role = awsiam.NewRole(stack, jsii.String("ReceiverRole"), &awsiam.RoleProps{
		RoleName:    awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(name + "-"), awscdk.Aws_REGION()}),
		Description: jsii.String("trailfill GitLab receiver: creates event objects under " + folderDesc + " and reads its tokens parameter"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
	})
	role := s.Role
	role.AddToPolicy(write.statement())
	// GitLab's layout has open-ended top-level folders (one per entity type):
	// where its folder holds the trail files or trailfill's state, the
	// receiver is denied them outright.
	var keepOut []*string
	for _, f := range []string{cfg.keyPrefix() + TrailFolder, cfg.keyPrefix() + ManifestFolder} {
		if strings.HasPrefix(f, eventsFolder) {
			keepOut = append(keepOut, objectArn(bucketArn, f))
		}
	}
	if len(keepOut) > 0 {
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("StayOutOfTrailFolders"),
			Effect:    awsiam.Effect_DENY,
			Actions:   jsii.Strings("s3:PutObject"),
			Resources: &keepOut,
		}))
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadTokensParameter"),
		Actions:   jsii.Strings("ssm:GetParameter"),
		Resources: &[]*string{paramArn},
	}))
	// Decrypting the SecureString: only through SSM, and only for this
	// parameter (SSM passes the parameter's ARN as encryption context). The
	// AWS managed key aws/ssm has no ARN known before deployment: any key of
	// this account and region, under those conditions.
	keyArn := gl.TokensKMSKeyArn
	keyRes := stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("kms"), Resource: jsii.String("key"), ResourceName: jsii.String("*"),
		ArnFormat: awscdk.ArnFormat_SLASH_RESOURCE_NAME,
	})
	if keyArn != "" {
		keyRes = jsii.String(keyArn)
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DecryptTokensParameter"),
		Actions:   jsii.Strings("kms:Decrypt"),
		Resources: &[]*string{keyRes},
		Conditions: &map[string]any{"StringEquals": map[string]any{
			"kms:ViaService":                      awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("ssm."), awscdk.Aws_REGION(), jsii.String("."), awscdk.Aws_URL_SUFFIX()}),
			"kms:EncryptionContext:PARAMETER_ARN": paramArn,
		}},
	}))
	if cfg.KMSKeyArn != "" {
		// SSE-KMS archive: a single-part PutObject needs only GenerateDataKey
		// (the receiver reads nothing back), and only through S3.
		c := kmsViaS3()
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("ArchiveKey"),
			Actions:    jsii.Strings(gitLabKeyActions...),
			Resources:  jsii.Strings(cfg.KMSKeyArn),
			Conditions: &c,
		}))
	}

	nagSuppress(role,
		nag("AwsSolutions-IAM5", "The receiver stores one object per event, with generated names, under its one folder: the grant names the folder, not the objects, and admits only create-only writes (s3:if-none-match) with bucket-owner-full-control.",
			folderFinding(eventsFolder)),
		nag("AwsSolutions-IAM5", "The AWS managed key aws/ssm has no ARN known before deployment: any key of this account and region, but kms:Decrypt only through SSM (kms:ViaService) and only for the tokens parameter (kms:EncryptionContext:PARAMETER_ARN).",
			"Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*"),
	)

	logs := awslogs.NewLogGroup(stack, jsii.String("ReceiverLogs"), &awslogs.LogGroupProps{
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	setRetention(logs, cfg.LogRetentionDays)
	logs.GrantWrite(role)

	env := map[string]*string{
		contract.EnvGitLabBucket:      bucketName,
		contract.EnvGitLabSource:      jsii.String(gl.Source),
		contract.EnvGitLabTokensParam: jsii.String(gl.TokensParam),
		contract.EnvGitLabMaxBody:     jsii.String(strconv.FormatInt(gl.MaxBody, 10)),
	}
	if gl.Prefix != "" {
		env[contract.EnvGitLabPrefix] = jsii.String(gl.Prefix)
	}
	if gl.Layout == GitLabLayoutS3 {
		env[contract.EnvGitLabLayout] = jsii.String(gl.Layout)
	}
	if cfg.KMSKeyArn != "" {
		// Writes are SSE-KMS with the archive's key, like the backfill's.
		env[contract.EnvKMSKeyArn] = jsii.String(cfg.KMSKeyArn)
	}
	fnProps := &awslambda.FunctionProps{
		Description:   jsii.String("trailfill: GitLab audit event streaming destination; stores each event once under " + folderDesc),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  awslambda.Architecture_ARM_64(),
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(props.AssetDir), nil),
		Timeout:       awscdk.Duration_Seconds(jsii.Number(GitLabReceiverTimeoutSeconds)),
		MemorySize:    jsii.Number(GitLabReceiverMemoryMB),
		Role:          role,
		LogGroup:      logs,
		LoggingFormat: awslambda.LoggingFormat_JSON,
		Environment:   &env,
	}
	if gl.ReservedConcurrency > 0 {
		fnProps.ReservedConcurrentExecutions = jsii.Number(float64(gl.ReservedConcurrency))
	}
	s.Function = awslambda.NewFunction(stack, jsii.String("Receiver"), fnProps)
	// Public URL: GitLab cannot sign requests; the receiver authenticates each
	// one by its X-Gitlab-Event-Streaming-Token before reading the body.
	s.URL = s.Function.AddFunctionUrl(&awslambda.FunctionUrlOptions{
		AuthType:   awslambda.FunctionUrlAuthType_NONE,
		InvokeMode: awslambda.InvokeMode_BUFFERED,
	})

	out := func(key, desc string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(key), &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: v})
	}
	out(contract.OutputGitLabReceiverURL, "Destination URL of the GitLab streaming destination (HTTP endpoint)", s.URL.Url())
	out(contract.OutputGitLabReceiverRoleArn, "Role of the GitLab receiver function", role.RoleArn())
	out(contract.OutputGitLabReceiverFunctionName, "The GitLab receiver function (restart it after changing the tokens: docs/gitlab.md)", s.Function.FunctionName())
	out(contract.OutputGitLabTokensParameter, "SSM SecureString parameter the receiver reads its verification tokens from (one per line; you create it)", jsii.String(gl.TokensParam))
	out(contract.OutputGitLabArchiveLocation, "Where the receiver stores events ("+layoutDesc+")",
		awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3://"), bucketName, jsii.String("/" + eventsFolder)}))
	if cfg.BucketName != "" {
		printed := write
		printed.sid = "Events"
		out(contract.OutputGitLabBucketPolicyStatement, "Add this statement to the bucket policy of "+cfg.BucketName+" (required when the bucket is in another account)",
			stack.ToJsonString(printed.policyStatement("TrailfillGitLabReceiver", awscdk.Aws_ACCOUNT_ID(), role.RoleArn()), nil))
	}
	if cfg.KMSKeyArn != "" {
		out(contract.OutputGitLabKMSKeyPolicyStatement, "Add this statement to the key policy of "+cfg.KMSKeyArn+" (required when the key is in another account or its policy does not delegate to IAM)",
			stack.ToJsonString(keyPolicyStatement("TrailfillGitLabReceiverArchiveKey", gitLabKeyActions, awscdk.Aws_ACCOUNT_ID(), role.RoleArn()), nil))
	}
	return s, nil
}

// gitLabKeyActions are the receiver's uses of the archive's KMS key.
var gitLabKeyActions = []string{"kms:GenerateDataKey"}

// checkGitLabAsset verifies that the receiver function has been built.
func checkGitLabAsset(dir string) error {
	if dir == "" {
		return errors.New("no folder for the GitLab receiver's bootstrap: set GitLabStackProps.AssetDir")
	}
	p := filepath.Join(dir, "bootstrap")
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("the GitLab receiver function is not built (%w): run `make build-lambda` (GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o %s ./functions/gitlab-receiver)", err, p)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file: run `make build-lambda`", p)
	}
	return nil
}
