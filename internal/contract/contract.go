// Package contract is the one source of every name and shape that separately
// deployed parts of trailfill share: the CDK stacks, the launcher, the Lambda
// functions and the state machine definition. Stack output keys, Lambda
// environment variable names, defaults, the execution input and output, the
// per-invocation payload and the typed failure causes live here and nowhere
// else, so a rename is a compile error instead of a broken deployment.
//
// The package imports only the standard library: the Lambda bootstraps, the
// CDK app and the launcher all link it.
package contract

// Output keys of the backfill stack. `trailfill start`, `watch` and `verify`
// read them with cloudformation:DescribeStacks. ArchivePrefix is absent when
// the prefix is empty (CloudFormation rejects empty output values);
// BucketPolicyStatement exists only for an existing bucket,
// KmsKeyPolicyStatement only with a KMS key, ReadRoleStackSet only in the
// StackSet modes.
const (
	OutputStateMachineArn         = "StateMachineArn"
	OutputArchiveBucket           = "ArchiveBucket"
	OutputArchivePrefix           = "ArchivePrefix"
	OutputArchiveDestination      = "ArchiveDestination"
	OutputReadRoleName            = "ReadRoleName"
	OutputBackfillFunctionRoleArn = "BackfillFunctionRoleArn"
	OutputConsoleURL              = "ConsoleUrl"
	OutputBucketPolicyStatement   = "BucketPolicyStatement"
	OutputKMSKeyPolicyStatement   = "KmsKeyPolicyStatement"
	OutputReadRoleStackSet        = "ReadRoleStackSet"
	OutputStagingBucket           = "StagingBucket"
)

// Output keys of the GitLab receiver stack.
const (
	OutputGitLabReceiverURL           = "GitLabReceiverUrl"
	OutputGitLabReceiverRoleArn       = "GitLabReceiverRoleArn"
	OutputGitLabReceiverFunctionName  = "GitLabReceiverFunctionName"
	OutputGitLabTokensParameter       = "GitLabTokensParameter"
	OutputGitLabArchiveLocation       = "GitLabArchiveLocation"
	OutputGitLabBucketPolicyStatement = "GitLabBucketPolicyStatement"
	OutputGitLabKMSKeyPolicyStatement = "GitLabKmsKeyPolicyStatement"
)

// Environment of the backfill Lambda, set by the backfill stack.
const (
	EnvBucket     = "TRAILFILL_BUCKET"      // archive bucket (required)
	EnvPrefix     = "TRAILFILL_PREFIX"      // key prefix inside the bucket, may be empty
	EnvOrgID      = "TRAILFILL_ORG_ID"      // o-... for the organization-trail layout, may be empty
	EnvRoleName   = "TRAILFILL_ROLE_NAME"   // read role name in target accounts
	EnvRate       = "TRAILFILL_RATE"        // LookupEvents requests/s per partition (<= 2)
	EnvStopMargin = "TRAILFILL_STOP_MARGIN" // seconds before the Lambda deadline to stop reading
	EnvKMSKeyArn  = "TRAILFILL_KMS_KEY_ARN" // KMS key of the archive (SSE-KMS on every write), may be empty
)

// Environment of the GitLab receiver Lambda, set by the GitLab stack.
const (
	EnvGitLabBucket      = "TRAILFILL_GITLAB_BUCKET"       // archive bucket (required)
	EnvGitLabPrefix      = "TRAILFILL_GITLAB_PREFIX"       // key prefix, may be empty
	EnvGitLabSource      = "TRAILFILL_GITLAB_SOURCE"       // source name in the archive layout
	EnvGitLabTokensParam = "TRAILFILL_GITLAB_TOKENS_PARAM" // SSM SecureString holding the tokens
	EnvGitLabMaxBody     = "TRAILFILL_GITLAB_MAX_BODY"     // request body limit in bytes
	// EnvGitLabLayout names the archive layout (absent: the default layout);
	// the stack sets it only for the gitlab-s3 layout.
	EnvGitLabLayout = "TRAILFILL_GITLAB_LAYOUT"
)

// GitLab archive layouts, the values of `trailfill gitlab ... --layout`, of
// EnvGitLabLayout and of the GitLab stack's layout context key, and the
// receiver Lambda's variable that selects one (default when unset).
const (
	GitLabLayoutDefault  = "default"   // GitLab/<source>/YYYY/MM/DD/<id>.json
	GitLabLayoutGitLabS3 = "gitlab-s3" // GitLab's own S3 streaming layout
)

// Environment of the launcher.
const (
	// EnvStack names the deployed stack when --stack is not given.
	EnvStack = "TRAILFILL_STACK"
	// EnvLogLevel sets the launcher's log level (info or debug show details).
	EnvLogLevel = "TRAILFILL_LOG_LEVEL"
	// EnvGitLabToken holds the GitLab API token of `trailfill gitlab backfill`.
	EnvGitLabToken = "GITLAB_TOKEN"
)

// Defaults shared by the stacks, the state machine, the Lambda and the launcher.
const (
	// DefaultStackName is the backfill stack's name (CDK context stackName).
	DefaultStackName = "trailfill"
	// DefaultRoleName is the read role the StackSet deploys in every target account.
	DefaultRoleName = "trailfill-read"
	// DefaultWindowMinutes is the window length: the unit of manifests and resume.
	DefaultWindowMinutes = 30
	// DefaultMaxConcurrency is how many partitions the Distributed Map runs
	// at once. Each running partition holds one backfill Lambda invocation,
	// drawn from the account's concurrency in the stack's region (1,000 by
	// default, shared with every function without reserved concurrency);
	// each partition has its own LookupEvents quota (per account and
	// region), so parallelism is bounded by Lambda, not by the quota, and a
	// backfill's wall time falls in proportion to it. 40 leaves room for the
	// account's other functions in any account; `trailfill start
	// --max-concurrency` raises it (checked against lambda:GetAccountSettings).
	DefaultMaxConcurrency = 40
	// DefaultStopMarginSeconds is how long before its deadline an invocation
	// stops reading to finish its writes and answer.
	DefaultStopMarginSeconds = 90
)

// State machine names: the placeholders the CDK stack substitutes with the
// backfill function's ARN and the staging bucket's name, and the function
// name `trailfill run` binds in-process.
const (
	FunctionPlaceholder      = "BackfillFunctionArn"
	StagingBucketPlaceholder = "StagingBucket"
	LocalFunctionName        = "trailfill-backfill-local"
)

// Error names. ErrorPartition is the error type the backfill Lambda reports
// for a failed partition (the Step Functions error name of its Task);
// ErrorInvalidInvocation for a payload that is not an Invocation;
// ErrorFunction for any other failure of the function. ErrorPartitionFailed
// is the error of a partition's child execution that failed for good (its
// cause a PartitionFailure); ErrorPartitionsFailed the execution's when any
// partition failed (its cause a FailureCause).
const (
	ErrorPartition         = "PartitionError"
	ErrorInvalidInvocation = "trailfill.InvalidInvocation"
	ErrorFunction          = "trailfill.FunctionError"
	ErrorPartitionFailed   = "trailfill.PartitionFailed"
	ErrorPartitionsFailed  = "trailfill.PartitionsFailed"
)
