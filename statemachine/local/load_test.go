package local

import (
	"errors"
	"strings"
	"testing"
)

// wrap puts states into a JSONata definition starting at "A".
func wrap(states string) string {
	return `{"QueryLanguage": "JSONata", "StartAt": "A", "States": {` + states + `}}`
}

func TestLoadRefusesUnsupported(t *testing.T) {
	const proc = `"ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}`
	for _, tc := range []struct{ name, def, want string }{
		{"ItemReader", wrap(`"Read items": {"Type": "Map", "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}, ` + proc + `, "End": true}`),
			`unsupported field "ItemReader" in state "Read items"`},
		{"ResultWriter", wrap(`"A": {"Type": "Map", "ResultWriter": {}, ` + proc + `, "End": true}`), `unsupported field "ResultWriter" in state "A"`},
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
