package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// LambdaAPI is the part of the Lambda client LambdaInvoker uses.
type LambdaAPI interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Error names of Lambda failures, as Step Functions reports them.
const (
	// ErrorLambdaUnknown is an unhandled function error whose payload names
	// no errorType: "Unhandled errors in Lambda are reported as
	// Lambda.Unknown in the error output. These include out-of-memory errors
	// and function timeouts" (Step Functions Developer Guide, "Handle Lambda
	// service exceptions").
	ErrorLambdaUnknown = "Lambda.Unknown"
	// ErrorLambdaSandboxTimedout is the error type of an invocation that ran
	// out of time: the Lambda code in aws-lambda-rie reports an invoke
	// timeout as Sandbox.Timedout, "Task timed out after N.NN seconds"
	// (lambda-managed-instances/invoke/utils.go, BuildInvokeAppError), and
	// the Lambda Developer Guide names an Init phase timeout the same way
	// ("Troubleshoot invocation issues in Lambda"). Step Functions' older
	// wording calls timeouts Lambda.Unknown; Retry on States.ALL or
	// States.TaskFailed matches both.
	ErrorLambdaSandboxTimedout = "Sandbox.Timedout"
	// ErrorLambdaSdkClient is a call that got no answer from Lambda (a
	// connection refused or reset): the client-side error of the AWS SDK
	// Step Functions reports, which the ASL best practice retries.
	ErrorLambdaSdkClient = "Lambda.SdkClientException"
	// ErrorLambdaService is a Lambda service error the SDK has no type for
	// (AWSLambdaException is the SDK's base class of Lambda service errors).
	ErrorLambdaService = "Lambda.AWSLambdaException"
)

// LambdaInvoker runs Task states by invoking the function through the Lambda
// Invoke API (RequestResponse) with Client, so that a definition executed
// locally drives a real function, deployed or under the Lambda Runtime
// Interface Emulator (RIE), the way Step Functions does:
//
//   - The result is the function's response payload.
//   - A function error (the response has FunctionError set: "If present,
//     indicates that an error occurred during function execution. Details
//     about the error are included in the response payload", Lambda API
//     reference, Invoke) becomes a *TaskError whose Name is the payload's
//     errorType and whose Cause is the payload, as Step Functions reports
//     it (Step Functions Developer Guide, "Handling error conditions using a
//     Step Functions state machine": a Catch on "CustomError" handles a
//     function that throws CustomError; the error output's Cause is the
//     function's error document). A payload without an errorType is
//     Lambda.Unknown.
//   - An error of the Invoke call itself is named Lambda.<ErrorCode>, for
//     example Lambda.TooManyRequestsException, Lambda.ServiceException or
//     Lambda.ResourceNotFoundException ("Lambda errors are reported as
//     Lambda.ErrorName", Step Functions Developer Guide, "Handle Lambda
//     service exceptions"); a service error the SDK does not model is
//     Lambda.AWSLambdaException, and a call that got no HTTP answer is
//     Lambda.SdkClientException. The cause reads like Step Functions': the
//     message, then the service, status code, error code and request ID.
//
// The SDK's own retries are turned off for each call: the definition's Retry
// decides, as on Step Functions, and a timed-out call is never sent twice. A
// context that ends (the Task's TimeoutSeconds, an abort) ends the call.
type LambdaInvoker struct {
	Client LambdaAPI
	// Emulator says Client talks to the Lambda Runtime Interface Emulator
	// (aws-lambda-rie), which answers a function error with HTTP 200 and the
	// error document but without the X-Amz-Function-Error header (its
	// response writer drops headers, rie/util.go), and a timeout with HTTP
	// 200 and the text "Task timed out after N.00 seconds" (rie/handlers.go). With Emulator set, a payload that is an error
	// document ({"errorType", "errorMessage"} and optionally "stackTrace",
	// nothing else) is a function error, and that text is Sandbox.Timedout.
	// Leave it unset for the Lambda service.
	Emulator bool
}

// Invoke implements Invoker.
func (l *LambdaInvoker) Invoke(ctx context.Context, _, functionName string, payload json.RawMessage) (json.RawMessage, error) {
	out, err := l.Client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(functionName),
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        payload,
	}, func(o *lambda.Options) {
		o.Retryer = aws.NopRetryer{}
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("invoke %s: %w", functionName, context.Cause(ctx))
		}
		return nil, invokeError(err)
	}
	if out.FunctionError != nil {
		return nil, functionError(out.Payload)
	}
	if l.Emulator {
		if isErrorDocument(out.Payload) {
			return nil, functionError(out.Payload)
		}
		if msg := strings.TrimSpace(string(out.Payload)); strings.HasPrefix(msg, "Task timed out after ") {
			doc, _ := json.Marshal(lambdaErrorDoc{ErrorType: ErrorLambdaSandboxTimedout, ErrorMessage: msg})
			return nil, &TaskError{Name: ErrorLambdaSandboxTimedout, Cause: string(doc)}
		}
	}
	return out.Payload, nil
}

// lambdaErrorDoc is the error document a Lambda runtime reports (the
// aws-lambda-go runtime writes errorMessage and errorType).
type lambdaErrorDoc struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// functionError names a function error after the errorType of its payload.
func functionError(payload []byte) *TaskError {
	var doc lambdaErrorDoc
	name := ErrorLambdaUnknown
	if json.Unmarshal(payload, &doc) == nil && doc.ErrorType != "" {
		name = doc.ErrorType
	}
	return &TaskError{Name: name, Cause: string(payload)}
}

// isErrorDocument reports whether payload is an object with a string
// errorType and no fields beyond errorType, errorMessage and stackTrace.
func isErrorDocument(payload []byte) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(payload, &obj) != nil {
		return false
	}
	var typ string
	if json.Unmarshal(obj["errorType"], &typ) != nil || typ == "" {
		return false
	}
	for k := range obj {
		switch k {
		case "errorType", "errorMessage", "stackTrace":
		default:
			return false
		}
	}
	return true
}

// invokeError names a failed Invoke call.
func invokeError(err error) *TaskError {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() == 0 {
		// No HTTP answer (the SDK reports a send failure as status 0).
		return &TaskError{Name: ErrorLambdaSdkClient, Cause: err.Error()}
	}
	code, msg := "", err.Error()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	name := "Lambda." + code
	var generic *smithy.GenericAPIError
	if code == "" || errors.As(err, &generic) {
		name = ErrorLambdaService
	}
	return &TaskError{Name: name, Cause: fmt.Sprintf("%s (Service: Lambda; Status Code: %d; Error Code: %s; Request ID: %s)",
		msg, re.HTTPStatusCode(), code, re.ServiceRequestID())}
}
