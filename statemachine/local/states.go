package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"
)

// runStates runs a list of states from its StartAt until a terminal state and
// returns the last state's output.
func (t *thread) runStates(sl *stateList, input any, sc *scope) (any, *stateError) {
	name := sl.startAt
	for {
		if serr := t.checkpoint(); serr != nil {
			return nil, serr
		}
		out, next, serr := t.runState(sl.states[name], input, sc)
		if serr != nil {
			return nil, serr
		}
		if next == "" {
			return out, nil
		}
		name, input = next, out
	}
}

// stateRun is one entry into a state.
type stateRun struct {
	t           *thread
	st          *state
	sc          *scope
	input       any
	enteredID   int64
	enteredTime time.Time
	retryCount  int
}

// binding holds the optional members of $states for one evaluation.
type binding struct {
	result, errorOutput any
	hasResult, hasError bool
	mapIndex            int
	mapValue            any
	hasMapItem          bool
}

// runState enters a state, runs it and exits it. It returns the state's
// output and the next state ("" when the state ends its list of states).
func (t *thread) runState(st *state, input any, sc *scope) (any, string, *stateError) {
	r := &stateRun{t: t, st: st, sc: sc, input: input, enteredTime: t.ex.s.clock.Now()}
	r.enteredID = t.emit(st.typ+"StateEntered", st.name, func() any {
		return map[string]any{"name": st.name, "input": encodeString(input), "inputDetails": map[string]any{"truncated": false}}
	})
	t.ex.transition()

	var (
		out  any
		next string
		serr *stateError
	)
	switch st.typ {
	case "Pass":
		out, next, serr = r.pass()
	case "Choice":
		out, next, serr = r.choice()
	case "Wait":
		out, next, serr = r.wait()
	case "Succeed":
		out, serr = r.outputOnly(input)
	case "Fail":
		return nil, "", r.fail()
	case "Task":
		out, next, serr = r.withRetryAndCatch(r.taskAttempt)
	case "Map":
		out, next, serr = r.withRetryAndCatch(r.mapAttempt)
	default:
		serr = &stateError{Name: ErrorRuntime, Cause: fmt.Sprintf("unsupported state type %q", st.typ)}
	}
	if serr == nil {
		var n int
		n, serr = sizeWithin(out, fmt.Sprintf("The output of state '%s'", st.name))
		t.ex.noteSize(sizeStateOutput, n, st.name)
	}
	if serr != nil {
		if (serr.aborted || serr.timedOut) && (st.typ == "Task" || st.typ == "Map" || st.typ == "Wait") {
			t.emit(st.typ+"StateAborted", st.name, nil)
		}
		return nil, "", serr
	}
	t.emit(st.typ+"StateExited", st.name, func() any {
		return map[string]any{"name": st.name, "output": encodeString(out), "outputDetails": map[string]any{"truncated": false}}
	})
	return out, next, nil
}

// context builds $states.context.
func (r *stateRun) context(b binding) map[string]any {
	ctx := map[string]any{
		"Execution":    r.t.ex.contextExecution,
		"StateMachine": r.t.ex.contextMachine,
		"State": map[string]any{
			"Name":        r.st.name,
			"EnteredTime": timestamp(r.enteredTime),
			"RetryCount":  float64(r.retryCount),
		},
	}
	if b.hasMapItem {
		ctx["Map"] = map[string]any{"Item": map[string]any{"Index": float64(b.mapIndex), "Value": b.mapValue}}
	}
	return ctx
}

func (r *stateRun) evaluator(b binding) *evaluator {
	states := map[string]any{"input": r.input, "context": r.context(b)}
	if b.hasResult {
		states["result"] = b.result
	}
	if b.hasError {
		states["errorOutput"] = b.errorOutput
	}
	return &evaluator{names: r.t.ex.m.varNames, vars: r.sc, states: states, clock: r.t.ex.s.clock}
}

// eval evaluates a field. A failure is States.QueryEvaluationError, recorded
// with an EvaluationFailed event.
func (r *stateRun) eval(tp template, field string, b binding) (any, *stateError) {
	v, err := tp.eval(r.evaluator(b), field)
	if err != nil {
		return nil, r.queryError(field, err.Error())
	}
	return v, nil
}

func (r *stateRun) queryError(field, msg string) *stateError {
	cause := fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). %s",
		r.st.name, r.enteredID, msg)
	r.t.emit("EvaluationFailed", r.st.name, func() any {
		return map[string]any{"state": r.st.name, "error": ErrorQueryEvaluation, "cause": cause, "location": field}
	})
	return &stateError{Name: ErrorQueryEvaluation, Cause: cause}
}

// typeError reports a field whose value has the wrong type.
func (r *stateRun) typeError(tp template, field, want string, got any) *stateError {
	what := fmt.Sprintf("The field '%s'", field)
	if x, ok := tp.(*exprTemplate); ok {
		what = fmt.Sprintf("The JSONata expression '%s' specified for the field '%s'", x.src, field)
	}
	return r.queryError(field, fmt.Sprintf("%s returned an unexpected result: expected %s, but was %s: %s",
		what, want, typeName(got), encodeString(got)))
}

// evalInt evaluates a field that must be an integer of at least min.
func (r *stateRun) evalInt(tp template, field string, min int64, b binding) (int64, *stateError) {
	v, serr := r.eval(tp, field, b)
	if serr != nil {
		return 0, serr
	}
	n, ok := asInteger(v)
	if !ok || n < min || n > 99999999 {
		want := "a non-negative integer"
		if min > 0 {
			want = "a positive integer"
		}
		return 0, r.typeError(tp, field, want, v)
	}
	return n, nil
}

// evalNumber evaluates a field that must be a number within [lo, hi].
func (r *stateRun) evalNumber(tp template, field string, lo, hi float64, b binding) (float64, *stateError) {
	v, serr := r.eval(tp, field, b)
	if serr != nil {
		return 0, serr
	}
	f, ok := v.(float64)
	if !ok || f < lo || f > hi {
		return 0, r.typeError(tp, field, fmt.Sprintf("a number from %v to %v", lo, hi), v)
	}
	return f, nil
}

// outputAndAssign evaluates a state's Output (def when absent) and Assign,
// both against the variables as they were when the state was entered, and
// returns the assignments without applying them.
func (r *stateRun) outputAndAssign(outT, assignT template, def any, b binding, where string) (any, map[string]any, *stateError) {
	out := def
	if outT != nil {
		v, serr := r.eval(outT, where+"Output", b)
		if serr != nil {
			return nil, nil, serr
		}
		out = v
	}
	var assigned map[string]any
	if assignT != nil {
		v, serr := r.eval(assignT, where+"Assign", b)
		if serr != nil {
			return nil, nil, serr
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, nil, r.typeError(assignT, where+"Assign", "an object", v)
		}
		if serr := dataLimit(m, fmt.Sprintf("The Assign field of state '%s'", r.st.name)); serr != nil {
			return nil, nil, serr
		}
		assigned = m
	}
	return out, assigned, nil
}

func (r *stateRun) pass() (any, string, *stateError) {
	out, assigned, serr := r.outputAndAssign(r.st.output, r.st.assign, r.input, binding{}, "")
	if serr != nil {
		return nil, "", serr
	}
	r.sc.commit(assigned)
	return out, r.st.next, nil
}

// outputOnly is the Succeed state: Output, or the input.
func (r *stateRun) outputOnly(input any) (any, *stateError) {
	out, _, serr := r.outputAndAssign(r.st.output, nil, input, binding{}, "")
	return out, serr
}

func (r *stateRun) choice() (any, string, *stateError) {
	st := r.st
	for i, c := range st.choices {
		field := fmt.Sprintf("Choices/%d/Condition", i)
		v, serr := r.eval(c.condition, field, binding{})
		if serr != nil {
			return nil, "", serr
		}
		matched, ok := v.(bool)
		if !ok {
			return nil, "", r.typeError(c.condition, field, "a boolean", v)
		}
		if !matched {
			continue
		}
		// A matching rule's own Output and Assign apply, not the state's.
		out, assigned, serr := r.outputAndAssign(c.output, c.assign, r.input, binding{}, fmt.Sprintf("Choices/%d/", i))
		if serr != nil {
			return nil, "", serr
		}
		r.sc.commit(assigned)
		return out, c.next, nil
	}
	if st.defaultNext == "" {
		return nil, "", &stateError{Name: ErrorNoChoiceMatched, Cause: fmt.Sprintf(
			"No Matches! (no rule of Choice state '%s' matched and it has no Default)", st.name)}
	}
	out, assigned, serr := r.outputAndAssign(st.output, st.assign, r.input, binding{}, "")
	if serr != nil {
		return nil, "", serr
	}
	r.sc.commit(assigned)
	return out, st.defaultNext, nil
}

func (r *stateRun) wait() (any, string, *stateError) {
	n, serr := r.evalInt(r.st.seconds, "Seconds", 0, binding{})
	if serr != nil {
		return nil, "", serr
	}
	if err := r.t.ex.s.clock.Sleep(r.t.ctx, time.Duration(n)*time.Second); err != nil || r.t.ctx.Err() != nil {
		return nil, "", abortError(r.t.ctx)
	}
	out, assigned, serr := r.outputAndAssign(r.st.output, r.st.assign, r.input, binding{}, "")
	if serr != nil {
		return nil, "", serr
	}
	r.sc.commit(assigned)
	return out, r.st.next, nil
}

func (r *stateRun) fail() *stateError {
	var name, cause string
	for _, f := range []struct {
		tp    template
		field string
		dst   *string
	}{{r.st.errorT, "Error", &name}, {r.st.causeT, "Cause", &cause}} {
		if f.tp == nil {
			continue
		}
		v, serr := r.eval(f.tp, f.field, binding{})
		if serr != nil {
			return serr
		}
		s, ok := v.(string)
		if !ok {
			return r.typeError(f.tp, f.field, "a string", v)
		}
		*f.dst = s
	}
	return &stateError{Name: name, Cause: cause}
}

// errorMatches reports whether an ErrorEquals list matches an error name.
// States.ALL matches everything and States.TaskFailed everything except
// States.Timeout; neither matches States.DataLimitExceeded, which only its
// own name catches. States.Runtime is never matched: callers stop before.
func errorMatches(list []string, name string) bool {
	for _, e := range list {
		switch {
		case e == name:
			return true
		case name == ErrorDataLimitExceeded:
			// Only matched by name: "a terminal error that can't be caught
			// by the States.ALL error type".
		case e == ErrorAll:
			return true
		case e == ErrorTaskFailed && name != ErrorTimeout:
			return true
		}
	}
	return false
}

// delay is the wait before retry number attempt (1-based):
// IntervalSeconds * BackoffRate^(attempt-1), capped by MaxDelaySeconds, and
// with JitterStrategy FULL a random duration between 0 and that.
func (rt *retrier) delay(attempt int) time.Duration {
	d := float64(rt.interval) * math.Pow(rt.backoffRate, float64(attempt-1))
	if rt.maxDelay > 0 && d > float64(rt.maxDelay) {
		d = float64(rt.maxDelay)
	}
	if d > float64(math.MaxInt64/2) {
		d = float64(math.MaxInt64 / 2)
	}
	if rt.jitterFull {
		d *= mrand.Float64()
	}
	return time.Duration(d)
}

// withRetryAndCatch runs the work of a Task or Map state, then its Output and
// Assign, applying Retry and Catch to a failure of either.
func (r *stateRun) withRetryAndCatch(work func() (any, *stateError)) (any, string, *stateError) {
	st, t := r.st, r.t
	attempts := make([]int, len(st.retry))
	for {
		result, serr := work()
		workFailed := serr != nil
		if serr == nil {
			out, assigned, oerr := r.outputAndAssign(st.output, st.assign, result,
				binding{result: result, hasResult: true}, "")
			if oerr == nil {
				r.sc.commit(assigned)
				return out, st.next, nil
			}
			serr = oerr
		}
		if serr.terminal() {
			return nil, "", serr
		}
		// The first retrier whose ErrorEquals matches decides; once its
		// MaxAttempts are used up, the error goes on to Catch.
		retried := false
		for i, rt := range st.retry {
			if !errorMatches(rt.errorEquals, serr.Name) {
				continue
			}
			if attempts[i] < rt.maxAttempts {
				attempts[i]++
				if err := t.ex.s.clock.Sleep(t.ctx, rt.delay(attempts[i])); err != nil || t.ctx.Err() != nil {
					return nil, "", abortError(t.ctx)
				}
				if cerr := t.checkpoint(); cerr != nil {
					return nil, "", cerr
				}
				r.retryCount++
				t.ex.transition()
				retried = true
			}
			break
		}
		if retried {
			continue
		}
		// A Map whose iterations failed records MapStateFailed once, when
		// no retry follows.
		if workFailed && st.typ == "Map" {
			t.emit("MapStateFailed", st.name, nil)
		}
		for i, c := range st.catch {
			if !errorMatches(c.errorEquals, serr.Name) {
				continue
			}
			errorOutput := map[string]any{"Error": serr.Name, "Cause": serr.Cause}
			out, assigned, cerr := r.outputAndAssign(c.output, c.assign, errorOutput,
				binding{errorOutput: errorOutput, hasError: true}, fmt.Sprintf("Catch/%d/", i))
			if cerr != nil {
				return nil, "", cerr
			}
			r.sc.commit(assigned)
			return out, c.next, nil
		}
		return nil, "", serr
	}
}

// taskAttempt runs the Task's work once: a Lambda invocation through the
// Invoker, or an AWS SDK integration.
func (r *stateRun) taskAttempt() (any, *stateError) {
	st, t := r.st, r.t
	args := r.input
	if st.arguments != nil {
		v, serr := r.eval(st.arguments, "Arguments", binding{})
		if serr != nil {
			return nil, serr
		}
		args = v
	}
	argsSize, _ := jsonSize(args, math.MaxInt)
	t.ex.noteSize(sizeTaskArguments, argsSize, st.name)
	var timeout int64
	if st.timeout != nil {
		n, serr := r.evalInt(st.timeout, "TimeoutSeconds", 1, binding{})
		if serr != nil {
			return nil, serr
		}
		timeout = n
	}
	functionName, payload := st.resource, args
	if st.integration == integrationLambdaInvoke {
		obj, ok := args.(map[string]any)
		if !ok {
			return nil, &stateError{Name: ErrorRuntime, Cause: fmt.Sprintf(
				"the Arguments of state '%s' must be an object for lambda:invoke, got %s", st.name, typeName(args))}
		}
		functionName, ok = obj["FunctionName"].(string)
		if !ok || functionName == "" {
			return nil, &stateError{Name: ErrorRuntime, Cause: fmt.Sprintf(
				"the Arguments of state '%s' have no FunctionName string for lambda:invoke", st.name)}
		}
		var has bool
		if payload, has = obj["Payload"]; !has {
			payload = map[string]any{}
		}
	}
	payloadJSON, err := encodeJSON(payload)
	if err != nil {
		return nil, &stateError{Name: ErrorRuntime, Cause: fmt.Sprintf("the payload of state '%s' is not JSON: %v", st.name, err)}
	}

	// Task events name the integration: resourceType "lambda" and resource
	// "invoke", or for aws-sdk:<service>:<action> resourceType
	// "aws-sdk:<service>" and resource "<action>" (histories recorded from
	// AWS in LocalStack's validated snapshot tests). A Lambda function ARN
	// records LambdaFunction* events instead.
	taskEvents := st.integration != integrationLambdaFunction
	resourceType, resource := "lambda", "invoke"
	switch st.integration {
	case integrationDescribeMapRun:
		resourceType, resource = "aws-sdk:sfn", "describeMapRun"
	case integrationS3GetObject:
		resourceType, resource = "aws-sdk:s3", "getObject"
	}
	resourceDetails := func(extra map[string]any) func() any {
		return func() any {
			d := map[string]any{"resourceType": resourceType, "resource": resource}
			for k, v := range extra {
				d[k] = v
			}
			return d
		}
	}
	if taskEvents {
		scheduled := map[string]any{"region": t.ex.s.region, "parameters": encodeString(args)}
		if timeout > 0 {
			scheduled["timeoutInSeconds"] = timeout
		}
		t.emit("TaskScheduled", st.name, resourceDetails(scheduled))
		t.emit("TaskStarted", st.name, resourceDetails(nil))
	} else {
		t.emit("LambdaFunctionScheduled", st.name, func() any {
			d := map[string]any{"resource": st.resource, "input": string(payloadJSON), "inputDetails": map[string]any{"truncated": false}}
			if timeout > 0 {
				d["timeoutInSeconds"] = timeout
			}
			return d
		})
		t.emit("LambdaFunctionStarted", st.name, nil)
	}

	ctx, cancel := t.ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(t.ctx, time.Duration(timeout)*time.Second, errTaskTimeout)
	}
	var (
		raw     json.RawMessage
		sdkOut  any
		sdkFail *sdkFailure
	)
	switch st.integration {
	case integrationLambdaInvoke, integrationLambdaFunction:
		t.ex.tally.invocations.Add(1)
		raw, err = t.ex.s.invoker.Invoke(ctx, st.resource, functionName, payloadJSON)
	default:
		sdkOut, sdkFail = r.callSDK(ctx, args)
	}
	timedOut := errors.Is(context.Cause(ctx), errTaskTimeout)
	cancel()
	if t.ctx.Err() != nil {
		return nil, abortError(t.ctx)
	}

	failed := func(typ, name, cause string) (any, *stateError) {
		t.emit(typ, st.name, func() any {
			d := map[string]any{"error": name, "cause": cause}
			if taskEvents {
				d["resourceType"], d["resource"] = resourceType, resource
			}
			return d
		})
		return nil, &stateError{Name: name, Cause: cause}
	}
	if timedOut {
		typ := "LambdaFunctionTimedOut"
		if taskEvents {
			typ = "TaskTimedOut"
		}
		return failed(typ, ErrorTimeout, fmt.Sprintf("the task exceeded its TimeoutSeconds (%d)", timeout))
	}
	failedType := "LambdaFunctionFailed"
	if taskEvents {
		failedType = "TaskFailed"
	}
	var result any
	switch {
	case sdkFail != nil:
		return failed(failedType, sdkFail.name, sdkFail.cause)
	case sdkOut != nil:
		result = sdkOut
	case err != nil:
		name, cause := taskErrorNames(err)
		return failed(failedType, name, cause)
	default:
		var value any = nullValue
		if len(raw) > 0 {
			if value, err = decodeJSON(raw); err != nil {
				return failed(failedType, ErrorTaskFailed, fmt.Sprintf("the function returned invalid JSON: %v", err))
			}
		}
		result = value
		if st.integration == integrationLambdaInvoke {
			result = map[string]any{"ExecutedVersion": "$LATEST", "Payload": value, "StatusCode": float64(200)}
		}
	}
	n, serr := sizeWithin(result, fmt.Sprintf("The result of state '%s'", st.name))
	t.ex.noteSize(sizeTaskResult, n, st.name)
	if serr != nil {
		return failed(failedType, serr.Name, serr.Cause)
	}
	if taskEvents {
		t.emit("TaskSucceeded", st.name, resourceDetails(map[string]any{
			"output": encodeString(result), "outputDetails": map[string]any{"truncated": false}}))
	} else {
		t.emit("LambdaFunctionSucceeded", st.name, func() any {
			return map[string]any{"output": encodeString(result), "outputDetails": map[string]any{"truncated": false}}
		})
	}
	return result, nil
}
