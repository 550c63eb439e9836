package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

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

// Folders of the archive under the prefix: native and recovered trail files
// (append-only for the deployed roles), and trailfill's own state: manifests,
// indexes, claims, reconcile intents (archive.ManifestRoot is inside
// ManifestFolder).
const (
	TrailFolder    = "AWSLogs/"
	ManifestFolder = "trailfill/"
)

// Folders of the staging bucket (output StagingBucket), in the state
// machine's own account and region: the Distributed Map reads its items
// (partitions) from StagingInputsFolder (ItemReader) and writes its child
// results under StagingResultsFolder (ResultWriter). Objects expire after
// StagingExpirationDays.
const (
	StagingInputsFolder   = contract.StagingInputsFolder
	StagingResultsFolder  = contract.StagingResultsFolder
	StagingExpirationDays = 30
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
	Staging      awss3.Bucket // the state machine's staging bucket
	StackSet     awscloudformation.CfnStackSet
	FailedAlarm  awscloudwatch.Alarm
	AlarmTopic   awssns.Topic // with alarmEmail
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
	// Server access logs are delivered under a bucket policy for the logging
	// service principal, not the legacy LogDeliveryWrite ACL, which "Bucket
	// owner enforced" ownership forbids (CDK feature flag, set for this stack).
	stack.Node().SetContext(jsii.String("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"), true)
	s := &BackfillStack{Stack: stack}

	// Archive destination.
	var kmsKey awskms.IKey
	if cfg.KMSKeyArn != "" {
		kmsKey = awskms.Key_FromKeyArn(stack, jsii.String("ArchiveKey"), jsii.String(cfg.KMSKeyArn))
	}
	accessLogs := newAccessLogsBucket(stack)
	if cfg.BucketName == "" {
		s.Bucket = newArchiveBucket(stack, cfg, kmsKey, accessLogs)
	}
	s.Staging = newStagingBucket(stack, accessLogs)
	bucketName, bucketArn := archiveBucket(cfg, s.Bucket)
	keyPrefix := cfg.keyPrefix()
	grants := backfillGrants(bucketArn, keyPrefix)

	// The backfill function's role: a fixed name, so read roles in other
	// accounts can name it in their trust policies, with the region as suffix
	// (IAM is global: a second deployment in another region gets its own role).
	s.FunctionRole = awsiam.NewRole(stack, jsii.String("BackfillFunctionRole"), &awsiam.RoleProps{
		RoleName:    awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(cfg.LambdaRoleName() + "-"), awscdk.Aws_REGION()}),
		Description: jsii.String("trailfill backfill function: assumes the trailfill read roles, reads LookupEvents, creates trail files in the archive"),
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
	for _, g := range grants {
		role.AddToPolicy(g.statement())
	}
	protectTrailFiles(role, objectArn(bucketArn, keyPrefix+TrailFolder))
	if cfg.KMSKeyArn != "" {
		// SSE-KMS: PutObject needs kms:GenerateDataKey, GetObject kms:Decrypt
		// ("Using server-side encryption with AWS KMS keys (SSE-KMS)", S3 User
		// Guide, "Permissions").
		c := kmsViaS3()
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("ArchiveKey"),
			Actions:    jsii.Strings(archiveKeyActions...),
			Resources:  jsii.Strings(cfg.KMSKeyArn),
			Conditions: &c,
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
	if cfg.KMSKeyArn != "" {
		env[contract.EnvKMSKeyArn] = jsii.String(cfg.KMSKeyArn)
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
	nagSuppress(role,
		nag("AwsSolutions-IAM5", "cloudtrail:LookupEvents has no resource-level permissions (Service Authorization Reference, AWS CloudTrail: LookupEvents lists no resource type), so it is granted on \"*\"; without a role it reads only this account's own event history.",
			"Resource::*"),
		nag("AwsSolutions-IAM5", "The read role has the same name in every account to recover. Which accounts the function reaches is decided by the read roles' trust (only this role, by aws:PrincipalArn), by aws:ResourceOrgID with orgId, and by readAccounts, which replaces the * with the listed accounts.",
			"Resource::arn:<AWS::Partition>:iam::*:role/"+cfg.ReadRoleName),
		nag("AwsSolutions-IAM5", "Trail files and trailfill's state are many objects with generated names under two fixed folders: the grants name the folders, not the objects. Writes under AWSLogs/ are create-only (s3:if-none-match) and deletes and ACL changes there are denied (stacks/archive.go).",
			folderFinding(keyPrefix+TrailFolder), folderFinding(keyPrefix+ManifestFolder)),
	)

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
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(partitionedDefinition(statemachine.Definition))),
		DefinitionSubstitutions: definitionSubstitutions(s.Function.FunctionArn(), s.Staging.BucketName()),

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
	var redrive, mapRuns []*string
	for _, l := range labels {
		redrive = append(redrive, arn("execution", smName+"/"+l+":*"))
		mapRuns = append(mapRuns, arn("mapRun", smName+"/"+l+":*"))
	}
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapRedrive"),
		Actions:   jsii.Strings("states:RedriveExecution"),
		Resources: &redrive,
	}))
	// The "Count partition outcomes" state (aws-sdk:sfn:describeMapRun)
	// reads its own Map Run's counts: Map Runs are the resource type mapRun,
	// arn:...:mapRun:<state machine>/<label>:<Map Run ID> (Service
	// Authorization Reference, AWS Step Functions).
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DistributedMapCounts"),
		Actions:   jsii.Strings("states:DescribeMapRun"),
		Resources: &mapRuns,
	}))
	grantStaging(sm, s.Staging)
	execFindings := []string{
		"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:" + smName + ":*",
		"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:" + smName + "/*",
	}
	for _, l := range labels {
		execFindings = append(execFindings, "Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"+smName+"/"+l+":*",
			"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:mapRun:"+smName+"/"+l+":*")
	}
	nagSuppress(sm,
		nag("AwsSolutions-SF1", "Level ERROR with execution data logs every failure with its input and cause. ALL would log each of the millions of state transitions of a large backfill (every window loop and retry) at CloudWatch Logs ingestion prices; Step Functions keeps each execution's full history for 90 days anyway."),
		nag("AwsSolutions-SF2", "The workflow is one Lambda task in a loop per partition: its timing is in the Lambda and Step Functions metrics and each failure carries its partition and window in the cause. X-Ray would add a trace per child execution (thousands per backfill) for no further insight."),
		nag("AwsSolutions-IAM5", "The CloudWatch Logs delivery actions that Step Functions logging needs (logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies, DescribeLogGroups) support only Resource \"*\" (Step Functions Developer Guide, \"IAM policies for logging to CloudWatch Logs\"); CDK adds them.",
			"Resource::*"),
		nag("AwsSolutions-IAM5", "lambda:InvokeFunction on the backfill function's own versions and aliases (CDK's grantInvoke): this one function only.",
			`/^Resource::<BackfillFunction[0-9A-F]+\.Arn>:\*$/`),
		nag("AwsSolutions-IAM5", "Distributed Map child executions and map runs get generated names: the grants cover the executions of this state machine only (Step Functions Developer Guide, \"IAM policies for using Distributed Map states\").",
			execFindings...),
		nag("AwsSolutions-IAM5", "The Distributed Map's items file and result files have per-execution names under two fixed folders of the stack's own staging bucket: read-only under inputs/, ResultWriter's actions under results/.",
			`/^Resource::<Staging[0-9A-F]+\.Arn>\/(inputs|results)\/\*$/`),
	)

	// Alarm on failed executions.
	s.FailedAlarm = awscloudwatch.NewAlarm(stack, jsii.String("ExecutionsFailedAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("A trailfill backfill execution failed. Run trailfill watch <execution> to list each failed partition and its cause (read from the results in the staging bucket that the cause of 'Backfill failed' names), fix it and start the same backfill again: archived windows are skipped."),
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
		s.AlarmTopic = newAlarmTopic(stack, s.FailedAlarm)
		s.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
		s.FailedAlarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.AlarmTopic))
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
	out(contract.OutputStagingBucket, fmt.Sprintf("Staging bucket of the state machine (Distributed Map items under inputs/, results under results/; objects expire after %d days)", StagingExpirationDays), s.Staging.BucketName())
	out(contract.OutputConsoleURL, "Step Functions console for the backfill state machine", awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https://"), consoleHost(stack), jsii.String("/states/home?region="), awscdk.Aws_REGION(),
		jsii.String("#/statemachines/view/"), sm.StateMachineArn(),
	}))
	if cfg.BucketName != "" {
		out(contract.OutputBucketPolicyStatement, "Add these statements to the bucket policy of "+cfg.BucketName+" (required when the bucket is in another account)",
			stack.ToJsonString(bucketPolicyStatements(grants, "TrailfillBackfill", awscdk.Aws_ACCOUNT_ID(), role.RoleArn()), nil))
	}
	if cfg.KMSKeyArn != "" {
		out(contract.OutputKMSKeyPolicyStatement, "Add this statement to the key policy of "+cfg.KMSKeyArn+" (required when the key is in another account or its policy does not delegate to IAM)",
			stack.ToJsonString(keyPolicyStatement("TrailfillBackfillArchiveKey", archiveKeyActions, awscdk.Aws_ACCOUNT_ID(), role.RoleArn()), nil))
	}
	if s.StackSet != nil {
		out(contract.OutputReadRoleStackSet, "StackSet deploying the read roles", jsii.String(cfg.ReadRoleStackName()))
	}
	return s, nil
}

// definitionSubstitutions fills the definition's placeholders
// (statemachine.Substitutions, and the partition of partitionedDefinition)
// with the function's ARN, the staging bucket's name and the partition as
// tokens.
func definitionSubstitutions(functionArn, stagingBucket *string) *map[string]*string {
	const fnMarker, bucketMarker = "\x00function\x00", "\x00staging\x00"
	subs := map[string]*string{PartitionPlaceholder: awscdk.Aws_PARTITION()}
	for k, v := range statemachine.Substitutions(fnMarker, bucketMarker) {
		switch v {
		case fnMarker:
			subs[k] = functionArn
		case bucketMarker:
			subs[k] = stagingBucket
		default:
			subs[k] = jsii.String(v)
		}
	}
	return &subs
}

// PartitionPlaceholder is the definition substitution for the partition in
// the service integration ARNs of the deployed definition.
const PartitionPlaceholder = "Partition"

// partitionedDefinition is def with the partition of every service
// integration resource (arn:aws:states:::lambda:invoke and the like) left to
// the deployment: the definition file names the aws partition, which the
// local executor expects, while Step Functions in the China and GovCloud (US)
// partitions expects arn:aws-cn:states:::... and arn:aws-us-gov:states:::...
// ("Service integrations", Step Functions Developer Guide: the Resource field
// is an ARN, and ARNs carry the partition).
func partitionedDefinition(def string) string {
	return strings.ReplaceAll(def, `"arn:aws:states:::`, `"arn:${`+PartitionPlaceholder+`}:states:::`)
}

// archiveKeyActions are the backfill function's uses of the archive's KMS
// key: GenerateDataKey to write (PutObject), Decrypt to read (GetObject).
var archiveKeyActions = []string{"kms:GenerateDataKey", "kms:Decrypt"}

// consoleHost is the AWS Management Console host of the stack's partition:
// console.amazonaws.cn in China, console.amazonaws-us-gov.com in GovCloud
// (US), <region>.console.aws.amazon.com elsewhere. Conditions, not a mapping:
// an unknown partition still deploys.
func consoleHost(stack awscdk.Stack) *string {
	partitionIs := func(id, partition string) *string {
		return awscdk.NewCfnCondition(stack, jsii.String(id), &awscdk.CfnConditionProps{
			Expression: awscdk.Fn_ConditionEquals(awscdk.Aws_PARTITION(), jsii.String(partition)),
		}).LogicalId()
	}
	china, gov := partitionIs("PartitionIsChina", "aws-cn"), partitionIs("PartitionIsGovCloud", "aws-us-gov")
	return awscdk.Token_AsString(awscdk.Fn_ConditionIf(china, jsii.String("console.amazonaws.cn"),
		awscdk.Fn_ConditionIf(gov, jsii.String("console.amazonaws-us-gov.com"),
			awscdk.Fn_Join(jsii.String(""), &[]*string{awscdk.Aws_REGION(), jsii.String(".console.aws.amazon.com")}))), nil)
}

// newAlarmTopic is the topic of the alarm email. enforceSSL gives the topic a
// policy holding only the TLS-only Deny, and that policy replaces SNS's
// default one, so CloudWatch could not publish (facts.md 4b); the policy
// allows cloudwatch.amazonaws.com to publish for this alarm of this account
// only (aws:SourceArn and aws:SourceAccount, "Cross-service confused deputy
// prevention", Amazon SNS Developer Guide).
func newAlarmTopic(stack awscdk.Stack, alarm awscloudwatch.Alarm) awssns.Topic {
	topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("trailfill backfill alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{topic.TopicArn()},
		Conditions: &map[string]any{
			"ArnEquals":    map[string]any{"aws:SourceArn": alarm.AlarmArn()},
			"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
		},
	}))
	nagSuppress(topic, nag("AwsSolutions-SNS2", "The topic carries only this alarm's state-change notices (alarm name, description, state), no archive data, and is TLS-only (enforceSSL). Server-side encryption would need a customer managed KMS key with a key policy for CloudWatch: CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key aws/sns (Amazon SNS Developer Guide, sns-key-management.html#compatibility-with-aws-services)."))
	return topic
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
func (c Config) keyPrefix() string { return keyPrefixOf(c.Prefix) }

// newArchiveBucket creates the archive bucket: private, TLS-only, encrypted,
// versioned, optionally Object Lock, server access logs into accessLogs,
// retained when the stack is deleted.
func newArchiveBucket(stack awscdk.Stack, cfg Config, key awskms.IKey, accessLogs awss3.Bucket) awss3.Bucket {
	props := &awss3.BucketProps{
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:             jsii.Bool(true),
		MinimumTLSVersion:      jsii.Number(1.2),
		Versioned:              jsii.Bool(true),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String(accessLogsArchivePrefix),
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
