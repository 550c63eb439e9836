package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine/local"
)

// maxExecutionName is Step Functions' limit on execution names.
const maxExecutionName = 80

var (
	stackNameRE     = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]{0,127}|arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:[0-9]{12}:stack/[A-Za-z][A-Za-z0-9-]*/[A-Za-z0-9-]+)$`)
	executionNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
)

// StackAPI is the part of the CloudFormation client trailfill uses.
type StackAPI interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// StepFunctionsAPI is the part of the Step Functions client trailfill uses.
type StepFunctionsAPI interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	ListMapRuns(ctx context.Context, in *sfn.ListMapRunsInput, optFns ...func(*sfn.Options)) (*sfn.ListMapRunsOutput, error)
	DescribeMapRun(ctx context.Context, in *sfn.DescribeMapRunInput, optFns ...func(*sfn.Options)) (*sfn.DescribeMapRunOutput, error)
}

// deployment is what trailfill reads from the deployed stack's outputs.
type deployment struct {
	Stack           string
	Region          string
	StateMachineArn string
	Archive         archive.Destination // zero when the stack names no archive
	ReadRoleName    string              // empty when the stack has no such output
}

// stackFlag returns the --stack default: TRAILFILL_STACK or "trailfill".
func stackFlag(env *Env) string {
	if s := env.Getenv(contract.EnvStack); s != "" {
		return s
	}
	return contract.DefaultStackName
}

func checkStackName(name string) error {
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
	d := &deployment{Stack: name, Region: region, StateMachineArn: outputs[contract.OutputStateMachineArn], ReadRoleName: outputs[contract.OutputReadRoleName]}
	if _, ok := parseStateMachineArn(d.StateMachineArn); !ok {
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

// smArnParts is a parsed state machine ARN.
type smArnParts struct{ Partition, Region, Account, Name string }

func parseStateMachineArn(arn string) (smArnParts, bool) {
	p := strings.Split(arn, ":")
	if len(p) != 7 || p[0] != "arn" || !strings.HasPrefix(p[1], "aws") || p[2] != "states" || p[3] == "" || len(p[4]) != 12 || p[5] != "stateMachine" || p[6] == "" {
		return smArnParts{}, false
	}
	return smArnParts{Partition: p[1], Region: p[3], Account: p[4], Name: p[6]}, true
}

// executionArnOf is the ARN of a named execution of a state machine.
func executionArnOf(stateMachineArn, name string) string {
	return strings.Replace(stateMachineArn, ":stateMachine:", ":execution:", 1) + ":" + name
}

// consoleURL is the Step Functions console page of an execution.
func consoleURL(executionArn string) string {
	p := strings.Split(executionArn, ":")
	if len(p) < 4 {
		return ""
	}
	partition, region := p[1], p[3]
	host := region + ".console.aws.amazon.com"
	switch partition {
	case "aws-cn":
		host = region + ".console.amazonaws.cn"
	case "aws-us-gov":
		host = region + ".console.amazonaws-us-gov.com"
	}
	return fmt.Sprintf("https://%s/states/home?region=%s#/v2/executions/details/%s", host, region, executionArn)
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

// cmdStart starts a backfill on the deployed state machine. It validates the
// range exactly as run does, reads the stack's outputs (--stack), resolves the
// partitions (--accounts omitted: the caller's account; --regions all: each
// account's enabled regions through account:ListRegions, assuming the read role
// in other accounts, so the caller must be trusted by it: the CDK context key
// localPrincipalArn; or pass --regions), and calls states:StartExecution with
// the same input `run` executes locally, minus the destination (the stack's
// function writes to the stack's archive). The read role defaults to the
// stack's. It prints the execution ARN alone on stdout, for scripts, and the
// rest on stderr. --out, --org-id and --rate are refused: the stack decides them.
func cmdStart(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "start", "--start T --end T [--accounts A,B] [--regions R1,R2|all] [--stack NAME] [--dry-run] [--watch] ...")
	var f rangeFlags
	f.register(fs, "")
	stack := fs.String("stack", stackFlag(env), "the deployed trailfill stack ($"+contract.EnvStack+" sets the default)")
	dryRun := fs.Bool("dry-run", false, "print the execution input (JSON, on stdout) and start nothing")
	watch := fs.Bool("watch", false, "after starting, watch the execution until it ends (exit code = its outcome)")
	name := fs.String("name", "", "execution name, [A-Za-z0-9_-], at most 80 characters (default: tf-<account>-<start>-<end>-<now>)")
	maxConc := fs.Int("max-concurrency", 40, "partitions processed at once by the Distributed Map (1-10000; keep below the Lambda's concurrency)")
	interval := fs.Duration("interval", 5*time.Second, "with --watch: how often to poll the execution")
	fs.Lookup("out").Usage = "not used by start: the stack's function writes to the stack's archive"
	fs.Lookup("org-id").Usage = "not used by start: the stack's orgId decides the layout"
	fs.Lookup("rate").Usage = "not used by start: the stack's rate setting applies"
	fs.Lookup("role-name").Usage = "read role assumed in accounts other than the caller's; omitted: the stack's ReadRoleName output"
	if err := parse(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: start takes flags only", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, refused := range []struct{ flag, why string }{
		{"out", "the deployed stack writes to its own archive (output ArchiveDestination); to archive elsewhere use trailfill run --out, or redeploy with -c bucketName=... -c prefix=..."},
		{"org-id", "the deployed function uses the stack's orgId; redeploy with -c orgId=... to change the layout"},
		{"rate", "the deployed function uses the stack's rate; redeploy with -c rate=... to change it"},
	} {
		if set[refused.flag] {
			return usagef("--%s is not used by start: %s", refused.flag, refused.why)
		}
	}
	spec, err := f.spec(env.Now(), false)
	if err != nil {
		return err
	}
	if err := checkStackName(*stack); err != nil {
		return err
	}
	if *name != "" && !executionNameRE.MatchString(*name) {
		return usagef("--name %q: use 1 to 80 letters, digits, '-' or '_'", *name)
	}
	if *maxConc < 1 || *maxConc > 10000 {
		return usagef("--max-concurrency %d: give 1 to 10000 partitions at once", *maxConc)
	}
	if *interval <= 0 {
		return usagef("--interval %s: give a positive duration such as 5s", *interval)
	}

	cfg, err := awsconf.Load(ctx, spec.Profile)
	if err != nil {
		return err
	}
	dep, err := readDeployment(ctx, cloudformation.NewFromConfig(cfg), *stack, cfg.Region)
	if err != nil {
		return err
	}
	if dep.ReadRoleName != "" {
		switch {
		case !set["role-name"]:
			spec.RoleName = dep.ReadRoleName
		case spec.RoleName != dep.ReadRoleName:
			return usagef("--role-name %s: the function of stack %s assumes %s; omit --role-name, or redeploy with -c readRoleName=%s", spec.RoleName, dep.Stack, dep.ReadRoleName, spec.RoleName)
		}
	}
	clients := backfill.NewClients(cfg, sts.NewFromConfig(cfg), spec.RoleName, spec.Rate)
	parts, err := resolvePartitions(ctx, spec, cfg, clients)
	if err != nil {
		if len(spec.Regions) == 0 {
			return fmt.Errorf("resolve --regions all (your credentials need account:ListRegions, and sts:AssumeRole on the read roles of other accounts: localPrincipalArn in docs/deploy.md), or pass --regions: %w", err)
		}
		return err
	}
	input := executionInput(spec, parts, "", *maxConc)
	body, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("encode the execution input: %w", err)
	}
	if len(body) > local.MaxPayloadBytes {
		return usagef("the execution input has %d bytes, more than the %d Step Functions accepts: start the accounts in several executions", len(body), local.MaxPayloadBytes)
	}
	execName := *name
	if execName == "" {
		execName = executionName(parts, spec.Start, spec.End, env.Now())
	}
	windows := archive.CountWindows(spec.Start, spec.End, spec.Window)
	if *dryRun {
		pretty, err := json.MarshalIndent(input, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the execution input: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", pretty)
		fmt.Fprintf(env.Stderr, "trailfill: dry run: would start execution %s of %s: %d partition(s) x %d window(s); nothing started\n",
			execName, dep.StateMachineArn, len(parts), windows)
		return nil
	}

	client := sfn.NewFromConfig(cfg, func(o *sfn.Options) { o.Region = mustRegion(dep.StateMachineArn, cfg.Region) })
	out, err := client.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(dep.StateMachineArn),
		Name:            aws.String(execName),
		Input:           aws.String(string(body)),
	})
	if err != nil {
		var exists *sfntypes.ExecutionAlreadyExists
		var invalidName *sfntypes.InvalidName
		var noMachine *sfntypes.StateMachineDoesNotExist
		switch {
		case errors.As(err, &exists):
			return usagef("execution %s already exists: choose another --name, or omit --name for a fresh one (trailfill watch %s shows the existing one)", execName, executionArnOf(dep.StateMachineArn, execName))
		case errors.As(err, &invalidName):
			return usagef("--name %q is not a valid execution name: use letters, digits, '-' and '_'", execName)
		case errors.As(err, &noMachine):
			return fmt.Errorf("the state machine %s of stack %s does not exist: redeploy the stack (make deploy): %w", dep.StateMachineArn, dep.Stack, err)
		}
		return fmt.Errorf("start the backfill with states:StartExecution on %s (check permissions): %w", dep.StateMachineArn, err)
	}
	arn := aws.ToString(out.ExecutionArn)
	fmt.Fprintln(env.Stdout, arn)
	fmt.Fprintf(env.Stderr, "trailfill: started %s: %s .. %s, %d partition(s) x %d window(s), into %s\n",
		execName, spec.Start.Format(time.RFC3339), spec.End.Format(time.RFC3339), len(parts), windows, archiveName(dep))
	fmt.Fprintf(env.Stderr, "  console: %s\n", consoleURL(arn))
	if !*watch {
		fmt.Fprintf(env.Stderr, "  follow:  trailfill watch %s\n", arn)
		return nil
	}
	w := newWatcher(env, client, dep, cfg, *interval)
	return w.watch(ctx, arn)
}

// mustRegion is the region of an ARN, or def.
func mustRegion(arn, def string) string {
	if p := strings.Split(arn, ":"); len(p) > 3 && p[3] != "" {
		return p[3]
	}
	return def
}

func archiveName(d *deployment) string {
	if d.Archive.IsS3() {
		return d.Archive.String()
	}
	return "the stack's archive"
}
