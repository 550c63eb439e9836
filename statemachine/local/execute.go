package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Invoker runs a Task's work. For lambda:invoke the payload is
// Arguments.Payload and the result returned to the state is
// {"Payload": <returned JSON>, "StatusCode": 200, "ExecutedVersion": "$LATEST"}
// (so definitions read $states.result.Payload), as Step Functions does. For a
// Task whose Resource is a Lambda function ARN, functionName is that ARN, the
// payload is the Arguments (or the state input when there are none) and the
// returned JSON is the result as is.
//
// resource is the Task's Resource. An error fails the task: see TaskError for
// how errors are named. Invoke must return when ctx ends (Task TimeoutSeconds,
// an aborted execution, a failed Map). Map iterations and Distributed Map
// children call it concurrently.
type Invoker interface {
	Invoke(ctx context.Context, resource, functionName string, payload json.RawMessage) (json.RawMessage, error)
}

// InvokerFunc adapts a function to the Invoker interface.
type InvokerFunc func(ctx context.Context, resource, functionName string, payload json.RawMessage) (json.RawMessage, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, resource, functionName string, payload json.RawMessage) (json.RawMessage, error) {
	return f(ctx, resource, functionName, payload)
}

// DefaultHistoryLimit is the Step Functions quota of events in one
// execution's history (Standard workflows).
const DefaultHistoryLimit = 25000

// DefaultMaxConcurrency caps the Distributed Map children run at once
// in-process when Options.MaxConcurrency is 0.
const DefaultMaxConcurrency = 40

// inlineMapConcurrency is the most iterations Step Functions runs at once in
// an inline Map state, whatever MaxConcurrency says.
const inlineMapConcurrency = 40

// distributedMapConcurrency is the most child executions Step Functions runs
// at once for a Distributed Map (MaxConcurrency 0 means this).
const distributedMapConcurrency = 10000

// Options configure one execution.
type Options struct {
	// Invoker runs the Lambda Task states. Required when the definition
	// has one.
	Invoker Invoker
	// Clock is used for timestamps, $now(), Retry delays and Wait states;
	// the default is the system clock. Tests (and `trailfill plan`) use a
	// FakeClock, which advances instantly.
	Clock Clock
	// Observer optionally receives every history event as it happens, of
	// this execution and of its Distributed Map children. If it also
	// implements MapRunObserver it receives Map Run counts.
	Observer Observer
	// MaxConcurrency caps the Distributed Map children actually run at once
	// in-process (default 40), below the Map's own MaxConcurrency.
	MaxConcurrency int
	// ExecutionName names the execution (default: a random UUID).
	ExecutionName string
	// StateMachineArn is the ARN the execution ARN and $states.context are
	// derived from (default
	// arn:aws:states:us-east-1:123456789012:stateMachine:trailfill).
	StateMachineArn string
	// RoleArn appears in ExecutionStarted; optional.
	RoleArn string
	// HistoryLimit is the number of history events at which an execution
	// fails with States.Runtime: 0 means DefaultHistoryLimit (25,000, as in
	// Step Functions), a negative value means no limit (to measure how far
	// past the quota an execution would go).
	HistoryLimit int
	// S3 serves the Distributed Map ItemReader and ResultWriter and the
	// aws-sdk:s3:getObject Task. Required when the definition uses one of
	// them.
	S3 S3

	// resultFileBytes overrides MaxResultFileBytes (tests).
	resultFileBytes int
}

// Result is the outcome of an execution.
type Result struct {
	// Execution identifies the execution.
	Execution ExecutionRef
	// Status is SUCCEEDED, FAILED, TIMED_OUT (the definition's
	// TimeoutSeconds passed) or ABORTED (the context ended).
	Status string
	// Output is the execution's output (SUCCEEDED only).
	Output json.RawMessage
	// Error and Cause describe a failure.
	Error, Cause string
	// StartTime and StopTime are read from the Clock.
	StartTime, StopTime time.Time
	Stats               Stats
}

// Stats count what an execution cost, the way Step Functions bills and
// limits it. See the package documentation for the counting rules.
type Stats struct {
	// StateTransitions is this execution's billed state transitions: one
	// per state entered (inline Map iterations included), one per retry.
	StateTransitions int
	// HistoryEvents is the number of events in this execution's own history.
	HistoryEvents int
	// TotalTransitions adds the transitions of all Distributed Map child
	// executions (what the bill counts).
	TotalTransitions int
	// TaskInvocations counts Invoker calls, retries and children included.
	TaskInvocations int
	// Executions is 1 plus the number of Distributed Map child executions
	// started.
	Executions int
	// MaxHistoryEvents is the largest history of this execution and all its
	// children: what the 25,000-event quota applies to.
	MaxHistoryEvents int
	// MaxHistoryExecution is the ARN of the execution that had it.
	MaxHistoryExecution string
	// Sizes are this execution's largest payloads.
	Sizes Sizes
	// MaxSizes are the largest payloads of this execution and all its
	// Distributed Map children, each with the execution it was seen in.
	MaxSizes Sizes
}

// Execution statuses.
const (
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusTimedOut  = "TIMED_OUT"
	StatusAborted   = "ABORTED"
)

// settings are the resolved Options shared by an execution and its children.
type settings struct {
	invoker        Invoker
	clock          Clock
	observer       Observer
	mapRunObserver MapRunObserver
	maxConcurrency int
	historyLimit   int64
	region         string
	account        string
	partition      string
	machineName    string
	machineArn     string
	roleArn        string
	s3             S3
	mapRuns        *mapRuns
	// resultFileBytes is the ResultWriter's file size limit (0: the AWS
	// one).
	resultFileBytes int
}

// tally accumulates counts over an execution tree.
type tally struct {
	transitions atomic.Int64
	invocations atomic.Int64
	executions  atomic.Int64

	mu         sync.Mutex
	maxHistory int64
	maxExec    string
	maxSizes   Sizes
}

// finished records an ended execution's history length and sizes.
func (t *tally) finished(n int64, exec string, sizes Sizes) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n > t.maxHistory || t.maxExec == "" {
		t.maxHistory, t.maxExec = n, exec
	}
	t.maxSizes.merge(sizes)
}

// Execute runs the state machine on input (a JSON document; empty means {}).
// It returns an error only for misuse: invalid input JSON, a definition with
// Lambda Task states but no Invoker, a definition that reads or writes S3
// (ItemReader, ResultWriter to S3, aws-sdk:s3:getObject) but no Options.S3,
// or a malformed StateMachineArn. A failed, timed-out or aborted execution
// is a Result with that Status.
func (m *Machine) Execute(ctx context.Context, input json.RawMessage, opts Options) (*Result, error) {
	s, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	if m.needsInvoker && s.invoker == nil {
		return nil, errors.New("execute: the definition has Lambda Task states but Options.Invoker is nil")
	}
	if m.needsS3 && s.s3 == nil {
		return nil, errors.New("execute: the definition reads or writes S3 (ItemReader, ResultWriter or aws-sdk:s3) but Options.S3 is nil: bind it, for example to a local.DirS3 folder")
	}
	if len(strings.TrimSpace(string(input))) == 0 {
		input = json.RawMessage("{}")
	}
	in, err := decodeJSON(input)
	if err != nil {
		return nil, fmt.Errorf("execute: invalid input JSON: %w", err)
	}
	if len(input) > MaxPayloadBytes {
		return nil, fmt.Errorf("execute: the input has %d bytes, more than the %d bytes Step Functions accepts", len(input), MaxPayloadBytes)
	}
	name := opts.ExecutionName
	if name == "" {
		name = newUUID()
	}
	ref := ExecutionRef{
		ID:   fmt.Sprintf("arn:%s:states:%s:%s:execution:%s:%s", s.partition, s.region, s.account, s.machineName, name),
		Name: name,
	}
	ex := newExecution(m, s, ref, &tally{}, m.root)
	if m.timeoutSeconds > 0 {
		ex.deadline = ex.start.Add(time.Duration(m.timeoutSeconds) * time.Second)
	}
	res := ex.run(ctx, in, len(input), m.timeoutSeconds)
	return res, nil
}

func resolve(opts Options) (*settings, error) {
	s := &settings{
		invoker:        opts.Invoker,
		clock:          opts.Clock,
		observer:       opts.Observer,
		maxConcurrency: opts.MaxConcurrency,
		historyLimit:   int64(opts.HistoryLimit),
		roleArn:        opts.RoleArn,
		s3:             opts.S3,
		mapRuns:        &mapRuns{},

		resultFileBytes: opts.resultFileBytes,
	}
	if s.clock == nil {
		s.clock = SystemClock{}
	}
	if s.maxConcurrency <= 0 {
		s.maxConcurrency = DefaultMaxConcurrency
	}
	switch {
	case s.historyLimit == 0:
		s.historyLimit = DefaultHistoryLimit
	case s.historyLimit < 0:
		s.historyLimit = 0 // no limit
	}
	if mro, ok := opts.Observer.(MapRunObserver); ok {
		s.mapRunObserver = mro
	}
	arn := opts.StateMachineArn
	if arn == "" {
		arn = "arn:aws:states:us-east-1:123456789012:stateMachine:trailfill"
	}
	parts := strings.Split(arn, ":")
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "stateMachine" || parts[6] == "" {
		return nil, fmt.Errorf("execute: malformed StateMachineArn %q", arn)
	}
	s.partition, s.region, s.account, s.machineName, s.machineArn = parts[1], parts[3], parts[4], parts[6], arn
	return s, nil
}

// execution is one execution: the top-level one or a Distributed Map child.
type execution struct {
	m        *Machine
	s        *settings
	ref      ExecutionRef
	tally    *tally
	states   *stateList
	hist     *history
	start    time.Time
	deadline time.Time // zero: no TimeoutSeconds

	transitions atomic.Int64
	sizes       sizeMeter
	// output is the execution's output once it succeeded.
	output any
	// contextExecution and contextMachine are the Execution and
	// StateMachine members of $states.context.
	contextExecution map[string]any
	contextMachine   map[string]any
}

func newExecution(m *Machine, s *settings, ref ExecutionRef, t *tally, states *stateList) *execution {
	t.executions.Add(1)
	return &execution{
		m:      m,
		s:      s,
		ref:    ref,
		tally:  t,
		states: states,
		hist:   &history{limit: s.historyLimit, obs: s.observer, ref: ref, clock: s.clock},
		start:  s.clock.Now(),
	}
}

// run executes the states from StartAt and records the outcome. inputSize
// is the size of the input document.
func (ex *execution) run(parent context.Context, input any, inputSize int, timeoutSeconds int64) *Result {
	ex.noteSize(sizeInput, inputSize, "")
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if timeoutSeconds > 0 {
		if _, real := ex.s.clock.(SystemClock); real {
			var stop context.CancelFunc
			ctx, stop = context.WithTimeoutCause(ctx, time.Duration(timeoutSeconds)*time.Second, errExecutionTimeout)
			defer stop()
		}
	}
	ex.contextExecution = map[string]any{
		"Id":           ex.ref.ID,
		"Input":        input,
		"Name":         ex.ref.Name,
		"RoleArn":      ex.s.roleArn,
		"StartTime":    timestamp(ex.start),
		"RedriveCount": float64(0),
	}
	if ex.s.roleArn == "" {
		ex.contextExecution["RoleArn"] = nullValue
	}
	ex.contextMachine = map[string]any{"Id": ex.s.machineArn, "Name": ex.s.machineName}

	t := &thread{ex: ex, ctx: ctx}
	t.emitTerminal("ExecutionStarted", "", func() any {
		d := map[string]any{"input": encodeString(input), "inputDetails": map[string]any{"truncated": false}}
		if ex.s.roleArn != "" {
			d["roleArn"] = ex.s.roleArn
		}
		return d
	})
	// The first state entered names no previous event (previousEventId 0),
	// as in histories recorded from Step Functions.
	t.last = 0
	out, serr := t.runStates(ex.states, input, newScope(nil))
	res := &Result{Execution: ex.ref, StartTime: ex.start}
	switch {
	case serr == nil:
		b, err := encodeJSON(out)
		if err != nil {
			serr = &stateError{Name: ErrorRuntime, Cause: fmt.Sprintf("the execution output is not JSON: %v", err)}
			break
		}
		res.Status, res.Output = StatusSucceeded, b
		ex.output = out
		t.emitTerminal("ExecutionSucceeded", "", func() any {
			return map[string]any{"output": string(b), "outputDetails": map[string]any{"truncated": false}}
		})
	}
	if serr != nil {
		res.Error, res.Cause = serr.Name, serr.Cause
		details := func() any { return map[string]any{"error": serr.Name, "cause": serr.Cause} }
		switch {
		case serr.timedOut:
			res.Status = StatusTimedOut
			t.emitTerminal("ExecutionTimedOut", "", details)
		case serr.aborted:
			res.Status = StatusAborted
			t.emitTerminal("ExecutionAborted", "", details)
		default:
			res.Status = StatusFailed
			t.emitTerminal("ExecutionFailed", "", details)
		}
	}
	res.StopTime = ex.s.clock.Now()
	events := ex.hist.count()
	sizes := ex.sizes.get()
	ex.tally.finished(events, ex.ref.ID, sizes)
	res.Stats = Stats{
		StateTransitions: int(ex.transitions.Load()),
		HistoryEvents:    int(events),
		Sizes:            sizes,
	}
	ex.fillTotals(&res.Stats)
	return res
}

func (ex *execution) fillTotals(st *Stats) {
	st.TotalTransitions = int(ex.tally.transitions.Load())
	st.TaskInvocations = int(ex.tally.invocations.Load())
	st.Executions = int(ex.tally.executions.Load())
	ex.tally.mu.Lock()
	st.MaxHistoryEvents, st.MaxHistoryExecution = int(ex.tally.maxHistory), ex.tally.maxExec
	st.MaxSizes = ex.tally.maxSizes
	ex.tally.mu.Unlock()
}

// transition counts a billed state transition.
func (ex *execution) transition() {
	ex.transitions.Add(1)
	ex.tally.transitions.Add(1)
}

// timestamp formats a time as Step Functions does in $states.context.
func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// history numbers an execution's events and hands them to the Observer.
type history struct {
	mu    sync.Mutex
	n     int64
	limit int64 // 0: none
	full  bool
	obs   Observer
	ref   ExecutionRef
	clock Clock
}

// add appends an event and returns its ID. Once the history holds limit-1
// events only terminal (Execution*) events are still added, so an execution
// that reaches the quota can still record its failure as the last event;
// other events are dropped and full is set, which fails the execution at its
// next state boundary.
func (h *history) add(prev int64, typ, stateName string, terminal bool, details func() any) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !terminal && h.limit > 0 && h.n >= h.limit-1 {
		h.full = true
		return prev
	}
	h.n++
	if h.obs != nil {
		ev := HistoryEvent{ID: h.n, PreviousEventID: prev, Type: typ, Timestamp: h.clock.Now(), StateName: stateName}
		if details != nil {
			if d := details(); d != nil {
				ev.Details, _ = json.Marshal(d)
			}
		}
		h.obs.Event(h.ref, ev)
	}
	return h.n
}

func (h *history) count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *history) isFull() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full
}

// thread is one line of control inside an execution: the main path, or one
// inline Map iteration. It carries the context that aborts it and the ID of
// its last event, which the next event names as its previous event.
type thread struct {
	ex   *execution
	ctx  context.Context
	last int64
}

func (t *thread) emit(typ, stateName string, details func() any) int64 {
	t.last = t.ex.hist.add(t.last, typ, stateName, false, details)
	return t.last
}

func (t *thread) emitTerminal(typ, stateName string, details func() any) {
	t.last = t.ex.hist.add(t.last, typ, stateName, true, details)
}

// checkpoint is called between states: it stops the thread when its context
// ended, the execution's TimeoutSeconds passed or the history is full.
func (t *thread) checkpoint() *stateError {
	if t.ctx.Err() != nil {
		return abortError(t.ctx)
	}
	if !t.ex.deadline.IsZero() && !t.ex.s.clock.Now().Before(t.ex.deadline) {
		return &stateError{Name: ErrorTimeout, Cause: "the execution exceeded its TimeoutSeconds", timedOut: true}
	}
	if t.ex.hist.isFull() {
		return &stateError{Name: ErrorRuntime, Cause: fmt.Sprintf(
			"the execution reached the maximum number of history events (%d)", t.ex.hist.limit)}
	}
	return nil
}

// scope holds the variables of one variable scope: the execution's top
// level, or one inline Map iteration (which reads its parent's variables).
// A Distributed Map child starts a new root scope.
type scope struct {
	parent *scope
	vars   map[string]any
}

func newScope(parent *scope) *scope { return &scope{parent: parent, vars: map[string]any{}} }

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

// commit applies the assignments of one state, all at once.
func (s *scope) commit(assigned map[string]any) {
	for k, v := range assigned {
		s.vars[k] = v
	}
}
