package local

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// resultWriter is a Distributed Map's ResultWriter ("ResultWriter (Map)",
// AWS Step Functions Developer Guide,
// docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html).
type resultWriter struct {
	resource       string   // arn:aws:states:::s3:putObject, or "" (WriterConfig only)
	arguments      template // {"Bucket": .., "Prefix": ..}
	outputType     string   // JSON or JSONL
	transformation string   // NONE, COMPACT or FLATTEN
}

// MaxResultFileBytes is the size at which a ResultWriter starts a new
// results file: "Step Functions supports individual result files of up to
// 5 GB. If a file size exceeds 5 GB, Step Functions creates another file to
// write the remaining execution results and appends an index number to the
// file name" (ResultWriter (Map), developer guide).
const MaxResultFileBytes = 5 << 30

var (
	writerFields       = []string{"Resource", "Arguments", "WriterConfig"}
	writerConfigFields = []string{"OutputType", "Transformation"}
	writerArgFields    = []string{"Bucket", "Prefix"}
)

// resultWriter parses a ResultWriter: "You must specify one of these sets of
// sub-fields. WriterConfig - to preview the formatted output, without saving
// the results to Amazon S3. Resource and Parameters [Arguments in JSONata] -
// to save the results to Amazon S3 without additional formatting. All three
// fields" (ResultWriter (Map), developer guide).
func (p *parser) resultWriter(stateName string, raw any) (*resultWriter, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("the ResultWriter of state %q must be an object", stateName)
	}
	if err := onlyFields(obj, writerFields, func(f string) error {
		return invalid("unsupported field %q in the ResultWriter of state %q", f, stateName)
	}); err != nil {
		return nil, err
	}
	where := fmt.Sprintf("the ResultWriter of state %q", stateName)
	rw := &resultWriter{outputType: "JSON"}
	res, hasRes, err := optString(obj, "Resource", where)
	if err != nil {
		return nil, err
	}
	args, hasArgs := obj["Arguments"]
	cfg, hasCfg := obj["WriterConfig"]
	switch {
	case hasRes != hasArgs:
		return nil, invalid("%s needs both Resource and Arguments (Bucket, Prefix) to export to S3", where)
	case !hasRes && !hasCfg:
		return nil, invalid("%s cannot be empty: give Resource and Arguments, WriterConfig, or all three", where)
	}
	if hasRes {
		if !s3PutObjectResource.MatchString(res) {
			return nil, invalid("unsupported ResultWriter resource %q in state %q: only arn:aws:states:::s3:putObject is supported", res, stateName)
		}
		rw.resource = res
		if a, isObj := args.(map[string]any); isObj {
			if _, has := a["Bucket"]; !has {
				return nil, invalid("the ResultWriter Arguments of state %q need a Bucket", stateName)
			}
			if err := onlyFields(a, writerArgFields, func(f string) error {
				return invalid("unsupported argument %q in the ResultWriter of state %q: only Bucket and Prefix are supported", f, stateName)
			}); err != nil {
				return nil, err
			}
		}
		if rw.arguments, err = p.template(args, stateName, "ResultWriter/Arguments"); err != nil {
			return nil, err
		}
	}
	// "NONE ... Default when exporting the child workflow execution results
	// to Amazon S3 and WriterConfig is not specified. COMPACT ... Default
	// when ResultWriter is not specified." A WriterConfig without
	// Transformation keeps the same defaults.
	rw.transformation = "COMPACT"
	if hasRes {
		rw.transformation = "NONE"
	}
	if hasCfg {
		c, isObj := cfg.(map[string]any)
		if !isObj {
			return nil, invalid("the WriterConfig of state %q must be an object", stateName)
		}
		if err := onlyFields(c, writerConfigFields, func(f string) error {
			return invalid("unsupported field %q in the WriterConfig of state %q", f, stateName)
		}); err != nil {
			return nil, err
		}
		cw := fmt.Sprintf("the WriterConfig of state %q", stateName)
		if s, ok, err := optString(c, "OutputType", cw); err != nil {
			return nil, err
		} else if ok {
			if s != "JSON" && s != "JSONL" {
				return nil, invalid("%s: OutputType must be JSON or JSONL", cw)
			}
			rw.outputType = s
		}
		if s, ok, err := optString(c, "Transformation", cw); err != nil {
			return nil, err
		} else if ok {
			if s != "NONE" && s != "COMPACT" && s != "FLATTEN" {
				return nil, invalid("%s: Transformation must be NONE, COMPACT or FLATTEN", cw)
			}
			rw.transformation = s
		}
		if !hasRes && rw.outputType == "JSONL" {
			return nil, invalid("%s: OutputType JSONL needs Resource and Arguments: a state output cannot be JSON Lines", cw)
		}
	}
	return rw, nil
}

// childRecord is what a Map Run knows of one item: its child execution, if
// it started.
type childRecord struct {
	started             bool
	arn, name           string
	input               any
	status              string // a Status* constant; "" while pending
	output              any
	errName, cause      string
	startTime, stopTime time.Time
}

// entry is the child's record in the shape of the ResultWriter's NONE
// transformation: the child execution's description with its input and
// output as JSON strings, as the developer guide shows it (ResultWriter
// (Map), "Transformation NONE"), keys in that order (encodeJSON sorts map
// keys). A child that never started (PENDING) has only its input and
// status.
func (c *childRecord) entry(machineArn string) map[string]any {
	e := map[string]any{
		"Input":        encodeString(c.input),
		"InputDetails": map[string]any{"Included": true},
	}
	if !c.started {
		e["Status"] = "PENDING"
		return e
	}
	e["ExecutionArn"] = c.arn
	e["Name"] = c.name
	e["RedriveCount"] = float64(0)
	e["StartDate"] = timestamp(c.startTime)
	e["StateMachineArn"] = machineArn
	e["Status"] = c.status
	e["StopDate"] = timestamp(c.stopTime)
	if c.status == StatusSucceeded {
		e["Output"] = encodeString(c.output)
		e["OutputDetails"] = map[string]any{"Included": true}
		// DescribeExecution's redriveStatusReason for a succeeded
		// execution (API reference).
		e["RedriveStatus"] = "NOT_REDRIVABLE"
		e["RedriveStatusReason"] = "Execution is SUCCEEDED and cannot be redriven"
		return e
	}
	e["Error"], e["Cause"] = c.errName, c.cause
	// A failed child of a Map Run is redriven through its Map Run
	// (ExecutionRedriveStatus REDRIVABLE_BY_MAP_RUN, API reference).
	e["RedriveStatus"] = "REDRIVABLE_BY_MAP_RUN"
	return e
}

// transformed returns the Map's result for a transformation without S3:
// COMPACT, the children's outputs; FLATTEN, the same with array outputs
// spliced in; NONE, the entries. "If a child workflow execution fails, Step
// Functions returns its execution result unchanged. The results would be
// equivalent to having set Transformation to NONE" (ResultWriter (Map)).
func transformed(records []childRecord, transformation, machineArn string) []any {
	out := make([]any, 0, len(records))
	for i := range records {
		c := &records[i]
		switch {
		case transformation == "NONE" || c.status != StatusSucceeded:
			out = append(out, c.entry(machineArn))
		case transformation == "FLATTEN":
			if arr, ok := c.output.([]any); ok {
				out = append(out, arr...)
			} else {
				out = append(out, c.output)
			}
		default:
			out = append(out, c.output)
		}
	}
	return out
}

// writeResults exports a Map Run's records to S3 as Step Functions does:
// <Prefix>/<Map Run ID>/SUCCEEDED_n.json (succeeded children),
// FAILED_n.json ("all failed, timed out, and aborted child workflow
// executions"), PENDING_n.json (children "that weren't started because the
// Map Run failed or aborted"), each split at MaxResultFileBytes, then
// manifest.json with DestinationBucket, MapRunArn and ResultFiles (each
// file's Key and Size) (ResultWriter (Map), developer guide). It returns
// the Map's result, {"MapRunArn": .., "ResultWriterDetails": {"Bucket":
// .., "Key": <manifest>}}, and how many child results it wrote.
func (r *stateRun) writeResults(ctx context.Context, bucket, prefix, mapRunArn string, records []childRecord) (any, int, *stateError) {
	rw, s := r.st.resultWriter, r.t.ex.s
	machineArn := s.machineArn + "/" + mapRunLabel(mapRunArn)
	base := prefix
	if base != "" && !strings.HasSuffix(base, "/") {
		base += "/"
	}
	base += mapRunArn[strings.LastIndex(mapRunArn, ":")+1:] + "/"
	limit := s.resultFileBytes
	if limit <= 0 {
		limit = MaxResultFileBytes
	}

	groups := map[string][][]byte{}
	written := 0
	for i := range records {
		c := &records[i]
		group := "FAILED"
		switch {
		case !c.started:
			group = "PENDING"
		case c.status == StatusSucceeded:
			group = "SUCCEEDED"
		}
		if c.started {
			written++
		}
		var values []any
		switch {
		case group != "SUCCEEDED" || rw.transformation == "NONE":
			values = []any{c.entry(machineArn)}
		case rw.transformation == "FLATTEN":
			if arr, ok := c.output.([]any); ok {
				values = arr
			} else {
				values = []any{c.output}
			}
		default:
			values = []any{c.output}
		}
		for _, v := range values {
			b, err := encodeJSON(v)
			if err != nil {
				return nil, 0, &stateError{Name: ErrorResultWriterFailed, Cause: fmt.Sprintf("a result of the Map Run %s is not JSON: %v", mapRunArn, err)}
			}
			groups[group] = append(groups[group], b)
		}
	}
	manifestFiles := map[string][]any{"SUCCEEDED": {}, "FAILED": {}, "PENDING": {}}
	for _, group := range []string{"SUCCEEDED", "FAILED", "PENDING"} {
		for n, body := range splitResults(groups[group], rw.outputType, limit) {
			key := fmt.Sprintf("%s%s_%d.json", base, group, n)
			if err := s.s3.PutObject(ctx, bucket, key, body); err != nil {
				return nil, 0, writeFailure(ctx, bucket, key, err)
			}
			manifestFiles[group] = append(manifestFiles[group], map[string]any{"Key": key, "Size": float64(len(body))})
		}
	}
	manifest, err := encodeJSON(map[string]any{
		"DestinationBucket": bucket,
		"MapRunArn":         mapRunArn,
		"ResultFiles":       manifestFiles,
	})
	if err != nil {
		return nil, 0, &stateError{Name: ErrorResultWriterFailed, Cause: err.Error()}
	}
	key := base + "manifest.json"
	if err := s.s3.PutObject(ctx, bucket, key, manifest); err != nil {
		return nil, 0, writeFailure(ctx, bucket, key, err)
	}
	return map[string]any{
		"MapRunArn":           mapRunArn,
		"ResultWriterDetails": map[string]any{"Bucket": bucket, "Key": key},
	}, written, nil
}

func writeFailure(ctx context.Context, bucket, key string, err error) *stateError {
	if ctx.Err() != nil {
		return abortError(ctx)
	}
	return &stateError{Name: ErrorResultWriterFailed, Cause: fmt.Sprintf(
		"Unable to write the Map Run results to s3://%s/%s: %v", bucket, key, err)}
}

// splitResults joins encoded results into file bodies of at most limit
// bytes each (a single result larger than limit gets a file of its own):
// a JSON array, or JSON Lines (one result and a newline each).
func splitResults(results [][]byte, outputType string, limit int) [][]byte {
	var (
		files [][]byte
		cur   bytes.Buffer
		n     int
	)
	flush := func() {
		if outputType == "JSON" {
			cur.WriteByte(']')
		}
		files = append(files, bytes.Clone(cur.Bytes()))
		cur.Reset()
		n = 0
	}
	closing := 0
	if outputType == "JSON" {
		closing = 1 // "]"
	}
	for _, b := range results {
		// Each result adds itself and one byte: "[" or "," before it in a
		// JSON array, "\n" after it in JSON Lines.
		if n > 0 && cur.Len()+len(b)+1+closing > limit {
			flush()
		}
		switch {
		case outputType == "JSONL":
			cur.Write(b)
			cur.WriteByte('\n')
		case n == 0:
			cur.WriteByte('[')
			cur.Write(b)
		default:
			cur.WriteByte(',')
			cur.Write(b)
		}
		n++
	}
	if n > 0 {
		flush()
	}
	return files
}

// mapRunLabel returns the label of a Map Run ARN
// (arn:...:mapRun:<machine>/<label>:<id>).
func mapRunLabel(mapRunArn string) string {
	res := mapRunArn[:strings.LastIndex(mapRunArn, ":")]
	return res[strings.LastIndex(res, "/")+1:]
}
