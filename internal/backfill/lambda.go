package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine/local"
)

// The Lambda binding. aws-lambda-go reports a handler error to the Lambda
// service as {"errorMessage", "errorType"}, and Step Functions uses errorType
// as the Task's error name (what Retry and Catch match). The runtime names an
// error after its Go type (lambda/errors.go: reflect.TypeOf(err).Elem().Name()
// for a pointer), unless the error is a messages.InvokeResponse_Error value,
// which it passes on as it is. Function returns only such values, so every
// name the state machine sees is one of the contract's, chosen on purpose:
// a *PartitionError is contract.ErrorPartition, a payload that does not
// decode is contract.ErrorInvalidInvocation, anything else
// contract.ErrorFunction.

// Function is the backfill Lambda's handler function: the deployed function
// (lambda.Start(Function(h))) and `trailfill run` (LocalInvoker) call it
// through aws-lambda-go.
func Function(h *Handler) func(ctx context.Context, payload json.RawMessage) (contract.Invocation, error) {
	return func(ctx context.Context, payload json.RawMessage) (contract.Invocation, error) {
		var in contract.Invocation
		if err := json.Unmarshal(payload, &in); err != nil {
			return in, namedError(contract.ErrorInvalidInvocation, fmt.Errorf("decode the backfill payload (start the execution with this trailfill's state machine): %w", err))
		}
		out, err := h.Handle(ctx, in)
		if err != nil {
			return out, namedError(ErrorName(err), err)
		}
		return out, nil
	}
}

// ErrorName is the error type Function reports for err.
func ErrorName(err error) string {
	var pe *PartitionError
	if errors.As(err, &pe) {
		return contract.ErrorPartition
	}
	return contract.ErrorFunction
}

func namedError(name string, err error) error {
	return messages.InvokeResponse_Error{Type: name, Message: err.Error()}
}

// LocalInvoker binds the state machine's Task (contract.LocalFunctionName)
// to h in-process, through aws-lambda-go's own invocation path
// (lambda.NewHandler(...).Invoke: the payload JSON-decoded and the answer
// JSON-encoded as in Lambda), and reports an error as the Lambda service
// does: the Task error's name is the errorType, its cause the error payload.
func LocalInvoker(h *Handler) local.Invoker {
	fn := Function(h)
	return local.InvokerFunc(func(ctx context.Context, _, name string, payload json.RawMessage) (json.RawMessage, error) {
		if name != contract.LocalFunctionName {
			return nil, &local.TaskError{Name: "Lambda.ResourceNotFoundException", Cause: "no local function " + name}
		}
		// A handler per invocation: the one lambda.NewHandler returns
		// encodes into pooled buffers that its next invocation reuses, and
		// the local executor invokes concurrently.
		out, err := lambda.NewHandler(fn).Invoke(ctx, payload)
		if err != nil {
			return nil, TaskError(err)
		}
		return bytes.Clone(out), nil
	})
}

// TaskError is the Step Functions Task error for an error returned by the
// Lambda handler: named as aws-lambda-go names it (lambda/errors.go), with
// the Lambda error payload as its cause.
func TaskError(err error) *local.TaskError {
	var ive messages.InvokeResponse_Error
	if e, ok := err.(messages.InvokeResponse_Error); ok {
		ive = e
	} else {
		ive = messages.InvokeResponse_Error{Message: err.Error(), Type: runtimeErrorType(err)}
	}
	cause, _ := json.Marshal(contract.LambdaErrorCause{ErrorMessage: ive.Message, ErrorType: ive.Type})
	return &local.TaskError{Name: ive.Type, Cause: string(cause)}
}

// runtimeErrorType is the name aws-lambda-go gives an error that is not an
// InvokeResponse_Error: its Go type's name (lambda/errors.go).
func runtimeErrorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}
