package local

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseCSV(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		delim    byte
		want     [][]string
	}{
		{"plain", "a,b\n1,2\n", ',', [][]string{{"a", "b"}, {"1", "2"}}},
		{"CRLF and no final newline", "a,b\r\n1,2", ',', [][]string{{"a", "b"}, {"1", "2"}}},
		{"empty lines skipped", "a\n\n1\n\n", ',', [][]string{{"a"}, {"1"}}},
		{"empty fields", "a,,c\n,\n", ',', [][]string{{"a", "", "c"}, {"", ""}}},
		{"quoted delimiter and newline", "\"x,y\",\"line1\nline2\"\n", ',', [][]string{{"x,y", "line1\nline2"}}},
		{"doubled quote", `"say ""hi""",b` + "\n", ',', [][]string{{`say "hi"`, "b"}}},
		{"empty quoted field", `"",b`, ',', [][]string{{"", "b"}}},
		// The developer guide's example: C:\\Program Files\\MyApp.exe.
		{"escaped backslash", `path,size` + "\n" + `C:\\Program Files\\MyApp.exe,6534512`, ',',
			[][]string{{"path", "size"}, {`C:\Program Files\MyApp.exe`, "6534512"}}},
		{"escaped delimiter", `a\,b,c`, ',', [][]string{{"a,b", "c"}}},
		{"backslash before another character is dropped", `a\qb`, ',', [][]string{{"aqb"}}},
		{"pipe", "a|b,c\n", '|', [][]string{{"a", "b,c"}}},
		{"tab", "a\tb\n", '\t', [][]string{{"a", "b"}}},
		{"UTF-8", "é,ü\n", ',', [][]string{{"é", "ü"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]string
			if err := parseCSV([]byte(tc.in), tc.delim, func(f []string) bool { got = append(got, f); return true }); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("unterminated quote", func(t *testing.T) {
		err := parseCSV([]byte("a\n\"open,b\nc"), ',', func([]string) bool { return true })
		if err == nil || !strings.Contains(err.Error(), "ends inside a quoted field (opened before line 3)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("stop early", func(t *testing.T) {
		n := 0
		_ = parseCSV([]byte("1\n2\n3\n"), ',', func([]string) bool { n++; return n < 2 })
		if n != 2 {
			t.Fatalf("%d records after stopping at 2", n)
		}
	})
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseItems(t *testing.T) {
	t.Parallel()
	csvFirst := &itemReader{inputType: "CSV", headerLocation: "FIRST_ROW", delimiter: ','}
	for _, tc := range []struct {
		name string
		body []byte
		key  string
		ir   *itemReader
		max  int
		want string
	}{
		{"JSON array", []byte(`[{"a":1},null,"x"]`), "k.json", &itemReader{inputType: "JSON"}, 0, `[{"a":1},null,"x"]`},
		{"JSON MaxItems", []byte(`[1,2,3]`), "k.json", &itemReader{inputType: "JSON"}, 2, `[1,2]`},
		{"JSON ItemsPointer", []byte(`{"inventory":{"a/b":[{"id":1}],"x~y":[2]}}`), "k", &itemReader{inputType: "JSON", itemsPointer: "/inventory/a~1b"}, 0, `[{"id":1}]`},
		{"JSON ItemsPointer escape", []byte(`{"x~y":[2]}`), "k", &itemReader{inputType: "JSON", itemsPointer: "/x~0y"}, 0, `[2]`},
		{"JSON ItemsPointer index", []byte(`{"l":[[7,8]]}`), "k", &itemReader{inputType: "JSON", itemsPointer: "/l/0"}, 0, `[7,8]`},
		{"JSONL", []byte("{\"a\":1}\n\n  \n[2]\r\n3\n"), "k.jsonl", &itemReader{inputType: "JSONL"}, 0, `[{"a":1},[2],3]`},
		{"JSONL MaxItems stops reading", []byte("1\n2\nnot json\n"), "k", &itemReader{inputType: "JSONL"}, 2, `[1,2]`},
		{"CSV first row", []byte("account,region\n111,us-east-1\n222,eu-west-1\n"), "k.csv", csvFirst, 0,
			`[{"account":"111","region":"us-east-1"},{"account":"222","region":"eu-west-1"}]`},
		{"CSV given headers, short and long rows", []byte("1,2,3\n4\n"), "k.csv", &itemReader{inputType: "CSV", headerLocation: "GIVEN", headers: []string{"a", "b"}, delimiter: ','}, 0,
			`[{"a":"1","b":"2"},{"a":"4","b":""}]`},
		{"CSV MaxItems excludes the header", []byte("h\n1\n2\n3\n"), "k.csv", csvFirst, 2, `[{"h":"1"},{"h":"2"}]`},
		{"CSV header only", []byte("h\n"), "k.csv", csvFirst, 0, `null`},
		{"gzip", gzipped(t, "h\nv\n"), "data/k.csv.gz", csvFirst, 0, `[{"h":"v"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := parseItems(tc.body, tc.key, tc.ir, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := encodeJSON(items)
			if tc.want == "null" && len(items) == 0 {
				return
			}
			jsonEqual(t, got, tc.want)
		})
	}
	for _, tc := range []struct {
		name string
		body []byte
		key  string
		ir   *itemReader
		want string
	}{
		// Causes as Step Functions gives them (LocalStack's snapshots recorded from AWS).
		{"JSON object", []byte(`{"a":[1]}`), "k.json", &itemReader{inputType: "JSON"}, "Attempting to map over non-iterable node."},
		{"duplicate CSV headers", []byte("a,a\n1,2\n"), "k.csv", csvFirst, "CSV headers cannot contain duplicates."},
		{"duplicate given headers", []byte("1,2\n"), "k.csv", &itemReader{inputType: "CSV", headerLocation: "GIVEN", headers: []string{"x", "x"}, delimiter: ','}, "CSV headers cannot contain duplicates."},
		{"JSON not valid", []byte(`[1,`), "k.json", &itemReader{inputType: "JSON"}, "the object is not valid JSON"},
		{"JSONL line not valid", []byte("1\n{\n"), "k", &itemReader{inputType: "JSONL"}, "line 2 of the JSON Lines object is not valid JSON"},
		{"pointer to nothing", []byte(`{"a":{}}`), "k", &itemReader{inputType: "JSON", itemsPointer: "/a/b"}, `the ItemsPointer "/a/b" names no member of the object: "b" is missing`},
		{"pointer through a string", []byte(`{"a":"s"}`), "k", &itemReader{inputType: "JSON", itemsPointer: "/a/b"}, `the ItemsPointer "/a/b" goes through a string`},
		{"not gzip", []byte("h\nv\n"), "k.csv.gz", csvFirst, `the object "k.csv.gz" is not valid GZIP`},
		{"zstd", []byte("x"), "k.csv.zstd", csvFirst, `the object "k.csv.zstd" is ZSTD-compressed, which this executor does not read`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseItems(tc.body, tc.key, tc.ir, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// readerDef is a Distributed Map whose items come from an ItemReader (the
// ReaderConfig given) and whose children echo their input.
func readerDef(readerConfig string) string {
	return `{"QueryLanguage": "JSONata", "StartAt": "Read", "States": {"Read": {
	  "Type": "Map",
	  "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": ` + readerConfig + `,
	    "Arguments": {"Bucket": "{% $states.input.bucket %}", "Key": "{% $states.input.key %}"}},
	  "ItemSelector": {"item": "{% $states.context.Map.Item.Value %}", "index": "{% $states.context.Map.Item.Index %}", "run": "{% $states.input.run %}"},
	  "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
	    "StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": true}}},
	  "End": true}}}`
}

func TestItemReaderExecution(t *testing.T) {
	t.Parallel()
	exec := func(t *testing.T, def, input string, s3 S3) (*Result, *recorder) {
		t.Helper()
		m := mustLoad(t, def)
		rec := newRecorder()
		res, err := m.Execute(context.Background(), json.RawMessage(input), Options{Clock: NewFakeClock(epoch), Observer: rec, S3: s3, ExecutionName: "read"})
		if err != nil {
			t.Fatal(err)
		}
		return res, rec
	}
	t.Run("CSV items through ItemSelector", func(t *testing.T) {
		s3 := newMemS3("staging")
		s3.put("staging", "in/parts.csv", "account,region\n111,us-east-1\n222,eu-west-1\n333,ap-south-1\n")
		res, rec := exec(t, readerDef(`{"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": "{% $states.input.max %}"}`),
			`{"bucket": "staging", "key": "in/parts.csv", "run": "r1", "max": 2}`, s3)
		wantStatus(t, res, StatusSucceeded)
		jsonEqual(t, res.Output, `[{"item": {"account": "111", "region": "us-east-1"}, "index": 0, "run": "r1"},
			{"item": {"account": "222", "region": "eu-west-1"}, "index": 1, "run": "r1"}]`)
		// The items are read by the Map Run: MapStateStarted reports 0.
		if d := rec.details(res.Execution.ID, "MapStateStarted")[0]; d["length"] != float64(0) {
			t.Fatalf("MapStateStarted %v", d)
		}
		equalStrings(t, "parent history", rec.types(res.Execution.ID), []string{"ExecutionStarted", "MapStateEntered", "MapStateStarted",
			"MapRunStarted", "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"})
		mapRun := rec.details(res.Execution.ID, "MapRunStarted")[0]["mapRunArn"].(string)
		counts := rec.mapRuns[mapRun]
		if first, last := counts[0], counts[len(counts)-1]; first != (MapRunCounts{}) || last != (MapRunCounts{Total: 2, Succeeded: 2}) {
			t.Fatalf("counts %v", counts)
		}
		if res.Stats.Executions != 3 || s3.gets != 1 {
			t.Fatalf("%d executions, %d GETs", res.Stats.Executions, s3.gets)
		}
	})
	t.Run("JSON Lines", func(t *testing.T) {
		s3 := newMemS3("staging")
		s3.put("staging", "p.jsonl", "{\"p\":1}\n{\"p\":2}\n")
		res, _ := exec(t, readerDef(`{"InputType": "JSONL"}`), `{"bucket": "staging", "key": "p.jsonl", "run": "r"}`, s3)
		wantStatus(t, res, StatusSucceeded)
		jsonEqual(t, res.Output, `[{"item": {"p": 1}, "index": 0, "run": "r"}, {"item": {"p": 2}, "index": 1, "run": "r"}]`)
	})
	for _, tc := range []struct {
		name, config, key, body, cause string
	}{
		{"missing object", `{"InputType": "JSON"}`, "nope.json", "", "Unable to read the object s3://staging/nope.json: get staging/nope.json: the specified key does not exist"},
		{"not an array", `{"InputType": "JSON"}`, "obj.json", `{"a": 1}`, "Attempting to map over non-iterable node."},
		{"duplicate headers", `{"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["a", "a"]}`, "d.csv", "1,2\n", "CSV headers cannot contain duplicates."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s3 := newMemS3("staging")
			if tc.body != "" {
				s3.put("staging", tc.key, tc.body)
			}
			res, rec := exec(t, readerDef(tc.config), `{"bucket": "staging", "key": "`+tc.key+`", "run": "r"}`, s3)
			wantStatus(t, res, StatusFailed)
			if res.Error != ErrorItemReaderFailed || res.Cause != tc.cause {
				t.Fatalf("error %s: %s", res.Error, res.Cause)
			}
			// As recorded from AWS: MapRunStarted, MapRunFailed (with the
			// error and cause), MapStateFailed, ExecutionFailed.
			equalStrings(t, "parent history", rec.types(res.Execution.ID), []string{"ExecutionStarted", "MapStateEntered", "MapStateStarted",
				"MapRunStarted", "MapRunFailed", "MapStateFailed", "ExecutionFailed"})
			if d := rec.details(res.Execution.ID, "MapRunFailed")[0]; d["error"] != ErrorItemReaderFailed || d["cause"] != tc.cause {
				t.Fatalf("MapRunFailed %v", d)
			}
			if res.Stats.Executions != 1 {
				t.Fatalf("%d executions", res.Stats.Executions)
			}
		})
	}
	t.Run("Arguments of the wrong type", func(t *testing.T) {
		res, rec := exec(t, readerDef(`{"InputType": "JSON"}`), `{"bucket": "staging", "key": 7}`, newMemS3("staging"))
		wantStatus(t, res, StatusFailed)
		if res.Error != ErrorQueryEvaluation || !strings.Contains(res.Cause, "ItemReader/Arguments/Key") {
			t.Fatalf("error %s: %s", res.Error, res.Cause)
		}
		// Evaluated before the Map Run starts.
		if n := len(rec.details(res.Execution.ID, "MapRunStarted")); n != 0 {
			t.Fatalf("%d Map Runs started", n)
		}
	})
	t.Run("no S3 bound", func(t *testing.T) {
		m := mustLoad(t, readerDef(`{"InputType": "JSON"}`))
		_, err := m.Execute(context.Background(), nil, Options{})
		if err == nil || !strings.Contains(err.Error(), "Options.S3 is nil") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("child input over the quota", func(t *testing.T) {
		s3 := newMemS3("staging")
		s3.put("staging", "big.json", `["`+strings.Repeat("x", MaxPayloadBytes)+`"]`)
		res, _ := exec(t, readerDef(`{"InputType": "JSON"}`), `{"bucket": "staging", "key": "big.json", "run": "r"}`, s3)
		wantStatus(t, res, StatusFailed)
		if res.Error != ErrorDataLimitExceeded || !strings.Contains(res.Cause, "The input of the child execution for item 0 of state 'Read'") {
			t.Fatalf("error %s: %s", res.Error, res.Cause)
		}
	})
}
