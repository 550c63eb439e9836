package local

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
)

// BenchmarkLoop measures one Task + Choice round of the backfill child loop
// (what `trailfill plan` simulates many times).
func BenchmarkLoop(b *testing.B) {
	def := `{
	  "QueryLanguage": "JSONata",
	  "StartAt": "Init",
	  "States": {
	    "Init": {"Type": "Pass", "Assign": {"cursor": 0}, "Next": "Work"},
	    "Work": {
	      "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	      "Arguments": {"FunctionName": "backfill", "Payload": {"cursor": "{% $cursor %}", "partition": "{% $states.input.partition %}"}},
	      "Assign": {"cursor": "{% $states.result.Payload.next %}"},
	      "Output": "{% $states.input %}",
	      "Next": "Done?"
	    },
	    "Done?": {"Type": "Choice", "Choices": [{"Condition": "{% $cursor >= $states.input.until %}", "Next": "Done"}], "Default": "Work"},
	    "Done": {"Type": "Succeed"}
	  }
	}`
	m, err := Load([]byte(def))
	if err != nil {
		b.Fatal(err)
	}
	var n int
	inv := InvokerFunc(func(context.Context, string, string, json.RawMessage) (json.RawMessage, error) {
		n++
		return json.RawMessage(`{"next": ` + strconv.Itoa(n) + `}`), nil
	})
	b.ResetTimer()
	res, err := m.Execute(context.Background(), json.RawMessage(`{"partition": "111122223333/us-east-1", "until": `+strconv.Itoa(b.N)+`}`),
		Options{Invoker: inv, Clock: NewFakeClock(epoch), HistoryLimit: -1})
	if err != nil || res.Status != StatusSucceeded {
		b.Fatalf("%v %+v", err, res)
	}
}
