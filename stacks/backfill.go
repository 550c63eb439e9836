package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudformation"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine"
)

// Folders of the archive the backfill function may write, list and delete in,
// under the prefix: native trail files and trailfill's own manifests
// (archive.ManifestRoot is inside ManifestFolder).
const (
	TrailFolder    = "AWSLogs/"
	ManifestFolder = "trailfill/"
)

// DefaultAssetDir is where `make build-lambda` puts the backfill function's
// bootstrap binary (linux/arm64), relative to the repository root.
const DefaultAssetDir = "build/backfill"

// BackfillStackProps configure NewBackfillStack.
type BackfillStackProps struct {
	Config Config
	// AssetDir holds the backfill function's `bootstrap` executable.
	AssetDir string
	// ReadRoleTemplate is the StackSet template body (ReadRoleTemplate()); it is
	// required when Config.ReadRoles is a StackSet mode.
	ReadRoleTemplate string
}

// BackfillStack is the trailfill stack: the backfill function, the state
// machine, the archive destination, the failure alarm and, in the StackSet
// modes, the read-role StackSet.
type BackfillStack struct {
	awscdk.Stack
	Function     awslambda.Function
	FunctionRole awsiam.Role
	StateMachine awsstepfunctions.StateMachine
	Bucket       awss3.Bucket // nil when the archive is an existing bucket
	StackSet     awscloudformation.CfnStackSet
	FailedAlarm  awscloudwatch.Alarm
}

// NewBackfillStack defines the trailfill stack in scope. Its errors are
// configuration errors the caller reports before synthesis.
func NewBackfillStack(scope constructs.Construct, props BackfillStackProps) (*BackfillStack, error) {
	cfg := props.Config
	if err := checkAsset(props.AssetDir); err != nil {
		return nil, err
	}
	stackSet := cfg.ReadRoles == ReadRolesStackSetOrg || cfg.ReadRoles == ReadRolesStackSetAccounts
	if stackSet && props.ReadRoleTemplate == "" {
		return nil, errors.New("the read-role StackSet needs its template body: pass ReadRoleTemplate()")
	}
	labels, err := distributedMapLabels(statemachine.Definition)
	if err != nil {
		return nil, err
	}

	stack := awscdk.NewStack(scope, jsii.String(cfg.StackName), &awscdk.StackProps{
		StackName:   jsii.String(cfg.StackName),
		Description: jsii.String("trailfill: recovers CloudTrail management events (LookupEvents) into S3 in the native trail layout"),
	})
	// The stack and every resource (the read-role stacks too, through the
	// StackSet) carry trailfill=<stackName>.
	awscdk.Tags_Of(stack).Add(jsii.String("trailfill"), jsii.String(cfg.StackName), nil)
	s := &BackfillStack{Stack: stack}

	// Archive destination.
	var kmsKey awskms.IKey
	if cfg.KMSKeyArn != "" {
		kmsKey = awskms.Key_FromKeyArn(stack, jsii.String("ArchiveKey"), jsii.String(cfg.KMSKeyArn))
	}
	if cfg.BucketName == "" {
		s.Bucket = newArchiveBucket(stack, cfg, kmsKey)
	}
	bucketName, bucketArn := archiveBucket(cfg, s.Bucket)
	keyPrefix := cfg.keyPrefix()
	// The function writes trail files under AWSLogs/ and manifests under trailfill/.
	writePrefixes := []string{keyPrefix + TrailFolder, keyPrefix + ManifestFolder}
	var objectArns []*string
	var listPrefixes []string
	for _, p := range writePrefixes {
		objectArns = append(objectArns, awscdk.Fn_Join(jsii.String(""), &[]*string{bucketArn, jsii.String("/" + p + "*")}))
		listPrefixes = append(listPrefixes, p+"*")
	}

	// The backfill function's role: a fixed name, so read roles in other
	// accounts can name it in their trust policies.
	s.FunctionRole = awsiam.NewRole(stack, jsii.String("BackfillFunctionRole"), &awsiam.RoleProps{
		RoleName:    awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(cfg.LambdaRoleName() + "-"), awscdk.Aws_REGION()}),
		Description: jsii.String("trailfill backfill function: assumes the trailfill read roles, reads LookupEvents, writes the archive"),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
	})
	role := s.FunctionRole
	assumeResources := []*string{}
	accounts := cfg.ReadAccounts
	if len(accounts) == 0 {
		accounts = []string{"*"}
	}
	for _, a := range accounts {
		assumeResources = append(assumeResources, awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":iam::" + a + ":role/" + cfg.ReadRoleName)}))
	}
	assume := &awsiam.PolicyStatementProps{
		Sid:       jsii.String("AssumeReadRoles"),
		Actions:   jsii.Strings("sts:AssumeRole"),
		Resources: &assumeResources,
	}
	if cfg.OrgID != "" {
		assume.Conditions = &map[string]any{"StringEquals": map[string]any{"aws:ResourceOrgID": cfg.OrgID}}
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(assume))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		// The deploying account's own events are read without a role.
		// LookupEvents has no resource-level permissions.
		Sid:       jsii.String("LookupEventsOwnAccount"),
		Actions:   jsii.Strings("cloudtrail:LookupEvents"),
		Resources: jsii.Strings("*"),
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ArchiveObjects"),
		Actions:   jsii.Strings("s3:PutObject", "s3:GetObject", "s3:DeleteObject"),
		Resources: &objectArns,
	}))
	listCond := listCondition(listPrefixes)
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("ArchiveList"),
		Actions:    jsii.Strings("s3:ListBucket"),
		Resources:  &[]*string{bucketArn},
		Conditions: &listCond,
	}))
	if cfg.KMSKeyArn != "" {
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ArchiveKey"),
			Actions:   jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
			Resources: jsii.Strings(cfg.KMSKeyArn),
		}))
	}

	// The backfill function.
	fnLogs := awslogs.NewLogGroup(stack, jsii.String("BackfillFunctionLogs"), &awslogs.LogGroupProps{
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	setRetention(fnLogs, cfg.LogRetentionDays)
	fnLogs.GrantWrite(role)
	env := map[string]*string{
		contract.EnvBucket:   bucketName,
		contract.EnvRoleName: jsii.String(cfg.ReadRoleName),
	}
	if cfg.Prefix != "" {
		env[contract.EnvPrefix] = jsii.String(cfg.Prefix)
	}
	if cfg.OrgTrail {
		env[contract.EnvOrgID] = jsii.String(cfg.OrgID)
	}
	if cfg.Rate > 0 {
		env[contract.EnvRate] = jsii.String(strconv.FormatFloat(cfg.Rate, 'f', -1, 64))
	}
	if cfg.StopMargin > 0 {
		env[contract.EnvStopMargin] = jsii.String(strconv.Itoa(cfg.StopMargin))
	}
	fnProps := &awslambda.FunctionProps{
		Description:   jsii.String("trailfill: archives one (account, region) partition from CloudTrail LookupEvents and returns its cursor"),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  awslambda.Architecture_ARM_64(),
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(props.AssetDir), nil),
		Timeout:       awscdk.Duration_Minutes(jsii.Number(15)),
		MemorySize:    jsii.Number(float64(cfg.MemoryMB)),
		Role:          role,
		LogGroup:      fnLogs,
		LoggingFormat: awslambda.LoggingFormat_JSON,
		Environment:   &env,
	}
	if cfg.ReservedConcurrency > 0 {
		fnProps.ReservedConcurrentExecutions = jsii.Number(float64(cfg.ReservedConcurrency))
	}
	s.Function = awslambda.NewFunction(stack, jsii.String("BackfillFunction"), fnProps)

	// The state machine: the very definition `trailfill run` executes locally.
	smName := cfg.StateMachineName()
	smLogs := awslogs.NewLogGroup(stack, jsii.String("StateMachineLogs"), &awslogs.LogGroupProps{
		// /aws/vendedlogs/ keeps the CloudWatch Logs resource policy small; the
		// stack ID suffix lets a re-created stack coexist with retained logs.
		LogGroupName: awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("/aws/vendedlogs/states/" + smName + "-"),
			awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), awscdk.Aws_STACK_ID(), nil)),
		}),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	setRetention(smLogs, cfg.LogRetentionDays)
	s.StateMachine = awsstepfunctions.NewStateMachine(stack, jsii.String("StateMachine"), &awsstepfunctions.StateMachineProps{
		StateMachineName:        jsii.String(smName),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(statemachine.Definition)),
		DefinitionSubstitutions: definitionSubstitutions(s.Function.FunctionArn()),
		Logs: &awsstepfunctions.LogOptions{
			Destination:          smLogs,
			Level:                awsstepfunctions.LogLevel_ERROR,
			IncludeExecutionData: jsii.Bool(true),
		},
	})
	sm := s.StateMachine
	s.Function.GrantInvoke(sm)
	// Distributed Map: the state machine starts, describes and stops its own
	// child executions, and redrives its map runs. The ARNs are built from the
	// fixed name: referring to the state machine itself would be circular.
	arn := func(resource, name string) *string {
		return stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("states"), Resource: jsii.String(resource), ResourceName: jsii.String(name),
			ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
		})
	}
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapStart"),
		Actions:   jsii.Strings("states:StartExecution"),
		Resources: &[]*string{arn("stateMachine", smName)},
	}))
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapExecutions"),
		Actions:   jsii.Strings("states:DescribeExecution", "states:StopExecution"),
		Resources: &[]*string{arn("execution", smName+":*"), arn("execution", smName+"/*")},
	}))
	var redrive []*string
	for _, l := range labels {
		redrive = append(redrive, arn("execution", smName+"/"+l+":*"))
	}
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapRedrive"),
		Actions:   jsii.Strings("states:RedriveExecution"),
		Resources: &redrive,
	}))

	// Alarm on failed executions.
	s.FailedAlarm = awscloudwatch.NewAlarm(stack, jsii.String("ExecutionsFailedAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("A trailfill backfill execution failed. Open the execution (stack output ConsoleUrl), read the cause of 'Backfill failed', fix it and start the same backfill again: archived windows are skipped."),
		Metric: sm.MetricFailed(&awscloudwatch.MetricOptions{
			Period:    awscdk.Duration_Minutes(jsii.Number(5)),
			Statistic: jsii.String("Sum"),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	if cfg.AlarmEmail != "" {
		topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String("trailfill backfill alarms"),
			EnforceSSL:  jsii.Bool(true),
		})
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
		s.FailedAlarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
	}
	if cfg.AlarmTopicArn != "" {
		topic := awssns.Topic_FromTopicArn(stack, jsii.String("ExistingAlarmTopic"), jsii.String(cfg.AlarmTopicArn))
		s.FailedAlarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
	}

	// Read roles through a StackSet.
	if stackSet {
		s.StackSet = newReadRoleStackSet(stack, cfg, role.RoleArn(), props.ReadRoleTemplate)
	}

	// Outputs (what `trailfill start` and the operator need).
	out := func(key, desc string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(key), &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: v})
	}
	out(contract.OutputStateMachineArn, "Backfill state machine (trailfill start)", sm.StateMachineArn())
	out(contract.OutputArchiveBucket, "Archive bucket", bucketName)
	if cfg.Prefix != "" {
		// CloudFormation rejects an empty output value: no prefix, no output.
		out(contract.OutputArchivePrefix, "Key prefix in the archive bucket (before AWSLogs/); absent: none", jsii.String(cfg.Prefix))
	}
	dest := []*string{jsii.String("s3://"), bucketName}
	if cfg.Prefix != "" {
		dest = append(dest, jsii.String("/"+cfg.Prefix))
	}
	out(contract.OutputArchiveDestination, "The archive as trailfill's --out (trailfill verify --out ...)", awscdk.Fn_Join(jsii.String(""), &dest))
	out(contract.OutputReadRoleName, "Read role name assumed in other accounts (trailfill --role-name)", jsii.String(cfg.ReadRoleName))
	out(contract.OutputBackfillFunctionRoleArn, "Role of the backfill function: the principal the read roles and the bucket policy trust", role.RoleArn())
	out(contract.OutputConsoleURL, "Step Functions console for the backfill state machine", awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https://"), awscdk.Aws_REGION(), jsii.String(".console.aws.amazon.com/states/home?region="), awscdk.Aws_REGION(),
		jsii.String("#/statemachines/view/"), sm.StateMachineArn(),
	}))
	if cfg.BucketName != "" {
		out(contract.OutputBucketPolicyStatement, "Add these statements to the bucket policy of "+cfg.BucketName+" (required when the bucket is in another account)",
			stack.ToJsonString(bucketPolicyStatements(role.RoleArn(), bucketArn, objectArns, listPrefixes), nil))
		if cfg.KMSKeyArn != "" {
			out(contract.OutputKMSKeyPolicyStatement, "Add this statement to the key policy of "+cfg.KMSKeyArn+" (required when the key is in another account or its policy does not delegate to IAM)",
				stack.ToJsonString(keyPolicyStatement(role.RoleArn()), nil))
		}
	}
	if s.StackSet != nil {
		out(contract.OutputReadRoleStackSet, "StackSet deploying the read roles", jsii.String(cfg.ReadRoleStackName()))
	}
	return s, nil
}

// definitionSubstitutions fills the definition's placeholders
// (statemachine.Substitutions) with the function's ARN as a token.
func definitionSubstitutions(functionArn *string) *map[string]*string {
	const marker = "\x00function\x00"
	subs := map[string]*string{}
	for k, v := range statemachine.Substitutions(marker) {
		if v == marker {
			subs[k] = functionArn
			continue
		}
		subs[k] = jsii.String(v)
	}
	return &subs
}

// archiveBucket returns the name and ARN of the archive bucket: created, the
// bucket the backfill stack made, or, when created is nil, the existing bucket
// cfg.BucketName. The GitLab stack resolves it the same way.
func archiveBucket(cfg Config, created awss3.IBucket) (name, arn *string) {
	if created != nil {
		return created.BucketName(), created.BucketArn()
	}
	return jsii.String(cfg.BucketName),
		awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":s3:::" + cfg.BucketName)})
}

// keyPrefix is the archive's key prefix with its trailing '/', or "".
func (c Config) keyPrefix() string {
	if c.Prefix == "" {
		return ""
	}
	return c.Prefix + "/"
}

// newArchiveBucket creates the archive bucket: private, TLS-only, encrypted,
// versioned, optionally Object Lock, retained when the stack is deleted.
func newArchiveBucket(stack awscdk.Stack, cfg Config, key awskms.IKey) awss3.Bucket {
	props := &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		Versioned:         jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	}
	if key != nil {
		props.Encryption = awss3.BucketEncryption_KMS
		props.EncryptionKey = key
		props.BucketKeyEnabled = jsii.Bool(true)
	}
	if cfg.ObjectLock {
		props.ObjectLockEnabled = jsii.Bool(true)
		if cfg.ObjectLockDays > 0 {
			d := awscdk.Duration_Days(jsii.Number(float64(cfg.ObjectLockDays)))
			if cfg.ObjectLockMode == "COMPLIANCE" {
				props.ObjectLockDefaultRetention = awss3.ObjectLockRetention_Compliance(d)
			} else {
				props.ObjectLockDefaultRetention = awss3.ObjectLockRetention_Governance(d)
			}
		}
	}
	return awss3.NewBucket(stack, jsii.String("Archive"), props)
}

// newReadRoleStackSet deploys the read-role template to the target accounts.
func newReadRoleStackSet(stack awscdk.Stack, cfg Config, trustedRoleArn *string, template string) awscloudformation.CfnStackSet {
	// Every parameter, empty ones included: an omitted one could keep an earlier
	// value on update.
	param := func(k string, v *string) any {
		return &awscloudformation.CfnStackSet_ParameterProperty{ParameterKey: jsii.String(k), ParameterValue: v}
	}
	params := []any{
		param(ParamTrustedRoleArn, trustedRoleArn),
		param(ParamReadRoleName, jsii.String(cfg.ReadRoleName)),
		param(ParamOrganizationID, jsii.String(cfg.OrgID)),
		param(ParamLocalPrincipalArn, jsii.String(cfg.LocalPrincipalArn)),
	}
	props := &awscloudformation.CfnStackSetProps{
		StackSetName: jsii.String(cfg.ReadRoleStackName()),
		Description:  jsii.String("trailfill read roles (cloudtrail:LookupEvents) trusted by the backfill function of stack " + cfg.StackName),
		Capabilities: jsii.Strings("CAPABILITY_NAMED_IAM"),
		// ManagedExecution is untyped JSON in the resource schema: the struct
		// would render as {"active": ...}; give the CloudFormation keys.
		ManagedExecution: map[string]any{"Active": true},
		OperationPreferences: &awscloudformation.CfnStackSet_OperationPreferencesProperty{
			// Every account at once; any failed account fails the operation (visible
			// in the deploy) instead of leaving a silent gap.
			ConcurrencyMode:         jsii.String("SOFT_FAILURE_TOLERANCE"),
			MaxConcurrentPercentage: jsii.Number(100),
			FailureToleranceCount:   jsii.Number(0),
			RegionConcurrencyType:   jsii.String("PARALLEL"),
		},
		Parameters:   &params,
		TemplateBody: jsii.String(template),
	}
	// IAM is global: one region per account holds the role.
	regions := jsii.Strings(cfg.TargetRegion)
	if cfg.ReadRoles == ReadRolesStackSetOrg {
		props.PermissionModel = jsii.String("SERVICE_MANAGED")
		props.CallAs = jsii.String(cfg.StackSetCallAs)
		props.AutoDeployment = &awscloudformation.CfnStackSet_AutoDeploymentProperty{
			Enabled:                      jsii.Bool(true),
			RetainStacksOnAccountRemoval: jsii.Bool(false),
		}
		props.StackInstancesGroup = &[]any{&awscloudformation.CfnStackSet_StackInstancesProperty{
			DeploymentTargets: &awscloudformation.CfnStackSet_DeploymentTargetsProperty{OrganizationalUnitIds: jsii.Strings(cfg.TargetOUIDs...)},
			Regions:           regions,
		}}
	} else {
		props.PermissionModel = jsii.String("SELF_MANAGED")
		if cfg.StackSetAdminRoleArn != "" {
			props.AdministrationRoleArn = jsii.String(cfg.StackSetAdminRoleArn)
		}
		if cfg.StackSetExecutionRoleName != "" {
			props.ExecutionRoleName = jsii.String(cfg.StackSetExecutionRoleName)
		}
		props.StackInstancesGroup = &[]any{&awscloudformation.CfnStackSet_StackInstancesProperty{
			DeploymentTargets: &awscloudformation.CfnStackSet_DeploymentTargetsProperty{Accounts: jsii.Strings(cfg.TargetAccounts...)},
			Regions:           regions,
		}}
	}
	return awscloudformation.NewCfnStackSet(stack, jsii.String("ReadRoles"), props)
}

// bucketPolicyStatements is what the owner of an existing archive bucket adds
// to its bucket policy: the same object and list permissions as the function's
// IAM policy, for the function's role.
func bucketPolicyStatements(roleArn, bucketArn *string, objectArns []*string, listPrefixes []string) []any {
	principal := map[string]any{"AWS": roleArn}
	return []any{
		map[string]any{
			"Sid":       "TrailfillBackfillObjects",
			"Effect":    "Allow",
			"Principal": principal,
			"Action":    []string{"s3:PutObject", "s3:GetObject", "s3:DeleteObject"},
			"Resource":  objectArns,
		},
		map[string]any{
			"Sid":       "TrailfillBackfillList",
			"Effect":    "Allow",
			"Principal": principal,
			"Action":    "s3:ListBucket",
			"Resource":  bucketArn,
			"Condition": listCondition(listPrefixes),
		},
	}
}

// listCondition limits s3:ListBucket to the function's folders. IfExists: S3
// answers a GetObject of a missing key with 404 only when the caller may
// s3:ListBucket, and that check carries no s3:prefix; with a plain StringLike
// the function would get 403 AccessDenied where it expects NoSuchKey (a slice
// with no events, a manifest not written yet).
func listCondition(prefixes []string) map[string]any {
	return map[string]any{"StringLikeIfExists": map[string]any{"s3:prefix": prefixes}}
}

// keyPolicyStatement is what the owner of the archive's KMS key adds to its key
// policy.
func keyPolicyStatement(roleArn *string) map[string]any {
	return map[string]any{
		"Sid":       "TrailfillBackfillArchiveKey",
		"Effect":    "Allow",
		"Principal": map[string]any{"AWS": roleArn},
		"Action":    []string{"kms:GenerateDataKey", "kms:Decrypt"},
		"Resource":  "*",
	}
}

// setRetention sets a log group's retention in days (any value CloudWatch
// Logs accepts) on the underlying resource.
func setRetention(lg awslogs.LogGroup, days int) {
	lg.Node().DefaultChild().(awslogs.CfnLogGroup).SetRetentionInDays(jsii.Number(float64(days)))
}

// checkAsset verifies that the backfill function has been built.
func checkAsset(dir string) error {
	if dir == "" {
		return errors.New("no folder for the backfill function's bootstrap: set BackfillStackProps.AssetDir")
	}
	fi, err := os.Stat(filepath.Join(dir, "bootstrap"))
	if err != nil {
		return fmt.Errorf("the backfill function is not built (%w): run `make build-lambda` (GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o %s/bootstrap ./functions/backfill)", err, dir)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file: run `make build-lambda`", filepath.Join(dir, "bootstrap"))
	}
	return nil
}

// distributedMapLabels returns the labels of the Distributed Map states of an
// ASL definition ("*" for one without a label): the map-run part of its child
// execution ARNs.
func distributedMapLabels(def string) ([]string, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(def), &doc); err != nil {
		return nil, fmt.Errorf("parse the state machine definition: %w", err)
	}
	set := map[string]bool{}
	var walk func(states map[string]any)
	walk = func(states map[string]any) {
		for _, v := range states {
			st, _ := v.(map[string]any)
			proc, _ := st["ItemProcessor"].(map[string]any)
			if proc == nil {
				proc, _ = st["Iterator"].(map[string]any)
			}
			if proc != nil {
				cfg, _ := proc["ProcessorConfig"].(map[string]any)
				if mode, _ := cfg["Mode"].(string); mode == "DISTRIBUTED" {
					label, _ := st["Label"].(string)
					if label == "" {
						label = "*"
					}
					set[label] = true
				}
				sub, _ := proc["States"].(map[string]any)
				walk(sub)
			}
			if branches, ok := st["Branches"].([]any); ok {
				for _, b := range branches {
					bm, _ := b.(map[string]any)
					sub, _ := bm["States"].(map[string]any)
					walk(sub)
				}
			}
		}
	}
	top, _ := doc["States"].(map[string]any)
	walk(top)
	labels := make([]string, 0, len(set))
	for l := range set {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	if len(labels) == 0 {
		labels = []string{"*"}
	}
	return labels, nil
}
