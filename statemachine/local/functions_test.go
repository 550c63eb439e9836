package local

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// evalOutput runs a one-Pass machine whose Output is the given JSON.
func evalOutput(t *testing.T, output, input string) *Result {
	t.Helper()
	def := `{"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": ` + output + `, "End": true}}}`
	res, _, _ := run(t, def, input, nil)
	return res
}

func TestExtensionFunctions(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`$partition([1,2,3,4,5,6,7,8,9], 3)`, `[[1,2,3],[4,5,6],[7,8,9]]`},
		{`$partition([1,2,3,4,5], 2)`, `[[1,2],[3,4],[5]]`},
		{`$partition([], 2)`, `[]`},
		{`$range(0, 10, 2)`, `[0,2,4,6,8,10]`},
		{`$range(1, 3)`, `[1,2,3]`},
		{`$range(5, 1, -2)`, `[5,3,1]`},
		{`$range(3, 1)`, `[]`},
		{`$hash('abc', 'MD5')`, `"900150983cd24fb0d6963f7d28e17f72"`},
		{`$hash('abc', 'SHA-1')`, `"a9993e364706816aba3e25717850c26c9cd0d89d"`},
		{`$hash('abc', 'SHA-256')`, `"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"`},
		{`$hash('abc', 'SHA-384')`, `"cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"`},
		{`$hash('abc', 'SHA-512')`, `"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"`},
		{`$parse('{"a": [1, null, "x"]}')`, `{"a": [1, null, "x"]}`},
		{`$random(42) = $random(42)`, `true`},
		{`$random(42) != $random(43)`, `true`},
		{`$random() >= 0 and $random() < 1`, `true`},
		{`$count($partition($range(1, 100), 7))`, `15`},
		{`$string({'a': null})`, `"{\"a\":null}"`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			out, _ := json.Marshal("{% " + tc.expr + " %}")
			res := evalOutput(t, string(out), `{}`)
			wantStatus(t, res, StatusSucceeded)
			jsonEqual(t, res.Output, tc.want)
		})
	}
	res := evalOutput(t, `"{% $uuid() %}"`, `{}`)
	var id string
	if err := json.Unmarshal(res.Output, &id); err != nil ||
		!regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("uuid %s", res.Output)
	}
	for _, expr := range []string{`$hash('abc', 'CRC32')`, `$partition([1], 0)`, `$parse('{')`, `$range(1, 5, 0)`, `$hash(1, 'MD5')`} {
		out, _ := json.Marshal("{% " + expr + " %}")
		res := evalOutput(t, string(out), `{}`)
		if res.Error != ErrorQueryEvaluation || !strings.Contains(res.Cause, "threw an error") {
			t.Fatalf("%s: error %q cause %q", expr, res.Error, res.Cause)
		}
	}
}

func TestNullSurvives(t *testing.T) {
	res := evalOutput(t, `{"copy": "{% $states.input %}", "field": "{% $states.input.a %}", "type": "{% $type($states.input.a) %}", "literal": null}`,
		`{"a": null, "b": [null, 1]}`)
	wantStatus(t, res, StatusSucceeded)
	jsonEqual(t, res.Output, `{"copy": {"a": null, "b": [null, 1]}, "field": null, "type": "null", "literal": null}`)
}

func TestDataLimit(t *testing.T) {
	res := evalOutput(t, `"{% $pad('', 300000, 'x') %}"`, `{}`)
	wantStatus(t, res, StatusFailed)
	if res.Error != ErrorDataLimitExceeded || !strings.Contains(res.Cause, "The output of state 'P'") {
		t.Fatalf("error %q cause %q", res.Error, res.Cause)
	}
	// A too large task result is a task error: States.ALL does not catch
	// it, its own name does.
	big := InvokerFunc(func(context.Context, string, string, json.RawMessage) (json.RawMessage, error) {
		return json.Marshal(strings.Repeat("y", MaxPayloadBytes))
	})
	for _, tc := range []struct{ catch, status string }{{"States.ALL", StatusFailed}, {"States.DataLimitExceeded", StatusSucceeded}} {
		def := `{"QueryLanguage": "JSONata", "StartAt": "T", "States": {
		  "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Arguments": {"FunctionName": "f"},
		        "Catch": [{"ErrorEquals": ["` + tc.catch + `"], "Next": "Done"}], "End": true},
		  "Done": {"Type": "Succeed"}}}`
		res, _, _ := run(t, def, `{}`, big)
		wantStatus(t, res, tc.status)
	}
	for _, v := range []string{`{"a": [1, 2.5, null, true, false, "q\"\\\n"], "b": {}}`, `[]`, `"x"`, `1e+21`} {
		value, err := decodeJSON([]byte(v))
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := encodeJSON(value)
		if n, ok := jsonSize(value, MaxPayloadBytes); !ok || n != len(enc) {
			t.Fatalf("jsonSize(%s) = %d, encoded %d (%s)", v, n, len(enc), enc)
		}
	}
}
