package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/plan"
	"github.com/trailfill/trailfill/statemachine/local"
)

// startFlags are start's own flags.
type startFlags struct {
	stack, name  string
	dryRun       bool
	watch        bool
	maxConc      int
	interval     time.Duration
	scanInterval time.Duration
}

// start starts a backfill on the deployed state machine. It validates the
// range exactly as run does, reads the stack's outputs (--stack), resolves the
// partitions (--accounts omitted: the caller's account; --regions all: each
// account's enabled regions through account:ListRegions, assuming the read role
// in other accounts, so the caller must be trusted by it: the CDK context key
// localPrincipalArn; or pass --regions), checks the Distributed Map's
// concurrency against the account's Lambda concurrency, writes the partitions
// to the stack's staging bucket (inputs/<execution name>/partitions.json, a
// create-only write) and calls states:StartExecution with the small input
// `run` executes locally, minus the destination (the stack's function writes
// to the stack's archive). The read role defaults to the stack's. It prints
// the execution ARN alone on stdout, for scripts, and the rest on stderr.
// --out, --org-id, --rate and --kms-key are refused: the stack decides them.
// startRefused are the range flags start refuses, and why: the stack
// decides them.
var startRefused = []struct{ flag, why string }{
	{"out", "the deployed stack writes to its own archive (output ArchiveDestination); to archive elsewhere use trailfill run --out, or redeploy with -c bucketName=... -c prefix=..."},
	{"org-id", "the deployed function uses the stack's orgId; redeploy with -c orgId=... to change the layout"},
	{"rate", "the deployed function uses the stack's rate; redeploy with -c rate=... to change it"},
	{"kms-key", "the deployed function writes with the stack's kmsKeyArn; redeploy with -c kmsKeyArn=... to change it"},
}

func (t *tree) start() *ffcli.Command {
	var f rangeFlags
	var s startFlags
	var fs *flag.FlagSet
	return t.add("trailfill", command{
		name:       "start",
		shortUsage: "start [--trail NAME|ARN] --start T --end T [--accounts A,B] [--regions R1,R2|all] [--stack NAME] [--dry-run] [--watch] [flags]",
		shortHelp:  "Start the backfill on the deployed state machine (found from the stack's outputs).",
		longHelp: `start reads the stack's outputs (cloudformation:DescribeStacks), resolves the
partitions, writes them to the stack's staging bucket (s3:PutObject on
inputs/<execution name>/partitions.json) and calls states:StartExecution with a small
input that names that object: any number of partitions fits one execution. It
prints the execution ARN on stdout. --dry-run prints the input and the object's
location and size, and writes and starts nothing.

--max-concurrency: partitions are independent (each account and region has its own
LookupEvents quota of 2 requests/s), so running more at once shortens a backfill in
proportion: parallelism is bounded by Lambda, not by the quota. Each running
partition holds one backfill invocation, drawn from the account's Lambda
concurrency in the stack's region (1,000 by default, shared with every function
without reserved concurrency). start reads the unreserved concurrency
(lambda:GetAccountSettings) and keeps a tenth of it (rounded up) for the account's
other functions: a --max-concurrency above the rest is refused (exit 2); the default
(40, safe in a busy account) is lowered to it, with a message. In an account of its
own, give up to 900 for an organization-wide backfill (trailfill plan
--max-concurrency shows the duration). With a reserved concurrency on the function
(-c reservedConcurrency), keep --max-concurrency at or below it.

Examples:
  trailfill start --start 2025-04-17T00:00:00Z --end 2025-04-20T00:00:00Z --accounts 222233334444 --dry-run
  trailfill start --start 2025-04-17T00:00:00Z --end 2025-04-20T00:00:00Z --accounts 222233334444,555566667777 --watch`,
		flags: func(set *flag.FlagSet) {
			fs = set
			f.register(fs, "")
			fs.StringVar(&s.stack, "stack", stackDefault(t.env), "the deployed trailfill stack ($"+contract.EnvStack+" sets the default)")
			fs.BoolVar(&s.dryRun, "dry-run", false, "print the execution input (JSON, on stdout) and the partitions object's location and size; write and start nothing")
			fs.BoolVar(&s.watch, "watch", false, "after starting, watch the execution until it ends (exit code = its outcome)")
			fs.StringVar(&s.name, "name", "", "execution name, [A-Za-z0-9_-], at most 80 characters (default: tf-<account>-<start>-<end>-<now>)")
			fs.IntVar(&s.maxConc, "max-concurrency", contract.DefaultMaxConcurrency, "partitions processed at once by the Distributed Map, 1-10000: each holds one Lambda invocation, so the account's Lambda concurrency bounds it (checked), not the LookupEvents quota")
			fs.DurationVar(&s.interval, "interval", 5*time.Second, "with --watch: how often to poll the execution")
			fs.DurationVar(&s.scanInterval, "scan-interval", defaultScanInterval, "with --watch: how often to read the archive's manifests for progress")
			for _, r := range startRefused {
				fs.Lookup(r.flag).Usage = "not used by start: " + r.why
			}
			fs.Lookup("role-name").Usage = "read role assumed in accounts other than the caller's; omitted: the stack's ReadRoleName output"
		},
		exec: func(ctx context.Context, args []string) error {
			if err := noArgs("start", args); err != nil {
				return err
			}
			return t.startExec(ctx, fs, f, s)
		},
	})
}

func (t *tree) startExec(ctx context.Context, fs *flag.FlagSet, f rangeFlags, s startFlags) error {
	env := t.env
	for _, refused := range startRefused {
		if flagGiven(fs, refused.flag) {
			return usagef("--%s is not used by start: %s", refused.flag, refused.why)
		}
	}
	spec, err := f.spec(env.Now(), false)
	if err != nil {
		return err
	}
	if err := checkStackName(s.stack); err != nil {
		return err
	}
	if s.name != "" && !executionNameRE.MatchString(s.name) {
		return usagef("--name %q: use 1 to 80 letters, digits, '-' or '_'", s.name)
	}
	if s.maxConc < 1 || s.maxConc > 10000 {
		return usagef("--max-concurrency %d: give 1 to 10000 partitions at once", s.maxConc)
	}
	if s.interval <= 0 {
		return usagef("--interval %s: give a positive duration such as 5s", s.interval)
	}
	if s.scanInterval < s.interval {
		return usagef("--scan-interval %s: give at least --interval (%s)", s.scanInterval, s.interval)
	}

	t.deps.profile = spec.Profile
	cfn, region, err := t.deps.CloudFormation(ctx, "")
	if err != nil {
		return err
	}
	dep, err := readDeployment(ctx, cfn, s.stack, region)
	if err != nil {
		return err
	}
	if dep.ReadRoleName != "" {
		switch {
		case !flagGiven(fs, "role-name"):
			spec.RoleName = dep.ReadRoleName
		case spec.RoleName != dep.ReadRoleName:
			return usagef("--role-name %s: the function of stack %s assumes %s; omit --role-name, or redeploy with -c readRoleName=%s", spec.RoleName, dep.Stack, dep.ReadRoleName, spec.RoleName)
		}
	}
	maxConc, err := t.mapConcurrency(ctx, dep, s.maxConc, flagGiven(fs, "max-concurrency"))
	if err != nil {
		return err
	}
	if err := t.resolveTrail(ctx, &f, &spec); err != nil {
		return err
	}
	if spec.Trail != nil && spec.Dest != dep.Archive {
		return usagef("--trail %s delivers to %s but stack %s writes to %s: redeploy the stack with -c bucketName=%s%s, or recover with trailfill run --trail", f.trail, spec.Dest, dep.Stack, dep.archiveName(), spec.Dest.Bucket, prefixContext(spec.Dest.Prefix))
	}
	printTrailNotes(env.Stderr, spec.Trail)
	clients, err := t.deps.Clients(ctx, spec.RoleName, spec.Rate)
	if err != nil {
		return err
	}
	parts, err := clients.Partitions(ctx, spec.Accounts, spec.Regions)
	if err != nil {
		if len(spec.Regions) == 0 {
			return fmt.Errorf("resolve --regions all (your credentials need account:ListRegions, and sts:AssumeRole on the read roles of other accounts: localPrincipalArn in docs/deploy.md), or pass --regions: %w", err)
		}
		return err
	}
	t.warnExpiry(spec, len(parts), maxConc, 0)
	if dep.Staging == "" {
		return fmt.Errorf("stack %s has no %s output: redeploy it with this trailfill (make deploy); the state machine reads its partitions from that bucket", dep.Stack, contract.OutputStagingBucket)
	}
	execName := s.name
	if execName == "" {
		execName = executionName(parts, spec.Start, spec.End, env.Now())
	}
	partitions, err := json.Marshal(parts)
	if err != nil {
		return fmt.Errorf("encode the partitions: %w", err)
	}
	input := spec.input("", maxConc)
	input.PartitionsKey, input.Partitions = contract.PartitionsObjectKey(execName), len(parts)
	body, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("encode the execution input: %w", err)
	}
	if len(body) > local.MaxPayloadBytes {
		return usagef("the execution input has %d bytes, more than the %d Step Functions accepts: shorten --role-name or --name", len(body), local.MaxPayloadBytes)
	}
	object := "s3://" + dep.Staging + "/" + input.PartitionsKey
	windows := archive.CountWindows(spec.Start, spec.End, spec.Window)
	machine := dep.StateMachine.String()
	if s.dryRun {
		pretty, err := json.MarshalIndent(input, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the execution input: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", pretty)
		fmt.Fprintf(env.Stderr, "trailfill: dry run: would write the partitions to %s (%d bytes) and start execution %s of %s with this input (%d bytes): %d partition(s) x %d window(s); nothing written or started\n",
			object, len(partitions), execName, machine, len(body), len(parts), windows)
		return nil
	}

	staging, err := t.deps.Staging(ctx, dep.Staging, dep.StateMachine.Region)
	if err != nil {
		return err
	}
	if err := stagePartitions(ctx, staging, input.PartitionsKey, partitions, execName); err != nil {
		return err
	}
	client, err := t.deps.StepFunctions(ctx, dep.StateMachine.Region)
	if err != nil {
		return err
	}
	out, err := client.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(machine),
		Name:            aws.String(execName),
		Input:           aws.String(string(body)),
	})
	if err != nil {
		var exists *sfntypes.ExecutionAlreadyExists
		var invalidName *sfntypes.InvalidName
		var noMachine *sfntypes.StateMachineDoesNotExist
		switch {
		case errors.As(err, &exists):
			return usagef("execution %s already exists: choose another --name, or omit --name for a fresh one (trailfill watch %s shows the existing one)", execName, dep.StateMachine.Execution(execName))
		case errors.As(err, &invalidName):
			return usagef("--name %q is not a valid execution name: use letters, digits, '-' and '_'", execName)
		case errors.As(err, &noMachine):
			return fmt.Errorf("the state machine %s of stack %s does not exist: redeploy the stack (make deploy): %w", machine, dep.Stack, err)
		}
		return fmt.Errorf("start the backfill with states:StartExecution on %s (check permissions): %w", machine, err)
	}
	arn := aws.ToString(out.ExecutionArn)
	fmt.Fprintln(env.Stdout, arn)
	fmt.Fprintf(env.Stderr, "trailfill: started %s: %s .. %s, %d partition(s) x %d window(s), into %s\n",
		execName, spec.Start.Format(time.RFC3339), spec.End.Format(time.RFC3339), len(parts), windows, dep.archiveName())
	fmt.Fprintf(env.Stderr, "  partitions: %s (%d bytes)\n", object, len(partitions))
	if ex, err := awsconf.ParseExecutionARN(arn); err == nil {
		fmt.Fprintf(env.Stderr, "  console: %s\n", ex.ConsoleURL())
	}
	if !s.watch {
		fmt.Fprintf(env.Stderr, "  follow:  trailfill watch %s\n", arn)
		return nil
	}
	w, err := t.newWatcher(ctx, client, dep, s.interval, s.scanInterval)
	if err != nil {
		return err
	}
	return w.watch(ctx, arn)
}

// stagePartitions writes an execution's partitions object with a
// create-only write (If-None-Match: *), so that a name already used never
// replaces the partitions of another execution: an object with the same
// bytes is this start tried again (StartExecution then decides), any other
// is refused. It needs s3:PutObject and s3:GetObject on the staging
// bucket's inputs/ (docs/deploy.md section 8).
func stagePartitions(ctx context.Context, staging *archive.S3Store, key string, body []byte, execName string) error {
	where := "s3://" + staging.Bucket + "/" + key
	created, err := staging.PutIfAbsent(ctx, key, body, nil)
	if err != nil {
		return fmt.Errorf("write the partitions to %s with s3:PutObject (grant it on the staging bucket's %s*: docs/deploy.md section 8): %w", where, contract.StagingInputsFolder, err)
	}
	if created {
		return nil
	}
	old, err := staging.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("%s exists; reading it back with s3:GetObject failed (grant it on the staging bucket's %s*): %w", where, contract.StagingInputsFolder, err)
	}
	if !bytes.Equal(old, body) {
		return usagef("execution name %s was used before with other partitions (%s): choose another --name, or omit --name for a fresh one", execName, where)
	}
	return nil
}

// mapConcurrency checks the Distributed Map's concurrency against the
// Lambda concurrency of the stack's account and region (plan.MapConcurrency).
func (t *tree) mapConcurrency(ctx context.Context, dep *deployment, requested int, explicit bool) (int, error) {
	client, err := t.deps.Lambda(ctx, dep.StateMachine.Region)
	if err != nil {
		return 0, err
	}
	out, err := client.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil {
		return 0, fmt.Errorf("read the account's Lambda concurrency with lambda:GetAccountSettings in %s (grant it to these credentials: docs/deploy.md section 8): %w", dep.StateMachine.Region, err)
	}
	unreserved := 0
	if out.AccountLimit != nil {
		unreserved = int(aws.ToInt32(out.AccountLimit.UnreservedConcurrentExecutions))
	}
	n, lowered, err := plan.MapConcurrency(requested, explicit, unreserved)
	if err != nil {
		return 0, usageError{fmt.Errorf("%w (account %s, %s)", err, dep.StateMachine.Account, dep.StateMachine.Region)}
	}
	if lowered {
		fmt.Fprintf(t.env.Stderr, "trailfill: --max-concurrency lowered from %d to %d: the account's unreserved Lambda concurrency in %s is %d and a tenth of it stays free for other functions\n",
			requested, n, dep.StateMachine.Region, unreserved)
	}
	return n, nil
}

// prefixContext is the CDK context argument of a prefix, or "".
func prefixContext(prefix string) string {
	if prefix == "" {
		return ""
	}
	return " -c prefix=" + prefix
}
