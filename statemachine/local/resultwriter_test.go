package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// writerDef is a Distributed Map over $states.input.items with a
// ResultWriter; a child fails (Error Item.Bad) for an item that is an object
// with "bad", returns [item, item] for a number, and the item otherwise.
func writerDef(resultWriter, tolerated string) string {
	return `{"QueryLanguage": "JSONata", "StartAt": "Fan out", "States": {"Fan out": {
	  "Type": "Map", "Items": "{% $states.input.items %}", "Label": "Item", ` + tolerated + `
	  "ResultWriter": ` + resultWriter + `,
	  "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
	    "StartAt": "Kind", "States": {
	      "Kind": {"Type": "Choice", "Choices": [
	        {"Condition": "{% $type($states.input) = 'object' and $exists($states.input.bad) %}", "Next": "Bad"},
	        {"Condition": "{% $type($states.input) = 'number' %}", "Next": "Pair"}], "Default": "Same"},
	      "Bad": {"Type": "Fail", "Error": "Item.Bad", "Cause": "{% 'bad item ' & $string($states.input.bad) %}"},
	      "Pair": {"Type": "Pass", "Output": "{% [$states.input, $states.input] %}", "End": true},
	      "Same": {"Type": "Pass", "End": true}}},
	  "End": true}}}`
}

const s3Writer = `{"Resource": "arn:aws:states:::s3:putObject", "Arguments": {"Bucket": "results", "Prefix": "{% $states.input.prefix %}"}`

func runWriter(t *testing.T, def, input string, s3 *memS3, fileBytes int) (*Result, *recorder) {
	t.Helper()
	m := mustLoad(t, def)
	rec := newRecorder()
	res, err := m.Execute(context.Background(), json.RawMessage(input), Options{
		Clock: NewFakeClock(epoch), Observer: rec, S3: s3, ExecutionName: "write", MaxConcurrency: 1, resultFileBytes: fileBytes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, rec
}

func decodeList(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return out
}

func TestResultWriterExport(t *testing.T) {
	t.Parallel()
	const machine = "arn:aws:states:us-east-1:123456789012:stateMachine:trailfill"
	t.Run("NONE to S3", func(t *testing.T) {
		s3 := newMemS3("results")
		res, rec := runWriter(t, writerDef(s3Writer+`}`, `"ToleratedFailurePercentage": 100,`),
			`{"items": ["a", {"bad": 1}, "c"], "prefix": "runs/r1"}`, s3, 0)
		wantStatus(t, res, StatusSucceeded)
		mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
		id := mapRun[strings.LastIndex(mapRun, ":")+1:]
		base := "runs/r1/" + id + "/"
		jsonEqual(t, res.Output, fmt.Sprintf(`{"MapRunArn": %q, "ResultWriterDetails": {"Bucket": "results", "Key": %q}}`, mapRun, base+"manifest.json"))
		equalStrings(t, "keys", s3.keys("results"), []string{base + "FAILED_0.json", base + "SUCCEEDED_0.json", base + "manifest.json"})

		succeeded := decodeList(t, s3.object(t, "results", base+"SUCCEEDED_0.json"))
		children := rec.children(res.Execution.ID)
		if len(succeeded) != 2 || len(children) != 3 {
			t.Fatalf("%d succeeded entries, %d children", len(succeeded), len(children))
		}
		first := succeeded[0]
		want := map[string]any{
			"ExecutionArn": children[0].ID, "Name": children[0].Name, "Input": `"a"`, "InputDetails": map[string]any{"Included": true},
			"Output": `"a"`, "OutputDetails": map[string]any{"Included": true}, "RedriveCount": float64(0),
			"RedriveStatus": "NOT_REDRIVABLE", "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
			"StartDate": "2025-04-17T15:00:00.000Z", "StopDate": "2025-04-17T15:00:00.000Z",
			"StateMachineArn": machine + "/Item", "Status": "SUCCEEDED",
		}
		if fmt.Sprint(first) != fmt.Sprint(want) {
			t.Fatalf("succeeded entry\n got  %v\n want %v", first, want)
		}
		if succeeded[1]["Input"] != `"c"` {
			t.Fatalf("second entry %v", succeeded[1])
		}
		failed := decodeList(t, s3.object(t, "results", base+"FAILED_0.json"))
		if len(failed) != 1 || failed[0]["Error"] != "Item.Bad" || failed[0]["Cause"] != "bad item 1" || failed[0]["Status"] != "FAILED" ||
			failed[0]["RedriveStatus"] != "REDRIVABLE_BY_MAP_RUN" || failed[0]["Input"] != `{"bad":1}` || failed[0]["Output"] != nil {
			t.Fatalf("failed entries %v", failed)
		}
		manifest := s3.object(t, "results", base+"manifest.json")
		jsonEqual(t, manifest, fmt.Sprintf(`{"DestinationBucket": "results", "MapRunArn": %q, "ResultFiles": {
			"FAILED": [{"Key": %q, "Size": %d}], "PENDING": [], "SUCCEEDED": [{"Key": %q, "Size": %d}]}}`,
			mapRun, base+"FAILED_0.json", len(s3.object(t, "results", base+"FAILED_0.json")),
			base+"SUCCEEDED_0.json", len(s3.object(t, "results", base+"SUCCEEDED_0.json"))))
		counts := rec.mapRuns[mapRun]
		if last := counts[len(counts)-1]; last != (MapRunCounts{Total: 3, Succeeded: 2, Failed: 1, ResultsWritten: 3}) {
			t.Fatalf("counts %v", last)
		}
	})
	t.Run("COMPACT and FLATTEN as JSON Lines", func(t *testing.T) {
		for _, tc := range []struct{ transformation, want string }{
			{"COMPACT", "[1,1]\n\"s\"\n"},
			{"FLATTEN", "1\n1\n\"s\"\n"},
		} {
			s3 := newMemS3("results")
			res, rec := runWriter(t, writerDef(s3Writer+`, "WriterConfig": {"OutputType": "JSONL", "Transformation": "`+tc.transformation+`"}}`, ""),
				`{"items": [1, "s"], "prefix": ""}`, s3, 0)
			wantStatus(t, res, StatusSucceeded)
			mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
			id := mapRun[strings.LastIndex(mapRun, ":")+1:]
			// An empty Prefix puts the Map Run's folder at the top.
			if got := string(s3.object(t, "results", id+"/SUCCEEDED_0.json")); got != tc.want {
				t.Fatalf("%s: SUCCEEDED_0.json = %q, want %q", tc.transformation, got, tc.want)
			}
		}
	})
	t.Run("files split at the size limit", func(t *testing.T) {
		s3 := newMemS3("results")
		// Each entry is 13 bytes ("item-000000" with its quotes); with
		// "[", two "," and "]" three of them make a file of exactly 43
		// bytes, the limit.
		var items []string
		for i := range 7 {
			items = append(items, fmt.Sprintf(`"item-%06d"`, i))
		}
		res, rec := runWriter(t, writerDef(s3Writer+`, "WriterConfig": {"Transformation": "COMPACT"}}`, ""),
			`{"items": [`+strings.Join(items, ",")+`], "prefix": "p/"}`, s3, 43)
		wantStatus(t, res, StatusSucceeded)
		mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
		base := "p/" + mapRun[strings.LastIndex(mapRun, ":")+1:] + "/"
		for n, want := range []string{
			`["item-000000","item-000001","item-000002"]`,
			`["item-000003","item-000004","item-000005"]`,
			`["item-000006"]`,
		} {
			if got := string(s3.object(t, "results", fmt.Sprintf("%sSUCCEEDED_%d.json", base, n))); got != want {
				t.Fatalf("SUCCEEDED_%d.json = %s, want %s", n, got, want)
			}
			if len(want) > 43 {
				t.Fatalf("file %d over the limit", n)
			}
		}
		var manifest struct {
			ResultFiles map[string][]struct{ Key string }
		}
		if err := json.Unmarshal(s3.object(t, "results", base+"manifest.json"), &manifest); err != nil || len(manifest.ResultFiles["SUCCEEDED"]) != 3 {
			t.Fatalf("manifest %+v %v", manifest, err)
		}
	})
	t.Run("failed Map Run still writes FAILED and PENDING", func(t *testing.T) {
		s3 := newMemS3("results")
		res, rec := runWriter(t, writerDef(s3Writer+`}`, ""), `{"items": ["a", {"bad": 2}, "c", "d"], "prefix": "x"}`, s3, 0)
		wantStatus(t, res, StatusFailed)
		if res.Error != ErrorExceedToleratedFailures {
			t.Fatalf("error %s: %s", res.Error, res.Cause)
		}
		mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
		base := "x/" + mapRun[strings.LastIndex(mapRun, ":")+1:] + "/"
		pending := decodeList(t, s3.object(t, "results", base+"PENDING_0.json"))
		if len(pending) != 2 || pending[0]["Input"] != `"c"` || pending[0]["Status"] != "PENDING" || pending[1]["Input"] != `"d"` {
			t.Fatalf("pending %v", pending)
		}
		if failed := decodeList(t, s3.object(t, "results", base+"FAILED_0.json")); len(failed) != 1 || failed[0]["Cause"] != "bad item 2" {
			t.Fatalf("failed %v", failed)
		}
		if len(s3.keys("results")) != 4 {
			t.Fatalf("keys %v", s3.keys("results"))
		}
	})
	t.Run("write error", func(t *testing.T) {
		s3 := newMemS3("results")
		s3.failPut = func(_, key string) error {
			if strings.HasSuffix(key, "manifest.json") {
				return errors.New("AccessDenied")
			}
			return nil
		}
		res, rec := runWriter(t, writerDef(s3Writer+`, "WriterConfig": {"Transformation": "NONE"}}`, ""), `{"items": ["a"], "prefix": "x"}`, s3, 0)
		wantStatus(t, res, StatusFailed)
		if res.Error != ErrorResultWriterFailed || !strings.Contains(res.Cause, "Unable to write the Map Run results to s3://results/x/") ||
			!strings.HasSuffix(res.Cause, "/manifest.json: AccessDenied") {
			t.Fatalf("error %s: %s", res.Error, res.Cause)
		}
		types := rec.types(res.Execution.ID)
		equalStrings(t, "ends", types[len(types)-3:], []string{"MapRunFailed", "MapStateFailed", "ExecutionFailed"})
	})
	t.Run("missing bucket", func(t *testing.T) {
		res, _ := runWriter(t, writerDef(s3Writer+`}`, ""), `{"items": ["a"], "prefix": "x"}`, newMemS3(), 0)
		if res.Error != ErrorResultWriterFailed || !strings.Contains(res.Cause, "the specified bucket does not exist") {
			t.Fatalf("error %s: %s", res.Error, res.Cause)
		}
	})
}

func TestResultWriterStateOutput(t *testing.T) {
	t.Parallel()
	input := `{"items": [1, "s", {"bad": 3}]}`
	for _, tc := range []struct {
		name, writer string
		check        func(t *testing.T, out []any)
	}{
		{"COMPACT (no ResultWriter)", "", func(t *testing.T, out []any) {
			if fmt.Sprint(out[:2]) != "[[1 1] s]" {
				t.Fatalf("outputs %v", out)
			}
		}},
		{"FLATTEN", `{"WriterConfig": {"Transformation": "FLATTEN"}}`, func(t *testing.T, out []any) {
			if fmt.Sprint(out[:3]) != "[1 1 s]" || len(out) != 4 {
				t.Fatalf("outputs %v", out)
			}
		}},
		{"NONE", `{"WriterConfig": {"Transformation": "NONE"}}`, func(t *testing.T, out []any) {
			e := out[0].(map[string]any)
			if e["Output"] != "[1,1]" || e["Status"] != "SUCCEEDED" || e["Input"] != "1" {
				t.Fatalf("entry %v", e)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := writerDef(`{"WriterConfig": {}}`, `"ToleratedFailureCount": 1,`)
			if tc.writer == "" {
				def = strings.Replace(def, `"ResultWriter": {"WriterConfig": {}},`, "", 1)
			} else {
				def = strings.Replace(def, `{"WriterConfig": {}}`, tc.writer, 1)
			}
			m := mustLoad(t, def)
			res, err := m.Execute(context.Background(), json.RawMessage(input), Options{Clock: NewFakeClock(epoch), MaxConcurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, res, StatusSucceeded)
			var out []any
			if err := json.Unmarshal(res.Output, &out); err != nil {
				t.Fatal(err)
			}
			tc.check(t, out)
			// A failed child's slot is its description with Error and Cause,
			// whatever the transformation.
			last := out[len(out)-1].(map[string]any)
			if last["Error"] != "Item.Bad" || last["Cause"] != "bad item 3" || last["Status"] != "FAILED" {
				t.Fatalf("failed slot %v", last)
			}
		})
	}
}
