package local

import (
	"errors"
	"strings"
	"testing"
)

// distributedMap is a Distributed Map state "A" with extra fields.
func distributedMap(fields string) string {
	return `"A": {"Type": "Map", ` + fields + `, "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}`
}

// wrap puts states into a JSONata definition starting at "A".
func wrap(states string) string {
	return `{"QueryLanguage": "JSONata", "StartAt": "A", "States": {` + states + `}}`
}

func TestLoadRefusesUnsupported(t *testing.T) {
	const proc = `"ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}`
	for _, tc := range []struct{ name, def, want string }{
		{"inline ItemReader", wrap(`"Read items": {"Type": "Map", "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}, ` + proc + `, "End": true}`),
			`field "ItemReader" in state "Read items" requires ProcessorConfig Mode DISTRIBUTED`},
		{"inline ResultWriter", wrap(`"A": {"Type": "Map", "ResultWriter": {}, ` + proc + `, "End": true}`), `field "ResultWriter" in state "A" requires ProcessorConfig Mode DISTRIBUTED`},
		{"listObjectsV2 reader", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Arguments": {"Bucket": "b", "Prefix": "p"}}`)),
			`unsupported ItemReader resource "arn:aws:states:::s3:listObjectsV2" in state "A"`},
		{"manifest reader", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "MANIFEST"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`unsupported InputType "MANIFEST" in the ReaderConfig of state "A"`},
		{"parquet reader", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "PARQUET"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`unsupported InputType "PARQUET" in the ReaderConfig of state "A"`},
		{"Athena manifest", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV", "ManifestType": "ATHENA_DATA"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`unsupported field "ManifestType" in the ReaderConfig of state "A"`},
		{"reader version", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Arguments": {"Bucket": "b", "Key": "k", "VersionId": "v1"}}`)),
			`unsupported argument "VersionId" in the ItemReader of state "A"`},
		{"reader Parameters", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Parameters": {"Bucket": "b", "Key": "k"}}`)),
			`unsupported field "Parameters" in the ItemReader of state "A"`},
		{"reader MaxItemsPath", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON", "MaxItemsPath": "$.n"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`unsupported field "MaxItemsPath" in the ReaderConfig of state "A"`},
		{"reader without InputType", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`the ReaderConfig of state "A" needs an InputType`},
		{"CSV without header location", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`CSV needs CSVHeaderLocation FIRST_ROW or GIVEN`},
		{"GIVEN without headers", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "GIVEN"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`CSVHeaderLocation GIVEN needs a non-empty CSVHeaders array`},
		{"JSON with a CSV field", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON", "CSVDelimiter": "PIPE"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`field "CSVDelimiter" in the ReaderConfig of state "A" requires InputType CSV`},
		{"MaxItems too large", wrap(distributedMap(`"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON", "MaxItems": 100000001}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`field "MaxItems" in state "A" must be an integer from 0 to 100000000`},
		{"Items and ItemReader", wrap(distributedMap(`"Items": [1], "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"}, "Arguments": {"Bucket": "b", "Key": "k"}}`)),
			`state "A" has both Items and ItemReader`},
		{"empty ResultWriter", wrap(distributedMap(`"ResultWriter": {}`)), `the ResultWriter of state "A" cannot be empty`},
		{"ResultWriter Parameters", wrap(distributedMap(`"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b"}}`)),
			`unsupported field "Parameters" in the ResultWriter of state "A"`},
		{"ResultWriter without Arguments", wrap(distributedMap(`"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"}`)),
			`the ResultWriter of state "A" needs both Resource and Arguments`},
		{"ResultWriter other resource", wrap(distributedMap(`"ResultWriter": {"Resource": "arn:aws:states:::s3:copyObject", "Arguments": {"Bucket": "b"}}`)),
			`unsupported ResultWriter resource "arn:aws:states:::s3:copyObject" in state "A"`},
		{"ResultWriter argument", wrap(distributedMap(`"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Arguments": {"Bucket": "b", "ExpectedBucketOwner": "1"}}`)),
			`unsupported argument "ExpectedBucketOwner" in the ResultWriter of state "A"`},
		{"JSONL state output", wrap(distributedMap(`"ResultWriter": {"WriterConfig": {"OutputType": "JSONL"}}`)),
			`OutputType JSONL needs Resource and Arguments`},
		{"unknown Transformation", wrap(distributedMap(`"ResultWriter": {"WriterConfig": {"Transformation": "SQUASH"}}`)),
			`Transformation must be NONE, COMPACT or FLATTEN`},
		{"other aws-sdk integration", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:putItem", "Arguments": {}, "End": true}`),
			`unsupported resource "arn:aws:states:::aws-sdk:dynamodb:putItem" in state "A": the AWS SDK integrations supported are aws-sdk:sfn:describeMapRun and aws-sdk:s3:getObject`},
		{"other sfn action", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:startExecution", "Arguments": {}, "End": true}`),
			`unsupported resource "arn:aws:states:::aws-sdk:sfn:startExecution" in state "A"`},
		{"aws-sdk callback", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject.waitForTaskToken", "Arguments": {"Bucket": "b", "Key": "k"}, "End": true}`),
			`AWS SDK integrations run request-response only (no .waitForTaskToken)`},
		{"getObject Range", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject", "Arguments": {"Bucket": "b", "Key": "k", "Range": "bytes=0-9"}, "End": true}`),
			`unsupported argument "Range" of aws-sdk:s3:getObject in state "A"`},
		{"describeMapRun without ARN", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:describeMapRun", "Arguments": {}, "End": true}`),
			`the Arguments of aws-sdk:sfn:describeMapRun need a MapRunArn`},
		{"describeMapRun without Arguments", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:describeMapRun", "End": true}`),
			`aws-sdk:sfn:describeMapRun needs Arguments with MapRunArn`},
		{"ItemBatcher", wrap(`"A": {"Type": "Map", "ItemBatcher": {}, ` + proc + `, "End": true}`), `unsupported field "ItemBatcher" in state "A"`},
		{"Iterator", wrap(`"A": {"Type": "Map", "Iterator": {}, ` + proc + `, "End": true}`), `unsupported field "Iterator" in state "A"`},
		{"Parameters", wrap(`"A": {"Type": "Pass", "Parameters": {}, "End": true}`), `unsupported field "Parameters" in state "A"`},
		{"InputPath", wrap(`"A": {"Type": "Pass", "InputPath": "$", "End": true}`), `unsupported field "InputPath" in state "A"`},
		{"ResultPath", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "ResultPath": "$.x", "End": true}`),
			`unsupported field "ResultPath" in state "A"`},
		{"ResultSelector", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "ResultSelector": {}, "End": true}`),
			`unsupported field "ResultSelector" in state "A"`},
		{"OutputPath", wrap(`"A": {"Type": "Pass", "OutputPath": "$", "End": true}`), `unsupported field "OutputPath" in state "A"`},
		{"Result", wrap(`"A": {"Type": "Pass", "Result": 1, "End": true}`), `unsupported field "Result" in state "A"`},
		{"HeartbeatSeconds", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "HeartbeatSeconds": 5, "End": true}`),
			`unsupported field "HeartbeatSeconds" in state "A"`},
		{"Wait Timestamp", wrap(`"A": {"Type": "Wait", "Timestamp": "2025-01-01T00:00:00Z", "End": true}`), `unsupported field "Timestamp" in state "A"`},
		{"Parallel", wrap(`"A": {"Type": "Parallel", "Branches": [], "End": true}`), `unsupported state type "Parallel" in state "A"`},
		{"unknown type", wrap(`"A": {"Type": "Sleep", "End": true}`), `unsupported state type "Sleep" in state "A"`},
		{"JSONPath machine", `{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}`, `state "A" uses the JSONPath query language`},
		{"JSONPath state", wrap(`"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}`), `state "A" uses the JSONPath query language`},
		{".sync", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "Arguments": {"FunctionName": "f"}, "End": true}`),
			`unsupported resource "arn:aws:states:::lambda:invoke.waitForTaskToken" in state "A"`},
		{"other service", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": true}`),
			`unsupported resource "arn:aws:states:::states:startExecution.sync:2" in state "A"`},
		{"express children", wrap(`"A": {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}`),
			`unsupported ExecutionType EXPRESS in state "A"`},
		{"inline tolerance", wrap(`"A": {"Type": "Map", "ToleratedFailureCount": 1, ` + proc + `, "End": true}`),
			`field "ToleratedFailureCount" in state "A" requires ProcessorConfig Mode DISTRIBUTED`},
		{"top-level field", `{"QueryLanguage": "JSONata", "StartAt": "A", "Extra": 1, "States": {"A": {"Type": "Pass", "End": true}}}`, `unsupported top-level field "Extra"`},
		{"nested JSONPath field", wrap(`"A": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": null, "End": true}}}, "End": true}`),
			`unsupported field "ResultPath" in state "P"`},
		{"retrier field", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "Retry": [{"ErrorEquals": ["X"], "Bogus": 1}], "End": true}`),
			`unsupported field "Bogus" in Retry[0] of state "A"`},
		{"catcher ResultPath", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "Catch": [{"ErrorEquals": ["X"], "ResultPath": "$.e", "Next": "A"}], "End": true}`),
			`unsupported field "ResultPath" in Catch[0] of state "A"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.def))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadValidates(t *testing.T) {
	for _, tc := range []struct{ name, def, want string }{
		{"not JSON", `{`, "not valid JSON"},
		{"no StartAt", `{"QueryLanguage": "JSONata", "States": {"A": {"Type": "Pass", "End": true}}}`, "has no StartAt"},
		{"StartAt missing", `{"QueryLanguage": "JSONata", "StartAt": "Z", "States": {"A": {"Type": "Pass", "End": true}}}`, `StartAt "Z"`},
		{"Next missing", wrap(`"A": {"Type": "Pass", "Next": "Nowhere"}`), `state "A": Next "Nowhere" does not name a state`},
		{"not terminal", wrap(`"A": {"Type": "Pass"}`), `state "A" is not terminal but has no Next`},
		{"Next and End", wrap(`"A": {"Type": "Pass", "Next": "A", "End": true}`), `state "A" has both Next and End`},
		{"Choice without Choices", wrap(`"A": {"Type": "Choice", "Default": "B"}, "B": {"Type": "Succeed"}`), `Choice state "A" needs a non-empty Choices array`},
		{"Choice End", wrap(`"A": {"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "A"}], "End": true}`), `unsupported field "End" in state "A"`},
		{"Choice target", wrap(`"A": {"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "Z"}]}`), `state "A": Choices Next "Z"`},
		{"Default target", wrap(`"A": {"Type": "Choice", "Choices": [{"Condition": "{% true %}", "Next": "A"}], "Default": "Z"}`), `state "A": Default "Z"`},
		{"Catch target", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Z"}], "End": true}`),
			`state "A": Catch Next "Z"`},
		{"unreachable", wrap(`"A": {"Type": "Pass", "End": true}, "B": {"Type": "Pass", "End": true}`), `state "B" is not reachable`},
		{"next across map", wrap(`"A": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "B"}}}, "Next": "B"}, "B": {"Type": "Succeed"}`),
			`state "P": Next "B" does not name a state of the ItemProcessor of state "A"`},
		{"duplicate name", wrap(`"A": {"Type": "Map", "ItemProcessor": {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}, "End": true}`), `duplicate state name "A"`},
		{"States.ALL not last", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}], "End": true}`),
			"States.ALL must appear alone"},
		{"bad JSONata", wrap(`"A": {"Type": "Pass", "Output": "{% $states.input. %}", "End": true}`), `state "A": field "Output": invalid JSONata expression`},
		{"bad variable", wrap(`"A": {"Type": "Pass", "Assign": {"bad-name": 1}, "End": true}`), `"bad-name" is not a valid variable name`},
		{"reserved variable", wrap(`"A": {"Type": "Pass", "Assign": {"states": 1}, "End": true}`), `reserved`},
		{"FunctionName", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"Payload": {}}, "End": true}`), "need a FunctionName"},
		{"no ItemProcessor", wrap(`"A": {"Type": "Map", "End": true}`), `Map state "A" needs an ItemProcessor`},
		{"BackoffRate", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}], "End": true}`),
			"BackoffRate must be a number >= 1.0"},
		{"TimeoutSeconds", wrap(`"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"}, "TimeoutSeconds": 0, "End": true}`),
			`field "TimeoutSeconds" in state "A" must be a positive integer`},
		{"Wait without Seconds", wrap(`"A": {"Type": "Wait", "End": true}`), "needs Seconds"},
		{"Condition literal string", wrap(`"A": {"Type": "Choice", "Choices": [{"Condition": "true", "Next": "A"}]}`), "Condition must be a JSONata expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.def))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadAcceptsStateLevelQueryLanguage(t *testing.T) {
	def := `{"StartAt": "A", "Comment": "c", "Version": "1.0", "TimeoutSeconds": 300, "States": {
	  "A": {"Type": "Pass", "QueryLanguage": "JSONata", "Comment": "x", "End": true}}}`
	m, err := Load([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	if m.Comment() != "c" || m.timeoutSeconds != 300 {
		t.Fatalf("machine %+v", m)
	}
}
