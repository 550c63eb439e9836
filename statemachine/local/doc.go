// Package local executes AWS Step Functions state machine definitions written
// in the JSONata query language, in-process. `trailfill run` uses it to run
// the very ASL that is deployed to Step Functions, with Task states bound to
// Go functions; `trailfill plan` uses it (with a FakeClock and a simulated
// Invoker) to predict history size and cost; an emulated Step Functions API
// can be built on its Observer.
//
// # Supported
//
// Load accepts definitions whose states all use QueryLanguage "JSONata" (set
// at the top level or per state) and refuses anything else by name, for
// example `unsupported field "ItemBatcher" in state "Read items"` or
// `unsupported state type "Parallel" in state "Fan out"`:
//
//   - Top level: StartAt, States, Comment, TimeoutSeconds, Version,
//     QueryLanguage.
//   - Every state: Type, Comment, QueryLanguage; Next/End where the type has
//     them; Output and Assign except on Fail.
//   - Pass; Succeed (Output); Fail (Error, Cause: literal or JSONata).
//   - Choice: Choices (Condition, Next, Output, Assign), Default.
//   - Wait: Seconds only (a number or JSONata), slept through Options.Clock.
//   - Task: Resource "arn:aws:states:::lambda:invoke" (Arguments with
//     FunctionName and Payload), a Lambda function ARN,
//     "arn:aws:states:::aws-sdk:sfn:describeMapRun" (Arguments MapRunArn)
//     or "arn:aws:states:::aws-sdk:s3:getObject" (Arguments Bucket, Key);
//     Arguments, TimeoutSeconds, Retry, Catch.
//   - Map: Items, ItemSelector, ItemProcessor (StartAt, States,
//     ProcessorConfig Mode INLINE or DISTRIBUTED with ExecutionType
//     STANDARD), MaxConcurrency, Retry, Catch; distributed only:
//     ToleratedFailurePercentage, ToleratedFailureCount, Label,
//     ItemReader (Resource "arn:aws:states:::s3:getObject", Arguments
//     Bucket and Key, ReaderConfig InputType JSON (with ItemsPointer),
//     JSONL or CSV (CSVHeaderLocation FIRST_ROW or GIVEN with CSVHeaders,
//     CSVDelimiter), MaxItems; GZIP objects by their .gz key) and
//     ResultWriter (Resource "arn:aws:states:::s3:putObject" with
//     Arguments Bucket and Prefix, and/or WriterConfig OutputType JSON or
//     JSONL, Transformation NONE, COMPACT or FLATTEN).
//   - Retry: ErrorEquals, IntervalSeconds, MaxAttempts, BackoffRate,
//     MaxDelaySeconds, JitterStrategy. Catch: ErrorEquals, Next, Output,
//     Assign.
//
// Refused: JSONPath states and fields (InputPath, Parameters, ResultPath,
// ResultSelector, OutputPath, Result, ItemsPath, MaxItemsPath, ...),
// Parallel, ItemBatcher, HeartbeatSeconds, Credentials, Wait Timestamp,
// Express child workflows, .sync and .waitForTaskToken resources, ItemReader
// over s3:listObjectsV2, MANIFEST (Athena, S3 inventory) and PARQUET input,
// ItemReader VersionId and ExpectedBucketOwner, ZSTD objects, a JSONL
// WriterConfig without S3, any other service integration (aws-sdk:dynamodb,
// aws-sdk:sfn:startExecution, ...) and aws-sdk arguments beyond those
// listed. Load also checks that StartAt and every Next, Default and Catch
// target exist in the same list of states, that every state is reachable,
// that non-terminal states have Next, that Choice has Choices, that state
// names are unique and that States.ALL stands alone and last.
//
// # JSONata
//
// A string that starts with "{%" and ends with "%}" is a JSONata expression,
// anywhere in Arguments, Output, Assign, Items, ItemSelector, Condition,
// Error, Cause, TimeoutSeconds, Seconds, MaxConcurrency and the tolerated
// failure fields, recursively inside objects and arrays; other strings are
// literals. Expressions are evaluated with github.com/blues/jsonata-go (whose
// language level is older than the JSONata 2.0.6 Step Functions uses: a few
// newer operators and functions are missing). An expression that yields
// undefined, fails, or yields the wrong type for its field fails the state
// with States.QueryEvaluationError, whose cause names the state, the field
// and the expression, as Step Functions words it; an EvaluationFailed event
// is recorded.
//
// Bindings: $states.input (the state input), $states.result (Task and Map
// result, in Output and Assign), $states.errorOutput ({"Error","Cause"}, in a
// Catch's Output and Assign), $states.context (Execution.Id, Name, Input,
// StartTime, RoleArn, RedriveCount; StateMachine.Id, Name; State.Name,
// EnteredTime, RetryCount; Map.Item.Index and Value inside ItemSelector) and
// the workflow variables. Extension functions: $partition(array, size),
// $range(start, end, step) (end inclusive, step default 1), $hash(string,
// algorithm) (MD5, SHA-1, SHA-256, SHA-384, SHA-512; lowercase hex),
// $random() and $random(seed) (deterministic per seed), $uuid() (v4),
// $parse(json). $now() and $millis() read Options.Clock. $eval does not
// exist. JSON null in data stays null (jsonata-go would otherwise read it as
// undefined). jsonata-go reads a path ending at an empty array as undefined
// where JSONata returns []; an expression that is a plain path from a
// variable ($states.input.items) is corrected, but an empty array reached
// inside a larger expression still reads as undefined (for example
// $exists($states.input.items) is false for "items": []). jsonata-go is not
// safe for concurrent evaluation, so evaluations are serialized
// process-wide (Tasks still run concurrently).
//
// # Variables
//
// Assign sets workflow variables. All expressions of one state (Output and
// every Assign entry) see the variables as they were when the state was
// entered; the assignments take effect together when the state completes,
// so {"a": "{% $a + 1 %}", "b": "{% $a %}"} sets b to the old a, and Output
// does not see the new values. A Choice rule that matches uses its own
// Output and Assign instead of the state's; the state's apply when Default
// is taken. A Catch that handles an error applies its own Output and Assign;
// the state's Assign is not evaluated. An inline Map iteration runs in a
// scope of its own that reads the enclosing variables; what it assigns stays
// in the iteration. A Distributed Map child execution sees no variables of
// the parent: only its input (the item, or ItemSelector's result;
// ItemSelector belongs to the Map state and is evaluated in the parent, with
// its variables). A variable may share its name with a function: where it
// is set, $count is the variable; where it is not, the function.
//
// # Map
//
// Items (default: the state input) must be an array; the result is the array
// of iteration outputs in item order. Inline: at most MaxConcurrency
// iterations at once, and never more than 40 (Step Functions' inline limit);
// the first failing iteration fails the Map with its own error and cause,
// the iterations still running are aborted and no new one starts.
// Distributed: every item is a child execution (ExecutionRef.ParentID and
// MapRunID set) with its own history, at most min(MaxConcurrency or 10,000,
// Options.MaxConcurrency) at once. When more children fail than
// ToleratedFailureCount or ToleratedFailurePercentage allow (with neither
// set: at the first failure) the Map Run fails at once with
// States.ExceedToleratedFailureThreshold: running children are aborted (as
// Step Functions does: MapRunExecutionCounts.aborted counts children
// "stopped by Step Functions because the Map Run failed"), unstarted ones
// stay pending, and the cause names the counts and the first failed child
// with its error and cause. With tolerated failures the Map succeeds and a
// failed child's slot in the output holds the child's description
// (ExecutionArn, Name, Input, Status, Error, Cause, StartDate, StopDate,
// StateMachineArn, RedriveCount, RedriveStatus): "If a child workflow
// execution fails, Step Functions returns its execution result unchanged"
// ("ResultWriter (Map)", developer guide). A child's input (after
// ItemSelector) above 256 KiB fails the Map Run with
// States.DataLimitExceeded.
//
// # S3: ItemReader, ResultWriter
//
// Options.S3 (see S3; DirS3 is a local folder, MemS3 memory) serves them. An ItemReader
// ("ItemReader (Map)", AWS Step Functions Developer Guide) reads one object
// once the Map Run has started: a JSON array (or the array ItemsPointer
// names), JSON Lines (one item per non-empty line) or CSV parsed by the
// developer guide's rules into objects of strings keyed by the header,
// at most MaxItems (0: all, at most 100,000,000) items. Every read or parse
// failure fails the Map Run with States.ItemReaderFailed, with the causes
// Step Functions gives where they are known ("Attempting to map over
// non-iterable node.", "CSV headers cannot contain duplicates.").
//
// A ResultWriter with S3 ("ResultWriter (Map)", developer guide) writes,
// when the Map Run ends (succeeded, or failed with its tolerated failures
// exceeded; not when aborted), under <Prefix>/<Map Run ID>/:
// SUCCEEDED_n.json, FAILED_n.json (failed, timed-out and aborted children)
// and PENDING_n.json (children never started), each a JSON array (or JSON
// Lines) of results, split at 5 GB (MaxResultFileBytes), then
// manifest.json {"DestinationBucket", "MapRunArn", "ResultFiles":
// {"FAILED": [{"Key", "Size"}], "PENDING": [...], "SUCCEEDED": [...]}}.
// With Transformation NONE (the default with S3) a result is the child's
// description with Input and Output as JSON strings; COMPACT writes the
// outputs, FLATTEN splices array outputs in; failed children are always
// described. The files are named .json whatever the OutputType. A PENDING
// entry has only Input (the item, without ItemSelector), InputDetails and
// Status. The Map's result is then {"MapRunArn": .., "ResultWriterDetails":
// {"Bucket": .., "Key": <manifest.json>}}, small at any item count, and the
// Map Run's ResultsWritten count is set. A write failure fails the Map Run
// with States.ResultWriterFailed (a Map Run already failing keeps its
// error and its cause says the results are missing). A WriterConfig alone
// shapes the Map's result (COMPACT by default) without S3.
//
// # Tasks
//
// See Invoker. For lambda:invoke the result is {"ExecutedVersion":
// "$LATEST", "Payload": <function output>, "StatusCode": 200}; for a function
// ARN it is the function output. An Invoker error fails the task (see
// TaskError and the naming of Go errors there). TimeoutSeconds gives the
// Invoker's context a deadline (real time, whatever the Clock) and a task
// that passes it fails with States.Timeout. A missing Payload is sent as {}.
//
// AWS SDK integrations ("AWS SDK service integrations", developer guide)
// take the request in PascalCase Arguments and return the response in
// PascalCase. aws-sdk:sfn:describeMapRun answers from the Map Runs of the
// same execution tree (the parent and its children) with the DescribeMapRun
// response: MapRunArn, ExecutionArn, Status, StartDate, StopDate,
// MaxConcurrency, ToleratedFailurePercentage, ToleratedFailureCount,
// ItemCounts and ExecutionCounts (Total, Pending, Running, Succeeded,
// Failed, TimedOut, Aborted, ResultsWritten, FailuresNotRedrivable,
// PendingRedrive), RedriveCount; so a state after a Distributed Map that
// tolerates failures can fail the execution when ExecutionCounts.Failed >
// 0. aws-sdk:s3:getObject reads through Options.S3 and returns
// AcceptRanges, Body (the object as a string), ContentLength, ContentType,
// ETag, LastModified and Metadata. Service errors are named as Step
// Functions names them: S3.NoSuchKeyException, S3.NoSuchBucketException,
// Sfn.ResourceNotFoundException, Sfn.InvalidArnException, with the cause
// "<message> (Service: <service>, Status Code: <status>, Request ID:
// <id>)". Timestamps are ISO 8601 UTC with milliseconds.
//
// # Errors, Retry and Catch
//
// Retry and Catch apply to failures of the work (Arguments evaluation, the
// invocation, the Map's iterations) and of Output and Assign. The first
// retrier whose ErrorEquals matches decides: while its MaxAttempts are not
// used up the state runs again after IntervalSeconds *
// BackoffRate^(attempt-1) seconds, capped by MaxDelaySeconds, times a random
// factor in [0,1) with JitterStrategy FULL, slept through Options.Clock;
// each retrier counts its own attempts. Then the first matching catcher
// handles the error: its Output (default: the error output {"Error","Cause"})
// becomes the state output and Next is followed. States.ALL matches any
// error, States.TaskFailed any error but States.Timeout; States.Runtime (for
// example a full history) is never retried or caught. An uncaught error
// fails the execution (or the inline Map iteration, which fails the Map).
//
// The 256 KiB payload quota is enforced (MaxPayloadBytes, UTF-8 JSON): an
// execution input above it is refused by Execute; a task result, an Assign
// or a state output above it fails with States.DataLimitExceeded, which
// States.ALL does not catch (only its own name does).
//
// Cancelling the context aborts the execution: Status ABORTED, Error
// States.Aborted. The definition's TimeoutSeconds ends it with Status
// TIMED_OUT (States.Timeout): checked against Options.Clock between states,
// and with the system clock also interrupting a running state.
//
// # History events (Standard workflows)
//
// Events are counted per execution, as in GetExecutionHistory ("Step
// Functions history event types" in the API reference: HistoryEventType),
// and the Step Functions quota of 25,000 events per execution history
// applies to each execution separately ("Quotas related to state machine
// executions"). Each Distributed Map child workflow is an execution with its
// own history. The events are:
//
//   - ExecutionStarted; then ExecutionSucceeded, ExecutionFailed,
//     ExecutionTimedOut or ExecutionAborted.
//   - For every state entered: <Type>StateEntered, and <Type>StateExited
//     when it completes (PassStateEntered/PassStateExited,
//     ChoiceStateEntered/..., TaskStateEntered/..., MapStateEntered/...,
//     WaitStateEntered/..., SucceedStateEntered/SucceedStateExited;
//     FailStateEntered only). A state whose error a Catch handles still
//     exits: TaskFailed is followed by TaskStateExited carrying the Catch
//     output, then the handler's StateEntered (as in the histories LocalStack
//     recorded from AWS for its validated snapshot tests). A state that
//     fails without a catcher has no StateExited. A Task, Map or Wait
//     interrupted by an abort records <Type>StateAborted.
//   - Task with lambda:invoke or an aws-sdk resource, per attempt:
//     TaskScheduled, TaskStarted, then TaskSucceeded, TaskFailed or
//     TaskTimedOut (resourceType "lambda" and resource "invoke", or
//     "aws-sdk:sfn" and "describeMapRun", "aws-sdk:s3" and "getObject"). A
//     retry adds another TaskScheduled, TaskStarted and outcome (no new
//     TaskStateEntered).
//     With a Lambda function ARN: LambdaFunctionScheduled,
//     LambdaFunctionStarted, LambdaFunctionSucceeded/Failed/TimedOut.
//   - Inline Map: MapStateStarted; per item MapIterationStarted, the
//     events of the states the iteration runs (in the parent's history),
//     and MapIterationSucceeded, MapIterationFailed or MapIterationAborted;
//     then MapStateSucceeded, or MapStateFailed once the failure is not
//     retried. A retried Map starts again with MapStateStarted.
//   - Distributed Map, in the parent: MapStateStarted, MapRunStarted, then
//     MapRunSucceeded, MapRunFailed or MapRunAborted, then MapStateSucceeded
//     or MapStateFailed. The children's events are in their own histories.
//     Reading an ItemReader's object and writing a ResultWriter's files add
//     no events; with an ItemReader MapStateStarted reports length 0 (the
//     items are read by the Map Run), as in histories recorded from AWS.
//     The first StateEntered of an execution has PreviousEventID 0, like
//     ExecutionStarted; every other event names the event before it on its
//     thread (its Map iteration, or the main path).
//   - EvaluationFailed when a JSONata evaluation fails.
//
// So a Pass -> Task (lambda:invoke) -> Succeed execution has 11 events:
// ExecutionStarted, PassStateEntered, PassStateExited, TaskStateEntered,
// TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited,
// SucceedStateEntered, SucceedStateExited, ExecutionSucceeded. When a
// history reaches Options.HistoryLimit (25,000 by default) the execution
// fails with States.Runtime, its ExecutionFailed being the last event.
//
// # State transitions (pricing)
//
// Standard workflows are billed per state transition: "Step Functions counts
// a state transition each time a step of your workflow is executed ...
// including retries" and "each retry will be charged as an additional state
// transition" (AWS Step Functions pricing). This executor counts one
// transition per state entered (states inside inline Map iterations
// included, in the parent) and one per retry. Distributed Map children count
// their own transitions; Stats.TotalTransitions adds them all up.
//
// # Payload sizes
//
// Stats.Sizes reports an execution's input and its largest state output,
// Task request (the evaluated Arguments) and Task result, in bytes of
// compact JSON, with the state that produced each; Stats.MaxSizes the
// largest over the execution and all its Distributed Map children, with the
// execution each was seen in. `trailfill plan` compares them with
// MaxPayloadBytes.
package local
