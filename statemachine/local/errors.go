package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Error names the executor reports, as Step Functions names them.
const (
	ErrorAll                     = "States.ALL"
	ErrorTaskFailed              = "States.TaskFailed"
	ErrorTimeout                 = "States.Timeout"
	ErrorRuntime                 = "States.Runtime"
	ErrorQueryEvaluation         = "States.QueryEvaluationError"
	ErrorNoChoiceMatched         = "States.NoChoiceMatched"
	ErrorExceedToleratedFailures = "States.ExceedToleratedFailureThreshold"
	ErrorDataLimitExceeded       = "States.DataLimitExceeded"
	// ErrorItemReaderFailed: "A Map state failed to read all items as
	// specified by the ItemReader field"; ErrorResultWriterFailed: "A Map
	// state failed to write all results as specified by the ResultWriter
	// field" (Amazon States Language, Errors).
	ErrorItemReaderFailed   = "States.ItemReaderFailed"
	ErrorResultWriterFailed = "States.ResultWriterFailed"
	// ErrorAborted is not a Step Functions error name: it is the Error of a
	// Result whose execution was aborted (Status ABORTED) because its context
	// ended, the counterpart of StopExecution.
	ErrorAborted = "States.Aborted"
)

// TaskError fails a Task with a given error name and cause, for example
// &TaskError{Name: "Lambda.ServiceException", Cause: "..."}. An Invoker
// returns it to control exactly what Retry and Catch see.
type TaskError struct {
	Name  string
	Cause string
}

func (e *TaskError) Error() string {
	if e.Cause == "" {
		return e.Name
	}
	return e.Name + ": " + e.Cause
}

// ErrorName is the error name Retry and Catch match on.
func (e *TaskError) ErrorName() string { return e.Name }

// ErrorCause is the cause reported with the error.
func (e *TaskError) ErrorCause() string { return e.Cause }

// taskErrorNames converts an Invoker error into the (Error, Cause) pair a
// Lambda task reports.
//
//   - An error implementing interface{ ErrorName() string } (such as
//     *TaskError) keeps its name; its cause is ErrorCause() when implemented,
//     err.Error() otherwise.
//   - Any other error is reported the way Step Functions reports an error
//     returned by a Go Lambda function: the aws-lambda-go runtime sends
//     {"errorMessage": err.Error(), "errorType": <type name>} where the type
//     name is the error's Go type without package or pointer ("errorString"
//     for errors.New, "wrapError" for fmt.Errorf with %w), and Step Functions
//     uses errorType as the Error and the whole JSON document as the Cause.
func taskErrorNames(err error) (name, cause string) {
	var named interface{ ErrorName() string }
	if errors.As(err, &named) {
		name = named.ErrorName()
		if c, ok := named.(interface{ ErrorCause() string }); ok {
			cause = c.ErrorCause()
		} else {
			cause = err.Error()
		}
		return name, cause
	}
	typ := reflect.TypeOf(err)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	name = typ.Name()
	if name == "" {
		name = ErrorTaskFailed
	}
	doc, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{err.Error(), name})
	return name, string(doc)
}

// stateError is a failure travelling up from a state: an error name and
// cause, plus whether it is an abort (the context ended), an execution
// time-out, or an error no Retry or Catch may handle (States.Runtime).
type stateError struct {
	Name, Cause string
	aborted     bool
	timedOut    bool
}

// terminal errors end the execution whatever Retry and Catch say.
func (e *stateError) terminal() bool {
	return e.aborted || e.timedOut || e.Name == ErrorRuntime
}

// dataLimit checks a payload against the 256 KiB quota.
func dataLimit(v any, what string) *stateError {
	_, serr := sizeWithin(v, what)
	return serr
}

// sizeWithin returns the size of a payload (UTF-8 JSON bytes; past the
// quota, the size measured so far) and checks it against the 256 KiB quota.
func sizeWithin(v any, what string) (int, *stateError) {
	n, ok := jsonSize(v, MaxPayloadBytes)
	if !ok {
		return n, &stateError{Name: ErrorDataLimitExceeded, Cause: fmt.Sprintf(
			"%s has a size of more than %d bytes (at least %d), exceeding the maximum number of bytes service limit", what, MaxPayloadBytes, n)}
	}
	return n, nil
}

// errExecutionTimeout is the cause of an execution context that ended
// because the definition's TimeoutSeconds passed.
var errExecutionTimeout = errors.New("execution timed out")

// errTaskTimeout is the cause of a task context that ended because the
// Task's TimeoutSeconds passed.
var errTaskTimeout = errors.New("task timed out")

// abortError describes why a context ended, as a stateError.
func abortError(ctx context.Context) *stateError {
	if errors.Is(context.Cause(ctx), errExecutionTimeout) {
		return &stateError{Name: ErrorTimeout, Cause: "the execution exceeded its TimeoutSeconds", timedOut: true}
	}
	return &stateError{Name: ErrorAborted, Cause: fmt.Sprintf("execution aborted: %v", context.Cause(ctx)), aborted: true}
}

// ErrInvalidDefinition is wrapped by every error Load returns for a
// definition it cannot run.
var ErrInvalidDefinition = errors.New("invalid state machine definition")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidDefinition, fmt.Sprintf(format, args...))
}
