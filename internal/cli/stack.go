package cli

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
)

// maxExecutionName is Step Functions' limit on execution names.
const maxExecutionName = 80

var (
	stackNameRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,127}$`)
	executionNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
)

// deployment is what trailfill reads from the deployed stack's outputs.
type deployment struct {
	Stack        string
	Region       string
	StateMachine awsconf.StateMachineARN
	Archive      archive.Destination // zero when the stack names no archive
	ReadRoleName string              // empty when the stack has no such output
	// Staging is the state machine's staging bucket (output StagingBucket):
	// start writes the partitions there, watch reads the results.
	Staging string
}

// stackDefault returns the --stack default: TRAILFILL_STACK or "trailfill".
func stackDefault(env *Env) string {
	if s := env.Getenv(contract.EnvStack); s != "" {
		return s
	}
	return contract.DefaultStackName
}

// checkStackName accepts a stack name or a stack ID (its ARN).
func checkStackName(name string) error {
	if strings.HasPrefix(name, "arn:") {
		if _, err := awsconf.ParseStackARN(name); err != nil {
			return usagef("--stack: %w", err)
		}
		return nil
	}
	if !stackNameRE.MatchString(name) {
		return usagef("--stack %q: give a CloudFormation stack name (a letter, then letters, digits and hyphens) or stack ID", name)
	}
	return nil
}

// readDeployment reads the stack's outputs with cloudformation:DescribeStacks.
// A stack that does not exist is a usage error: nothing was started.
func readDeployment(ctx context.Context, api StackAPI, name, region string) (*deployment, error) {
	out, err := api.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") {
			return nil, usagef("stack %s does not exist in %s for these credentials: deploy it (docs/deploy.md), pass --stack NAME (or set %s), or set AWS_REGION to the stack's region", name, region, contract.EnvStack)
		}
		return nil, fmt.Errorf("read the outputs of stack %s with cloudformation:DescribeStacks (check credentials and permissions): %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return nil, usagef("stack %s does not exist in %s: deploy it (docs/deploy.md) or pass --stack NAME", name, region)
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	d := &deployment{Stack: name, Region: region, ReadRoleName: outputs[contract.OutputReadRoleName], Staging: outputs[contract.OutputStagingBucket]}
	if d.StateMachine, err = awsconf.ParseStateMachineARN(outputs[contract.OutputStateMachineArn]); err != nil {
		return nil, usagef("stack %s has no %s output: it is not a trailfill backfill stack; pass --stack with the name of the stack `make deploy` created", name, contract.OutputStateMachineArn)
	}
	dest := outputs[contract.OutputArchiveDestination]
	if dest == "" && outputs[contract.OutputArchiveBucket] != "" {
		dest = "s3://" + outputs[contract.OutputArchiveBucket]
		if p := outputs[contract.OutputArchivePrefix]; p != "" {
			dest += "/" + p
		}
	}
	if dest != "" {
		if d.Archive, err = archive.ParseDestination(dest); err != nil || !d.Archive.IsS3() {
			return nil, fmt.Errorf("stack %s names the archive %q, which is not s3://bucket[/prefix]: redeploy the stack", name, dest)
		}
	}
	return d, nil
}

func (d *deployment) archiveName() string {
	if d.Archive.IsS3() {
		return d.Archive.String()
	}
	return "the stack's archive"
}

// executionName names an execution readably: the account (or the number of
// accounts), the range and the time it was started, e.g.
// tf-111111111111-20250417T1500Z-20250418T0000Z-20251123T201500Z. Only
// [A-Za-z0-9_-] (safe for Step Functions, CloudWatch Logs and shells), at
// most 80 characters.
func executionName(parts []contract.Partition, start, end, now time.Time) string {
	var accounts []string
	seen := map[string]bool{}
	for _, p := range parts {
		if !seen[p.Account] {
			seen[p.Account] = true
			accounts = append(accounts, p.Account)
		}
	}
	who := fmt.Sprintf("%dacct", len(accounts))
	if len(accounts) == 1 {
		who = accounts[0]
	}
	compact := func(t time.Time) string {
		if t.Second() != 0 {
			return t.UTC().Format("20060102T150405Z")
		}
		return t.UTC().Format("20060102T1504Z")
	}
	name := "tf-" + who + "-" + compact(start) + "-" + compact(end) + "-" + now.UTC().Format("20060102T150405Z")
	name = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '-'
	}, name)
	if len(name) > maxExecutionName {
		name = name[:maxExecutionName]
	}
	return name
}

// validExecutionRef accepts what Step Functions accepts as an execution name.
func validExecutionRef(n string) bool {
	if n == "" || len([]rune(n)) > maxExecutionName {
		return false
	}
	return !strings.ContainsAny(n, " \t\r\n<>{}[]?*\"#%\\^|~`$&,;:/")
}
