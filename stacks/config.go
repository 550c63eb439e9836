package stacks

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/validate"
)

// Context keys of the CDK app (`cdk deploy -c key=value`, or "context" in cdk.json).
// docs/deploy.md documents each one; keep the two in step.
const (
	KeyStackName           = "stackName"
	KeyBucketName          = "bucketName"
	KeyPrefix              = "prefix"
	KeyKMSKeyArn           = "kmsKeyArn"
	KeyObjectLock          = "objectLock"
	KeyObjectLockDays      = "objectLockDays"
	KeyObjectLockMode      = "objectLockMode"
	KeyOrgID               = "orgId"
	KeyOrgTrail            = "orgTrail"
	KeyReadRoleName        = "readRoleName"
	KeyReadRoles           = "readRoles"
	KeyTargetOUIDs         = "targetOuIds"
	KeyTargetAccounts      = "targetAccounts"
	KeyTargetRegion        = "targetRegion"
	KeyStackSetCallAs      = "stackSetCallAs"
	KeyStackSetAdminRole   = "stackSetAdminRoleArn"
	KeyStackSetExecRole    = "stackSetExecutionRoleName"
	KeyReadRoleStack       = "readRoleStack"
	KeyBackfillRoleArn     = "backfillRoleArn"
	KeyReadAccounts        = "readAccounts"
	KeyLocalPrincipalArn   = "localPrincipalArn"
	KeyRate                = "rate"
	KeyStopMargin          = "stopMargin"
	KeyMemoryMB            = "memoryMb"
	KeyReservedConcurrency = "reservedConcurrency"
	KeyLogRetentionDays    = "logRetentionDays"
	KeyAlarmEmail          = "alarmEmail"
	KeyAlarmTopicArn       = "alarmTopicArn"

	// The GitLab receiver stack (stacks/gitlab.go).
	KeyGitLab                    = "gitlab"
	KeyGitLabSource              = "gitlabSource"
	KeyGitLabTokensParam         = "gitlabTokensParam"
	KeyGitLabTokensKMSKeyArn     = "gitlabTokensKmsKeyArn"
	KeyGitLabMaxBody             = "gitlabMaxBody"
	KeyGitLabReservedConcurrency = "gitlabReservedConcurrency"
	KeyGitLabLayout              = "gitlabLayout"
	KeyGitLabPrefix              = "gitlabPrefix"
)

// ContextKeys lists every context key the app reads, in documentation order.
var ContextKeys = []string{
	KeyStackName, KeyBucketName, KeyPrefix, KeyKMSKeyArn, KeyObjectLock, KeyObjectLockDays,
	KeyObjectLockMode, KeyOrgID, KeyOrgTrail, KeyReadRoleName, KeyReadRoles, KeyTargetOUIDs,
	KeyTargetAccounts, KeyTargetRegion, KeyStackSetCallAs, KeyStackSetAdminRole, KeyStackSetExecRole,
	KeyReadRoleStack, KeyBackfillRoleArn, KeyReadAccounts, KeyLocalPrincipalArn, KeyRate, KeyStopMargin, KeyMemoryMB,
	KeyReservedConcurrency, KeyLogRetentionDays, KeyAlarmEmail, KeyAlarmTopicArn,
	KeyGitLab, KeyGitLabSource, KeyGitLabTokensParam, KeyGitLabTokensKMSKeyArn, KeyGitLabMaxBody, KeyGitLabReservedConcurrency,
	KeyGitLabLayout, KeyGitLabPrefix,
}

// ReadRoleMode says how the cross-account read roles are deployed.
type ReadRoleMode string

// Read role deployment modes (context key readRoles).
const (
	// ReadRolesNone deploys no read role: the backfill reads only the account it
	// is deployed in (no role is assumed there), or roles deployed separately.
	ReadRolesNone ReadRoleMode = "none"
	// ReadRolesStackSetOrg deploys a SERVICE_MANAGED StackSet to organizational
	// units, with automatic deployment to accounts that join them later.
	ReadRolesStackSetOrg ReadRoleMode = "stackset-org"
	// ReadRolesStackSetAccounts deploys a SELF_MANAGED StackSet to listed accounts.
	ReadRolesStackSetAccounts ReadRoleMode = "stackset-accounts"
	// ReadRolesStack deploys no StackSet and adds the plain stack
	// <stackName>-read-role holding the role, deployed with credentials of the
	// account to read (one account, or the management account, which
	// service-managed StackSets skip). Same as readRoleStack=true with none.
	ReadRolesStack ReadRoleMode = "stack"
)

// Defaults.
const (
	DefaultStackName        = "trailfill"
	DefaultTargetRegion     = "us-east-1"
	DefaultMemoryMB         = 1024
	DefaultLogRetentionDays = 365
)

// Config is the validated configuration of the CDK app.
type Config struct {
	StackName string // CloudFormation stack name; also names the Lambda role, state machine, StackSet

	BucketName     string // existing archive bucket; empty: the stack creates one
	Prefix         string // key prefix inside the bucket, no leading or trailing slash
	KMSKeyArn      string // KMS key of the bucket (new bucket: SSE-KMS with it; existing: grant use)
	ObjectLock     bool   // new bucket only: enable S3 Object Lock
	ObjectLockDays int    // new bucket only: default retention in days (0: none)
	ObjectLockMode string // GOVERNANCE or COMPLIANCE

	OrgID    string // o-...: trust and assume conditions
	OrgTrail bool   // write the organization-trail layout AWSLogs/<o-id>/<account>/...

	ReadRoleName              string
	ReadRoles                 ReadRoleMode
	TargetOUIDs               []string // stackset-org
	TargetAccounts            []string // stackset-accounts
	TargetRegion              string   // the one region the StackSet deploys its (global IAM) role in
	StackSetCallAs            string   // SELF or DELEGATED_ADMIN
	StackSetAdminRoleArn      string   // stackset-accounts: administration role (optional)
	StackSetExecutionRoleName string   // stackset-accounts: execution role name (optional)
	ReadRoleStack             bool     // add the plain read-role stack (readRoles=stack implies it)
	BackfillRoleArn           string   // read-role stack: the backfill Lambda role the read role trusts
	ReadAccounts              []string // restrict the Lambda's sts:AssumeRole to these accounts
	LocalPrincipalArn         string   // extra principal trusted by the read role (local runs)

	Rate                float64 // LookupEvents requests/s per partition; 0: the function's default
	StopMargin          int     // seconds; 0: the function's default
	MemoryMB            int
	ReservedConcurrency int // 0: unreserved
	LogRetentionDays    int
	AlarmEmail          string
	AlarmTopicArn       string

	GitLab GitLabConfig // the GitLab receiver stack; the zero value (off) unless gitlab=true
}

// LambdaRoleName is the fixed name of the backfill Lambda's role, without the
// region suffix the stack appends (`<stackName>-backfill-<region>`): member
// accounts can then name the role in their trust policies before it exists.
func (c Config) LambdaRoleName() string { return c.StackName + "-backfill" }

// StateMachineName is the fixed name of the backfill state machine.
func (c Config) StateMachineName() string { return c.StackName + "-backfill" }

// ReadRoleStackName is the stack (and StackSet) name of the read role.
func (c Config) ReadRoleStackName() string { return c.StackName + "-read-role" }

var (
	stackNameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,39}$`)
	bucketRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	prefixRE     = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/=-]*$`)
	kmsKeyRE     = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)
	ouRE         = regexp.MustCompile(`^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$`)
	roleArnRE    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
	principalRE  = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/*?-]+$`)
	emailRE      = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	topicArnRE   = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)
	execRoleRE   = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,64}$`)
	validRetDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

// ConfigFromContext reads and validates the app's context. get returns a context
// value (string, bool, number or list, as cdk.json or -c give it), or nil.
func ConfigFromContext(get func(key string) any) (Config, error) {
	s := func(k string) (string, error) { return contextString(k, get(k)) }
	c := Config{
		StackName:        DefaultStackName,
		ReadRoleName:     contract.DefaultRoleName,
		ReadRoles:        ReadRolesNone,
		TargetRegion:     DefaultTargetRegion,
		StackSetCallAs:   "SELF",
		ObjectLockMode:   "GOVERNANCE",
		MemoryMB:         DefaultMemoryMB,
		LogRetentionDays: DefaultLogRetentionDays,
	}
	var errs configErrors
	fail := func(err error) { errs = append(errs, err) }
	str := func(k string, dst *string) {
		v, err := s(k)
		if err != nil {
			fail(err)
			return
		}
		if v != "" {
			*dst = v
		}
	}
	list := func(k string, dst *[]string) {
		v, err := s(k)
		if err != nil {
			fail(err)
			return
		}
		*dst = validate.List(v)
	}
	boolean := func(k string, dst *bool) bool {
		v, err := s(k)
		if err != nil {
			fail(err)
			return false
		}
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail(fmt.Errorf("context %s=%q: use true or false", k, v))
			return false
		}
		*dst = b
		return true
	}
	integer := func(k string, dst *int, lo, hi int, what string) {
		v, err := s(k)
		if err != nil {
			fail(err)
			return
		}
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			fail(fmt.Errorf("context %s=%q: give %s, a whole number from %d to %d", k, v, what, lo, hi))
			return
		}
		*dst = n
	}

	str(KeyStackName, &c.StackName)
	str(KeyBucketName, &c.BucketName)
	str(KeyPrefix, &c.Prefix)
	str(KeyKMSKeyArn, &c.KMSKeyArn)
	boolean(KeyObjectLock, &c.ObjectLock)
	integer(KeyObjectLockDays, &c.ObjectLockDays, 1, 36500, "the default retention in days")
	str(KeyObjectLockMode, &c.ObjectLockMode)
	str(KeyOrgID, &c.OrgID)
	orgTrailSet := boolean(KeyOrgTrail, &c.OrgTrail)
	str(KeyReadRoleName, &c.ReadRoleName)
	var mode string
	str(KeyReadRoles, &mode)
	list(KeyTargetOUIDs, &c.TargetOUIDs)
	list(KeyTargetAccounts, &c.TargetAccounts)
	str(KeyTargetRegion, &c.TargetRegion)
	str(KeyStackSetCallAs, &c.StackSetCallAs)
	str(KeyStackSetAdminRole, &c.StackSetAdminRoleArn)
	str(KeyStackSetExecRole, &c.StackSetExecutionRoleName)
	boolean(KeyReadRoleStack, &c.ReadRoleStack)
	str(KeyBackfillRoleArn, &c.BackfillRoleArn)
	list(KeyReadAccounts, &c.ReadAccounts)
	str(KeyLocalPrincipalArn, &c.LocalPrincipalArn)
	var rate string
	str(KeyRate, &rate)
	integer(KeyStopMargin, &c.StopMargin, 10, 600, "seconds before the Lambda deadline to stop reading")
	integer(KeyMemoryMB, &c.MemoryMB, 128, 10240, "the backfill function's memory in MB")
	integer(KeyReservedConcurrency, &c.ReservedConcurrency, 1, 10000, "the backfill function's reserved concurrency")
	integer(KeyLogRetentionDays, &c.LogRetentionDays, 1, 3653, "the log retention in days")
	str(KeyAlarmEmail, &c.AlarmEmail)
	str(KeyAlarmTopicArn, &c.AlarmTopicArn)

	if !stackNameRE.MatchString(c.StackName) {
		fail(fmt.Errorf("context %s=%q: use 1-40 letters, digits and hyphens, starting with a letter (it also names IAM roles)", KeyStackName, c.StackName))
	}
	if c.BucketName != "" && (!bucketRE.MatchString(c.BucketName) || strings.Contains(c.BucketName, "..")) {
		fail(fmt.Errorf("context %s=%q: give the name of an existing S3 bucket (not an ARN or s3:// URL), or omit it to create one", KeyBucketName, c.BucketName))
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	if !prefixRE.MatchString(c.Prefix) || strings.Contains(c.Prefix, "//") || len(c.Prefix) > 200 {
		fail(fmt.Errorf("context %s=%q: give the trail's S3 key prefix (e.g. cloudtrail), without AWSLogs/", KeyPrefix, c.Prefix))
	}
	if strings.HasSuffix(c.Prefix, "AWSLogs") || strings.Contains(c.Prefix, "AWSLogs/") {
		fail(fmt.Errorf("context %s=%q: give the prefix before AWSLogs/ (the trail's S3 key prefix), not a path inside it", KeyPrefix, c.Prefix))
	}
	if c.KMSKeyArn != "" && !kmsKeyRE.MatchString(c.KMSKeyArn) {
		fail(fmt.Errorf("context %s=%q: give a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias", KeyKMSKeyArn, c.KMSKeyArn))
	}
	if c.BucketName != "" && (c.ObjectLock || c.ObjectLockDays > 0) {
		fail(fmt.Errorf("context %s/%s apply to a bucket the stack creates; %s names an existing bucket: configure Object Lock on it directly", KeyObjectLock, KeyObjectLockDays, KeyBucketName))
	}
	if c.ObjectLockDays > 0 && !c.ObjectLock {
		fail(fmt.Errorf("context %s needs %s=true", KeyObjectLockDays, KeyObjectLock))
	}
	if c.ObjectLockMode != "GOVERNANCE" && c.ObjectLockMode != "COMPLIANCE" {
		fail(fmt.Errorf("context %s=%q: use GOVERNANCE or COMPLIANCE", KeyObjectLockMode, c.ObjectLockMode))
	}
	if c.OrgID != "" {
		if err := validate.OrgID(c.OrgID); err != nil {
			fail(fmt.Errorf("context %s: %w", KeyOrgID, err))
		}
		if !orgTrailSet {
			c.OrgTrail = true
		}
	} else if c.OrgTrail {
		fail(fmt.Errorf("context %s=true needs %s (the o-... ID in the organization trail's key layout)", KeyOrgTrail, KeyOrgID))
	}
	if err := validate.RoleName(c.ReadRoleName); err != nil {
		fail(fmt.Errorf("context %s: %w", KeyReadRoleName, err))
	}
	if mode != "" {
		c.ReadRoles = ReadRoleMode(mode)
	}
	for _, ou := range c.TargetOUIDs {
		if !ouRE.MatchString(ou) {
			fail(fmt.Errorf("context %s: invalid organizational unit %q: use ou-xxxx-xxxxxxxx IDs or the root r-xxxx", KeyTargetOUIDs, ou))
		}
	}
	for _, a := range c.TargetAccounts {
		if err := validate.Account(a); err != nil {
			fail(fmt.Errorf("context %s: %w", KeyTargetAccounts, err))
		}
	}
	for _, a := range c.ReadAccounts {
		if err := validate.Account(a); err != nil {
			fail(fmt.Errorf("context %s: %w", KeyReadAccounts, err))
		}
	}
	if strings.Contains(c.TargetRegion, ",") {
		fail(fmt.Errorf("context %s=%q: give one region: the read role is IAM, which is global, so a second region would collide", KeyTargetRegion, c.TargetRegion))
	} else if err := validate.Region(c.TargetRegion); err != nil {
		fail(fmt.Errorf("context %s: %w", KeyTargetRegion, err))
	}
	if c.StackSetCallAs != "SELF" && c.StackSetCallAs != "DELEGATED_ADMIN" {
		fail(fmt.Errorf("context %s=%q: use SELF (management account) or DELEGATED_ADMIN (a delegated StackSets administrator account)", KeyStackSetCallAs, c.StackSetCallAs))
	}
	if c.StackSetAdminRoleArn != "" && !roleArnRE.MatchString(c.StackSetAdminRoleArn) {
		fail(fmt.Errorf("context %s=%q: give an IAM role ARN", KeyStackSetAdminRole, c.StackSetAdminRoleArn))
	}
	if c.StackSetExecutionRoleName != "" && !execRoleRE.MatchString(c.StackSetExecutionRoleName) {
		fail(fmt.Errorf("context %s=%q: give an IAM role name", KeyStackSetExecRole, c.StackSetExecutionRoleName))
	}
	if c.BackfillRoleArn != "" && !roleArnRE.MatchString(c.BackfillRoleArn) {
		fail(fmt.Errorf("context %s=%q: give the BackfillFunctionRoleArn output of the backfill stack (arn:aws:iam::<account>:role/<name>)", KeyBackfillRoleArn, c.BackfillRoleArn))
	}
	if c.LocalPrincipalArn != "" && !principalRE.MatchString(c.LocalPrincipalArn) {
		fail(fmt.Errorf("context %s=%q: give an IAM role or user ARN (arn:aws:iam::<account>:role/<name>; * is allowed in the name, e.g. for SSO roles)", KeyLocalPrincipalArn, c.LocalPrincipalArn))
	}
	if rate != "" {
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil || r <= 0 || r > pace.MaxRate {
			fail(fmt.Errorf("context %s=%q: give LookupEvents requests per second above 0 and at most %g (the quota per account and region)", KeyRate, rate, pace.MaxRate))
		} else {
			c.Rate = r
		}
	}
	if c.LogRetentionDays != 0 && !slices.Contains(validRetDays, c.LogRetentionDays) {
		fail(fmt.Errorf("context %s=%d: CloudWatch Logs accepts one of %v", KeyLogRetentionDays, c.LogRetentionDays, validRetDays))
	}
	if c.AlarmEmail != "" && !emailRE.MatchString(c.AlarmEmail) {
		fail(fmt.Errorf("context %s=%q: give an email address", KeyAlarmEmail, c.AlarmEmail))
	}
	if c.AlarmTopicArn != "" && !topicArnRE.MatchString(c.AlarmTopicArn) {
		fail(fmt.Errorf("context %s=%q: give an SNS topic ARN", KeyAlarmTopicArn, c.AlarmTopicArn))
	}

	switch c.ReadRoles {
	case ReadRolesNone:
		if len(c.TargetOUIDs)+len(c.TargetAccounts) > 0 {
			fail(fmt.Errorf("context %s/%s are set but %s=none: choose %s=%s or %s", KeyTargetOUIDs, KeyTargetAccounts, KeyReadRoles, KeyReadRoles, ReadRolesStackSetOrg, ReadRolesStackSetAccounts))
		}
	case ReadRolesStackSetOrg:
		if len(c.TargetOUIDs) == 0 {
			fail(fmt.Errorf("context %s=%s needs %s (comma-separated ou-... IDs, or the root r-... for the whole organization)", KeyReadRoles, c.ReadRoles, KeyTargetOUIDs))
		}
		if c.OrgID == "" {
			fail(fmt.Errorf("context %s=%s needs %s (o-...): the read roles trust only principals of the organization", KeyReadRoles, c.ReadRoles, KeyOrgID))
		}
		if len(c.TargetAccounts) > 0 {
			fail(fmt.Errorf("context %s is for %s=%s; with %s, target organizational units (%s)", KeyTargetAccounts, KeyReadRoles, ReadRolesStackSetAccounts, ReadRolesStackSetOrg, KeyTargetOUIDs))
		}
	case ReadRolesStackSetAccounts:
		if len(c.TargetAccounts) == 0 {
			fail(fmt.Errorf("context %s=%s needs %s (comma-separated 12-digit account IDs)", KeyReadRoles, c.ReadRoles, KeyTargetAccounts))
		}
		if len(c.TargetOUIDs) > 0 {
			fail(fmt.Errorf("context %s is for %s=%s", KeyTargetOUIDs, KeyReadRoles, ReadRolesStackSetOrg))
		}
		if c.StackSetCallAs != "SELF" {
			fail(fmt.Errorf("context %s=%s: a SELF_MANAGED StackSet (%s=%s) is always called as SELF", KeyStackSetCallAs, c.StackSetCallAs, KeyReadRoles, c.ReadRoles))
		}
	case ReadRolesStack:
		c.ReadRoleStack = true
		if len(c.TargetOUIDs)+len(c.TargetAccounts) > 0 {
			fail(fmt.Errorf("context %s/%s are for the StackSet modes; to deploy the read-role stack next to a StackSet configuration, keep %s and add %s=true", KeyTargetOUIDs, KeyTargetAccounts, KeyReadRoles, KeyReadRoleStack))
		}
	default:
		fail(fmt.Errorf("context %s=%q: use %s, %s, %s or %s", KeyReadRoles, c.ReadRoles, ReadRolesNone, ReadRolesStackSetOrg, ReadRolesStackSetAccounts, ReadRolesStack))
	}
	if c.ReadRoleStack && c.BackfillRoleArn == "" {
		fail(fmt.Errorf("the read-role stack (%s=%s or %s=true) needs %s: the BackfillFunctionRoleArn output of the backfill stack (deploy it first), e.g. arn:aws:iam::111122223333:role/%s-us-east-1", KeyReadRoles, ReadRolesStack, KeyReadRoleStack, KeyBackfillRoleArn, c.LambdaRoleName()))
	}
	if !c.ReadRoleStack && c.BackfillRoleArn != "" {
		fail(fmt.Errorf("context %s is only used with %s=true or %s=%s", KeyBackfillRoleArn, KeyReadRoleStack, KeyReadRoles, ReadRolesStack))
	}
	if c.ReadRoles != ReadRolesStackSetAccounts && (c.StackSetAdminRoleArn != "" || c.StackSetExecutionRoleName != "") {
		fail(fmt.Errorf("context %s/%s are only used with %s=%s", KeyStackSetAdminRole, KeyStackSetExecRole, KeyReadRoles, ReadRolesStackSetAccounts))
	}
	if c.ReadRoles != ReadRolesStackSetOrg && c.StackSetCallAs == "DELEGATED_ADMIN" {
		fail(fmt.Errorf("context %s=DELEGATED_ADMIN is only used with %s=%s", KeyStackSetCallAs, KeyReadRoles, ReadRolesStackSetOrg))
	}
	var glErrs []error
	c.GitLab, glErrs = gitLabConfigFromContext(s, c.StackName, c.Prefix)
	errs = append(errs, glErrs...)

	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// contextString renders a context value as cdk.json (JSON types) or -c (strings)
// give it.
func contextString(key string, v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("context %s: a list must hold strings, got %v", key, e)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("context %s: unsupported value %v (%T): give a string", key, v, v)
	}
}

// configErrors reports every invalid context value at once, on one line.
type configErrors []error

func (e configErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e configErrors) Unwrap() []error { return e }
