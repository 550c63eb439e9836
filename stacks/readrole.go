package stacks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/trailfill/trailfill/internal/contract"
)

// Parameters of the read-role template. The StackSet passes them; the plain
// read-role stack (readRoles=stack) gets them as defaults from the context.
const (
	ParamTrustedRoleArn    = "TrustedRoleArn"
	ParamReadRoleName      = "ReadRoleName"
	ParamOrganizationID    = "OrganizationId"
	ParamLocalPrincipalArn = "LocalPrincipalArn"
)

// MaxTemplateBody is CloudFormation's limit on an inline TemplateBody.
const MaxTemplateBody = 51200

// readRoleInputs are the read role's variable parts: parameter references (the
// StackSet template) or literal values (the plain stack). hasOrg and hasLocal
// name the template's conditions; with literal values they are empty and the
// statements are included or left out at synthesis.
type readRoleInputs struct {
	trustedRoleArn, roleName, orgID, localPrincipalArn *string
	hasOrg, hasLocal                                   string
}

// NewReadRoleStack is the plain read-role stack (readRoles=stack or
// readRoleStack=true), named
// <stackName>-read-role: deploy it with the credentials of the account to read
// (`cdk deploy trailfill-read-role --profile <that account>`). It needs no CDK
// bootstrap in that account: the template is small and has no assets.
func NewReadRoleStack(scope constructs.Construct, cfg Config) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(cfg.ReadRoleStackName()), &awscdk.StackProps{
		StackName:   jsii.String(cfg.ReadRoleStackName()),
		Description: jsii.String("trailfill read role: cloudtrail:LookupEvents for the trailfill backfill function of account " + accountOfArn(cfg.BackfillRoleArn)),
		Synthesizer: awscdk.NewLegacyStackSynthesizer(),
	})
	// Literal values, not parameters with defaults: `cdk deploy` reuses the
	// previous value of every parameter it is not given, so a changed context
	// value would silently not apply.
	in := readRoleInputs{trustedRoleArn: jsii.String(cfg.BackfillRoleArn), roleName: jsii.String(cfg.ReadRoleName)}
	if cfg.OrgID != "" {
		in.orgID = jsii.String(cfg.OrgID)
	}
	if cfg.LocalPrincipalArn != "" {
		in.localPrincipalArn = jsii.String(cfg.LocalPrincipalArn)
	}
	role := defineReadRole(stack, in)
	// Here only, not in defineReadRole: the StackSet's template body stays
	// free of cdk-nag metadata (the role in it is the same).
	nagSuppress(role, nag("AwsSolutions-IAM5", "cloudtrail:LookupEvents, account:ListRegions, organizations:DescribeOrganization and organizations:ListAccounts have no resource-level permissions (Service Authorization Reference: none lists a resource type), so they are granted on \"*\"; the trail reads are limited to the account's own trails (trail/*); all are read-only, and only the backfill function's role (and the optional CLI principal) may assume the role.",
		"Resource::*", "Resource::arn:<AWS::Partition>:cloudtrail:*:<AWS::AccountId>:trail/*"))
	return stack
}

// ReadRoleTemplate synthesizes the read-role template the StackSets deploy, as
// compact JSON. It does not depend on the configuration (everything variable is
// a parameter), so the StackSet template changes only when this code does.
func ReadRoleTemplate() (string, error) {
	dir, err := os.MkdirTemp("", "trailfill-read-role-")
	if err != nil {
		return "", fmt.Errorf("read-role template: %w", err)
	}
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{
		Outdir:             jsii.String(dir),
		AnalyticsReporting: jsii.Bool(false),
		TreeMetadata:       jsii.Bool(false),
		StackTraces:        jsii.Bool(false),
		// The CLI's context (CDK_CONTEXT_JSON) reaches this app too; keep CDK
		// metadata out of the template body.
		PostCliContext: &map[string]any{
			"aws:cdk:enable-path-metadata":  false,
			"aws:cdk:enable-asset-metadata": false,
			"aws:cdk:version-reporting":     false,
		},
	})
	stack := awscdk.NewStack(app, jsii.String("ReadRole"), &awscdk.StackProps{
		Description: jsii.String("trailfill read role: cloudtrail:LookupEvents (and account:ListRegions, the trail and organization reads of --trail) for the trailfill backfill function"),
		Synthesizer: awscdk.NewLegacyStackSynthesizer(),
	})
	defineReadRole(stack, readRoleParameters(stack))
	path := app.Synth(nil).GetStackArtifact(stack.ArtifactId()).TemplateFullPath()
	raw, err := os.ReadFile(*path)
	if err != nil {
		return "", fmt.Errorf("read-role template: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("read-role template: %w", err)
	}
	if buf.Len() > MaxTemplateBody {
		return "", fmt.Errorf("read-role template is %d bytes, over CloudFormation's %d-byte TemplateBody limit", buf.Len(), MaxTemplateBody)
	}
	return buf.String(), nil
}

// readRoleParameters declares the template's parameters and conditions.
func readRoleParameters(stack awscdk.Stack) readRoleInputs {
	param := func(id, desc, pattern, constraint, def string, required bool) *string {
		p := &awscdk.CfnParameterProps{
			Type:                  jsii.String("String"),
			Description:           jsii.String(desc),
			AllowedPattern:        jsii.String(pattern),
			ConstraintDescription: jsii.String(constraint),
		}
		if def != "" || !required {
			p.Default = jsii.String(def)
		}
		return awscdk.NewCfnParameter(stack, jsii.String(id), p).ValueAsString()
	}
	in := readRoleInputs{
		trustedRoleArn: param(ParamTrustedRoleArn,
			"ARN of the trailfill backfill function's role (the BackfillFunctionRoleArn output of the trailfill stack).",
			`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`, "an IAM role ARN", "", true),
		roleName: param(ParamReadRoleName, "Name of the read role (trailfill's --role-name).",
			`^[A-Za-z0-9+=,.@_-]{1,64}$`, "an IAM role name", contract.DefaultRoleName, true),
		orgID: param(ParamOrganizationID, "AWS Organizations ID (o-...): only principals of the organization may assume the role. Empty: no organization condition.",
			`^(o-[a-z0-9]{10,32})?$`, "empty or an o-... organization ID", "", false),
		localPrincipalArn: param(ParamLocalPrincipalArn, "Optional IAM role or user ARN (* allowed in the name) that may also assume the role, for the trailfill CLI (run, --regions all). Empty: none.",
			`^(arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/*?-]+)?$`, "empty or an IAM role or user ARN", "", false),
	}
	notEmpty := func(id string, v *string) string {
		c := awscdk.NewCfnCondition(stack, jsii.String(id), &awscdk.CfnConditionProps{
			Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(v, jsii.String(""))),
		})
		return *c.LogicalId()
	}
	in.hasOrg = notEmpty("HasOrganization", in.orgID)
	in.hasLocal = notEmpty("HasLocalPrincipal", in.localPrincipalArn)
	return in
}

// defineReadRole adds the read role to stack. The role may call
// cloudtrail:LookupEvents (which has no resource-level permissions, hence
// Resource "*"), account:ListRegions (for `--regions all`), and for `--trail`
// cloudtrail:GetTrail, GetEventSelectors and GetTrailStatus on the account's
// own trails and organizations:DescribeOrganization and ListAccounts (no
// resource-level permissions); nothing else, all read-only. It
// trusts only the backfill function's role (aws:PrincipalArn, naming the role's
// account as principal so the trust holds even before the role exists), plus an
// optional principal for the CLI; with an organization ID both must belong to
// the organization (aws:PrincipalOrgID).
func defineReadRole(stack awscdk.Stack, in readRoleInputs) awsiam.CfnRole {
	trusted, org, local := in.trustedRoleArn, in.orgID, in.localPrincipalArn
	accountRoot := func(arn *string) *string {
		// The account is field 4 of the ARN; the padding keeps Fn::Select in
		// range when the parameter is empty.
		account := awscdk.Fn_Select(jsii.Number(4), awscdk.Fn_Split(jsii.String(":"), awscdk.Fn_Join(jsii.String(""), &[]*string{arn, jsii.String(":::::")}), nil))
		return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":iam::"), account, jsii.String(":root")})
	}
	withOrg := func(cond map[string]any) any {
		if org == nil {
			return cond
		}
		both := map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": org}}
		for k, v := range cond {
			both[k] = v
		}
		if in.hasOrg == "" {
			return both
		}
		return awscdk.Fn_ConditionIf(jsii.String(in.hasOrg), both, cond)
	}
	statements := []any{
		map[string]any{
			"Sid":       "TrailfillBackfillFunction",
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": accountRoot(trusted)},
			"Action":    "sts:AssumeRole",
			"Condition": withOrg(map[string]any{"ArnEquals": map[string]any{"aws:PrincipalArn": trusted}}),
		},
	}
	if local != nil {
		st := map[string]any{
			"Sid":       "TrailfillLocalRuns",
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": accountRoot(local)},
			"Action":    "sts:AssumeRole",
			"Condition": withOrg(map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": local}}),
		}
		if in.hasLocal == "" {
			statements = append(statements, st)
		} else {
			statements = append(statements, awscdk.Fn_ConditionIf(jsii.String(in.hasLocal), st, awscdk.Aws_NO_VALUE()))
		}
	}
	trust := map[string]any{"Version": "2012-10-17", "Statement": statements}
	role := awsiam.NewCfnRole(stack, jsii.String("ReadRole"), &awsiam.CfnRoleProps{
		RoleName:                 in.roleName,
		Description:              jsii.String("trailfill: read CloudTrail event history (LookupEvents) for the trailfill backfill function"),
		MaxSessionDuration:       jsii.Number(3600),
		AssumeRolePolicyDocument: trust,
		Policies: &[]any{&awsiam.CfnRole_PolicyProperty{
			PolicyName: jsii.String("trailfill-read"),
			PolicyDocument: map[string]any{
				"Version": "2012-10-17",
				"Statement": []any{
					map[string]any{"Sid": "LookupEvents", "Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"},
					map[string]any{"Sid": "ListRegions", "Effect": "Allow", "Action": "account:ListRegions", "Resource": "*"},
					// `--trail`: the trail's configuration, read in the
					// trail's account (an organization trail's management or
					// delegated administrator account) when the caller's own
					// credentials may not read it.
					map[string]any{"Sid": "ReadTrails", "Effect": "Allow",
						"Action":   []string{"cloudtrail:GetEventSelectors", "cloudtrail:GetTrail", "cloudtrail:GetTrailStatus"},
						"Resource": awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":cloudtrail:*:"), awscdk.Aws_ACCOUNT_ID(), jsii.String(":trail/*")})},
					// An organization trail's organization ID and accounts.
					map[string]any{"Sid": "ReadOrganization", "Effect": "Allow",
						"Action":   []string{"organizations:DescribeOrganization", "organizations:ListAccounts"},
						"Resource": "*"},
				},
			},
		}},
		Tags: &[]*awscdk.CfnTag{{Key: jsii.String("trailfill"), Value: jsii.String("read-role")}},
	})
	awscdk.NewCfnOutput(stack, jsii.String("ReadRoleArn"), &awscdk.CfnOutputProps{
		Description: jsii.String("ARN of the trailfill read role"),
		Value:       role.AttrArn(),
	})
	return role
}

// accountOfArn returns the account field of an ARN, or "" when it has none
// (or is not an ARN).
func accountOfArn(s string) string {
	a, err := arn.Parse(s)
	if err != nil {
		return ""
	}
	return a.AccountID
}
