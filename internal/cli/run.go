package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/statemachine"
	"github.com/trailfill/trailfill/statemachine/local"
)

func cmdRun(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "run", "--start T --end T [--accounts A,B] [--regions R1,R2|all] [--out DIR|s3://bucket/prefix] ...")
	var f rangeFlags
	f.register(fs, "./archive")
	if err := parse(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: run takes flags only", fs.Arg(0))
	}
	spec, err := f.spec(env.Now(), true)
	if err != nil {
		return err
	}
	cfg, err := awsconf.Load(ctx, spec.Profile)
	if err != nil {
		return err
	}
	_, err = runBackfill(ctx, env, spec, cfg)
	return err
}

func executionInput(s rangeSpec, parts []contract.Partition, destination string, maxConcurrency int) contract.ExecutionInput {
	return contract.ExecutionInput{
		Partitions:     parts,
		Start:          s.Start.Format(time.RFC3339),
		End:            s.End.Format(time.RFC3339),
		WindowMinutes:  int(s.Window / time.Minute),
		RoleName:       s.RoleName,
		Destination:    destination,
		MaxConcurrency: maxConcurrency,
	}
}

// runSummary is what `trailfill run` reports.
type runSummary struct {
	Partitions []contract.PartitionSummary
	Events     int64
	Files      int64
	Windows    int
	Skipped    int
	Requests   int64
	Throttled  int64
	Wall       time.Duration
	Stats      local.Stats
	Archive    string
}

// localMachine loads the embedded definition with the function bound locally.
func localMachine() (*local.Machine, error) {
	def := statemachine.Render(contract.LocalFunctionName)
	m, err := local.Load([]byte(def))
	if err != nil {
		return nil, fmt.Errorf("load the embedded state machine: %w", err)
	}
	return m, nil
}

// handlerInvoker binds the state machine's Task to the backfill handler, the
// same code the deployed Lambda runs. Errors carry the name the Lambda runtime
// would report (the Go type name) so Catch and Retry behave as in the cloud.
func handlerInvoker(h *backfill.Handler) local.Invoker {
	return local.InvokerFunc(func(ctx context.Context, _, fn string, payload json.RawMessage) (json.RawMessage, error) {
		if fn != contract.LocalFunctionName {
			return nil, &local.TaskError{Name: "Lambda.ResourceNotFoundException", Cause: "no local function " + fn}
		}
		var in contract.Invocation
		if err := json.Unmarshal(payload, &in); err != nil {
			return nil, lambdaError(fmt.Errorf("decode backfill payload: %w", err))
		}
		out, err := h.Handle(ctx, in)
		if err != nil {
			return nil, lambdaError(err)
		}
		return json.Marshal(out)
	})
}

func lambdaError(err error) *local.TaskError {
	// aws-lambda-go reports the Go type name: the handler's errors are
	// *backfill.PartitionError; an fmt.Errorf("...%w") is a *fmt.wrapError.
	name := "PartitionError"
	var pe *backfill.PartitionError
	if !errors.As(err, &pe) {
		name = "wrapError"
	}
	cause, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": name})
	return &local.TaskError{Name: name, Cause: string(cause)}
}

// runBackfill executes the state machine locally over the resolved partitions.
func runBackfill(ctx context.Context, env *Env, spec rangeSpec, cfg aws.Config) (*runSummary, error) {
	clients := backfill.NewClients(cfg, sts.NewFromConfig(cfg), spec.RoleName, spec.Rate)
	var s3c archive.S3API
	if spec.Dest.IsS3() {
		s3c = awsconf.NewS3(cfg)
	}
	store, err := archive.Open(spec.Dest, s3c, archive.S3Options{})
	if err != nil {
		return nil, err
	}
	parts, err := resolvePartitions(ctx, spec, cfg, clients)
	if err != nil {
		return nil, err
	}
	machine, err := localMachine()
	if err != nil {
		return nil, err
	}
	progress := &engine.Progress{}
	h := &backfill.Handler{Store: store, OrgID: spec.OrgID, Clients: clients, Logger: env.Logger, Progress: progress}
	input, err := json.Marshal(executionInput(spec, parts, store.String(), len(parts)))
	if err != nil {
		return nil, fmt.Errorf("encode execution input: %w", err)
	}
	total := int64(archive.CountWindows(spec.Start, spec.End, spec.Window) * len(parts))
	fmt.Fprintf(env.Stderr, "trailfill: backfilling %s .. %s, %d partition(s), %d window(s), into %s\n",
		spec.Start.Format(time.RFC3339), spec.End.Format(time.RFC3339), len(parts), total, store)
	stop := startProgress(env, progress, total)
	began := time.Now()
	res, err := machine.Execute(ctx, input, local.Options{Invoker: handlerInvoker(h), Clock: env.Clock, MaxConcurrency: len(parts)})
	stop()
	if err != nil {
		return nil, fmt.Errorf("execute the state machine locally: %w", err)
	}
	sum := &runSummary{Wall: time.Since(began), Stats: res.Stats, Archive: store.String()}
	for _, p := range parts {
		lim := clients.Limiter(p.Account, p.Region)
		sum.Requests += lim.Attempts()
		sum.Throttled += lim.ThrottledCount()
	}
	sum.Events = progress.Events.Load()
	sum.Files = progress.Files.Load()
	if res.Status != "SUCCEEDED" {
		fmt.Fprintf(env.Stderr, "trailfill: execution %s: %s\n", strings.ToLower(res.Status), res.Error)
		if _, err := printFailure(env.Stderr, res.Error, res.Cause); err != nil {
			return sum, err
		}
		return sum, failedError{fmt.Sprintf("backfill %s: %s; archived windows are kept, re-run the same command to resume", strings.ToLower(res.Status), res.Error)}
	}
	var out struct {
		Partitions []contract.PartitionSummary `json:"partitions"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		return sum, fmt.Errorf("decode the state machine output: %w", err)
	}
	sum.Partitions = out.Partitions
	for _, p := range out.Partitions {
		sum.Windows += p.Windows
		sum.Skipped += p.WindowsSkipped
	}
	printSummary(env, spec, sum)
	return sum, nil
}

func printSummary(env *Env, spec rangeSpec, s *runSummary) {
	w := env.Stderr
	fmt.Fprintf(w, "trailfill: archived %d events in %d files; %d windows done, %d already archived, over %d partition(s)\n",
		s.Events, s.Files, s.Windows, s.Skipped, len(s.Partitions))
	rate := 0.0
	if s.Wall > 0 {
		rate = float64(s.Events) / s.Wall.Seconds()
	}
	fmt.Fprintf(w, "  requests %d (throttled %d), wall time %s, %.1f events/s\n", s.Requests, s.Throttled, s.Wall.Round(10*time.Millisecond), rate)
	if busiest, ok := busiestPartition(s.Partitions); ok && busiest.Events > 0 {
		ideal := idealTime(busiest.Events, spec.Rate)
		fmt.Fprintf(w, "  efficiency %.0f%% of the quota ceiling (%.0f events/s per partition at %g req/s): busiest partition %s/%s, %d events, ideal %s\n",
			100*ideal.Seconds()/s.Wall.Seconds(), spec.Rate*engine.PageSize, spec.Rate, busiest.Account, busiest.Region, busiest.Events, ideal.Round(100*time.Millisecond))
	}
	fmt.Fprintf(w, "  archive: %s (trail files under AWSLogs/, manifests under %s)\n", s.Archive, archive.ManifestRoot)
}

// idealTime is the least time LookupEvents can deliver n events in at rate
// requests/s (full pages back to back).
func idealTime(n int64, rate float64) time.Duration {
	pages := math.Ceil(float64(n) / engine.PageSize)
	return time.Duration(pages / rate * float64(time.Second))
}

func busiestPartition(ps []contract.PartitionSummary) (contract.PartitionSummary, bool) {
	if len(ps) == 0 {
		return contract.PartitionSummary{}, false
	}
	sorted := append([]contract.PartitionSummary(nil), ps...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].Events > sorted[b].Events })
	return sorted[0], true
}
