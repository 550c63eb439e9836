package local

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// itemReader is a Distributed Map's ItemReader: one object read with
// arn:aws:states:::s3:getObject ("ItemReader (Map)", AWS Step Functions
// Developer Guide, docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html).
type itemReader struct {
	arguments      template // evaluates to {"Bucket": .., "Key": ..}
	inputType      string   // JSON, JSONL or CSV
	headerLocation string   // CSV: FIRST_ROW or GIVEN
	headers        []string // CSV with GIVEN
	delimiter      byte     // CSV
	maxItems       template // nil: every item
	itemsPointer   string   // JSON: RFC 6901 pointer to the array ("" the document)
}

// maxReaderItems is the largest MaxItems: "You can specify a limit of up to
// 100,000,000 after which the Distributed Map stops reading items" (ItemReader
// (Map), developer guide).
const maxReaderItems = 100_000_000

var (
	s3GetObjectResource  = regexp.MustCompile(`^arn:aws[a-z-]*:states:::s3:getObject$`)
	s3PutObjectResource  = regexp.MustCompile(`^arn:aws[a-z-]*:states:::s3:putObject$`)
	csvDelimiters        = map[string]byte{"COMMA": ',', "PIPE": '|', "SEMICOLON": ';', "SPACE": ' ', "TAB": '\t'}
	readerFields         = []string{"Resource", "Arguments", "ReaderConfig"}
	readerConfigFields   = []string{"InputType", "CSVHeaderLocation", "CSVHeaders", "CSVDelimiter", "MaxItems", "ItemsPointer"}
	readerArgumentFields = []string{"Bucket", "Key"}
)

// itemReader parses an ItemReader. It accepts what one S3 GetObject can
// serve as JSON, JSON Lines or CSV, and refuses by name the rest: listing
// objects (s3:listObjectsV2), manifests, Parquet, object versions and the
// JSONPath fields.
func (p *parser) itemReader(stateName string, raw any) (*itemReader, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid("the ItemReader of state %q must be an object", stateName)
	}
	if err := onlyFields(obj, readerFields, func(f string) error {
		return invalid("unsupported field %q in the ItemReader of state %q", f, stateName)
	}); err != nil {
		return nil, err
	}
	res, _, err := optString(obj, "Resource", fmt.Sprintf("the ItemReader of state %q", stateName))
	if err != nil {
		return nil, err
	}
	if !s3GetObjectResource.MatchString(res) {
		return nil, invalid("unsupported ItemReader resource %q in state %q: only arn:aws:states:::s3:getObject (one JSON, JSON Lines or CSV object) is supported", res, stateName)
	}
	ir := &itemReader{delimiter: ','}
	args, ok := obj["Arguments"]
	if !ok {
		return nil, invalid("the ItemReader of state %q needs Arguments with Bucket and Key", stateName)
	}
	if a, isObj := args.(map[string]any); isObj {
		for _, f := range readerArgumentFields {
			if _, has := a[f]; !has {
				return nil, invalid("the ItemReader Arguments of state %q need a %s", stateName, f)
			}
		}
		if err := onlyFields(a, readerArgumentFields, func(f string) error {
			return invalid("unsupported argument %q in the ItemReader of state %q: only Bucket and Key are supported (the current version of the object is read)", f, stateName)
		}); err != nil {
			return nil, err
		}
	}
	if ir.arguments, err = p.template(args, stateName, "ItemReader/Arguments"); err != nil {
		return nil, err
	}
	cfg, ok := obj["ReaderConfig"].(map[string]any)
	if !ok {
		return nil, invalid("the ItemReader of state %q needs a ReaderConfig with an InputType (JSON, JSONL or CSV)", stateName)
	}
	if err := onlyFields(cfg, readerConfigFields, func(f string) error {
		return invalid("unsupported field %q in the ReaderConfig of state %q", f, stateName)
	}); err != nil {
		return nil, err
	}
	where := fmt.Sprintf("the ReaderConfig of state %q", stateName)
	if ir.inputType, _, err = optString(cfg, "InputType", where); err != nil {
		return nil, err
	}
	switch ir.inputType {
	case "JSON", "JSONL", "CSV":
	case "MANIFEST", "PARQUET":
		return nil, invalid("unsupported InputType %q in the ReaderConfig of state %q: only JSON, JSONL and CSV are supported", ir.inputType, stateName)
	case "":
		return nil, invalid("%s needs an InputType (JSON, JSONL or CSV)", where)
	default:
		return nil, invalid("unknown InputType %q in %s", ir.inputType, where)
	}
	csvOnly := func(field string) error {
		if _, has := cfg[field]; has && ir.inputType != "CSV" {
			return invalid("field %q in %s requires InputType CSV", field, where)
		}
		return nil
	}
	for _, f := range []string{"CSVHeaderLocation", "CSVHeaders", "CSVDelimiter"} {
		if err := csvOnly(f); err != nil {
			return nil, err
		}
	}
	if ir.inputType == "CSV" {
		if ir.headerLocation, _, err = optString(cfg, "CSVHeaderLocation", where); err != nil {
			return nil, err
		}
		_, hasHeaders := cfg["CSVHeaders"]
		switch ir.headerLocation {
		case "FIRST_ROW":
			if hasHeaders {
				return nil, invalid("%s: CSVHeaders requires CSVHeaderLocation GIVEN", where)
			}
		case "GIVEN":
			list, isList := cfg["CSVHeaders"].([]any)
			if !isList || len(list) == 0 {
				return nil, invalid("%s: CSVHeaderLocation GIVEN needs a non-empty CSVHeaders array", where)
			}
			for _, h := range list {
				s, isString := h.(string)
				if !isString {
					return nil, invalid("%s: CSVHeaders must hold strings", where)
				}
				ir.headers = append(ir.headers, s)
			}
		default:
			return nil, invalid("%s: CSV needs CSVHeaderLocation FIRST_ROW or GIVEN", where)
		}
		if d, ok, err := optString(cfg, "CSVDelimiter", where); err != nil {
			return nil, err
		} else if ok {
			if ir.delimiter, ok = csvDelimiters[d]; !ok {
				return nil, invalid("%s: CSVDelimiter must be COMMA, PIPE, SEMICOLON, SPACE or TAB", where)
			}
		}
	}
	if ptr, ok, err := optString(cfg, "ItemsPointer", where); err != nil {
		return nil, err
	} else if ok {
		if ir.inputType != "JSON" {
			return nil, invalid("field \"ItemsPointer\" in %s requires InputType JSON", where)
		}
		if ptr != "" && !strings.HasPrefix(ptr, "/") {
			return nil, invalid("%s: ItemsPointer must be a JSON Pointer such as /inventory/products", where)
		}
		ir.itemsPointer = ptr
	}
	if ir.maxItems, err = p.numberField(cfg, "MaxItems", stateName,
		func(f float64) bool { return isNonNegativeInt(f) && f <= maxReaderItems }, "an integer from 0 to 100000000"); err != nil {
		return nil, err
	}
	return ir, nil
}

// readerArguments evaluates the ItemReader's Arguments and MaxItems.
func (r *stateRun) readerArguments() (bucket, key string, maxItems int, serr *stateError) {
	ir := r.st.itemReader
	v, serr := r.eval(ir.arguments, "ItemReader/Arguments", binding{})
	if serr != nil {
		return "", "", 0, serr
	}
	if bucket, key, serr = r.bucketAndKey(ir.arguments, "ItemReader/Arguments", v, "Key"); serr != nil {
		return "", "", 0, serr
	}
	if ir.maxItems != nil {
		n, serr := r.evalInt(ir.maxItems, "ItemReader/ReaderConfig/MaxItems", 0, binding{})
		if serr != nil {
			return "", "", 0, serr
		}
		if n > maxReaderItems {
			return "", "", 0, r.typeError(ir.maxItems, "ItemReader/ReaderConfig/MaxItems", "an integer from 0 to 100000000", float64(n))
		}
		maxItems = int(n)
	}
	return bucket, key, maxItems, nil
}

// bucketAndKey checks evaluated S3 arguments: an object with a non-empty
// string Bucket and a string member keyField (required unless it is
// "Prefix"), and nothing else.
func (r *stateRun) bucketAndKey(tp template, field string, v any, keyField string) (bucket, key string, serr *stateError) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", "", r.typeError(tp, field, "an object with Bucket and "+keyField, v)
	}
	for k := range obj {
		if k != "Bucket" && k != keyField {
			return "", "", r.typeError(tp, field, "an object with only Bucket and "+keyField, v)
		}
	}
	bucket, ok = obj["Bucket"].(string)
	if !ok || bucket == "" {
		return "", "", r.typeError(tp, field+"/Bucket", "a non-empty string", obj["Bucket"])
	}
	raw, has := obj[keyField]
	key, ok = raw.(string)
	switch {
	case !has && keyField == "Prefix":
	case !ok || (key == "" && keyField != "Prefix"):
		return "", "", r.typeError(tp, field+"/"+keyField, "a non-empty string", raw)
	}
	return bucket, key, nil
}

// readItems reads and parses the ItemReader's object. Every failure is
// States.ItemReaderFailed: "A Map state failed to read all items as
// specified by the ItemReader field" (Error names, Amazon States Language).
func (r *stateRun) readItems(bucket, key string, maxItems int) ([]any, *stateError) {
	body, err := r.t.ex.s.s3.GetObject(r.t.ctx, bucket, key)
	if err != nil {
		if r.t.ctx.Err() != nil {
			return nil, abortError(r.t.ctx)
		}
		return nil, &stateError{Name: ErrorItemReaderFailed, Cause: fmt.Sprintf(
			"Unable to read the object s3://%s/%s: %v", bucket, key, err)}
	}
	items, err := parseItems(body, key, r.st.itemReader, maxItems)
	if err != nil {
		return nil, &stateError{Name: ErrorItemReaderFailed, Cause: err.Error()}
	}
	return items, nil
}

// parseItems turns an object's body into items. maxItems 0 reads them all.
func parseItems(body []byte, key string, ir *itemReader, maxItems int) ([]any, error) {
	// "Input files support the following external compression types: GZIP,
	// ZSTD. Example file names: myObject.jsonl.gz and myObject.csv.zstd"
	// (ItemReader (Map), developer guide).
	switch lower := strings.ToLower(key); {
	case strings.HasSuffix(lower, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("the object %q is not valid GZIP: %w", key, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("the object %q is not valid GZIP: %w", key, err)
		}
	case strings.HasSuffix(lower, ".zstd"), strings.HasSuffix(lower, ".zst"):
		return nil, fmt.Errorf("the object %q is ZSTD-compressed, which this executor does not read: store it uncompressed or with GZIP (.gz)", key)
	}
	limit := maxItems
	if limit == 0 {
		limit = maxReaderItems
	}
	switch ir.inputType {
	case "JSON":
		return parseJSONItems(body, ir.itemsPointer, limit)
	case "JSONL":
		return parseJSONLItems(body, limit)
	default:
		return parseCSVItems(body, ir, limit)
	}
}

// Causes Step Functions gives, as recorded from AWS in LocalStack's
// validated snapshot tests (tests/aws/services/stepfunctions/v2/scenarios).
const (
	causeNotIterable      = "Attempting to map over non-iterable node."
	causeDuplicateHeaders = "CSV headers cannot contain duplicates."
)

// awsCause is an error whose text is a cause worded as Step Functions words
// it.
type awsCause string

func (c awsCause) Error() string { return string(c) }

func parseJSONItems(body []byte, pointer string, limit int) ([]any, error) {
	doc, err := decodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("the object is not valid JSON: %w", err)
	}
	node, err := jsonPointer(doc, pointer)
	if err != nil {
		return nil, err
	}
	items, ok := node.([]any)
	if !ok {
		return nil, awsCause(causeNotIterable)
	}
	if len(items) > limit {
		items = items[:limit]
	}
	return items, nil
}

// jsonPointer resolves an RFC 6901 JSON Pointer.
func jsonPointer(doc any, pointer string) (any, error) {
	if pointer == "" {
		return doc, nil
	}
	node := doc
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := node.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, fmt.Errorf("the ItemsPointer %q names no member of the object: %q is missing", pointer, tok)
			}
			node = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) || (len(tok) > 1 && tok[0] == '0') {
				return nil, fmt.Errorf("the ItemsPointer %q names no element of the array: %q", pointer, tok)
			}
			node = n[i]
		default:
			return nil, fmt.Errorf("the ItemsPointer %q goes through a %s", pointer, typeName(node))
		}
	}
	return node, nil
}

func parseJSONLItems(body []byte, limit int) ([]any, error) {
	var items []any
	for n, line := range bytes.Split(body, []byte("\n")) {
		if len(items) == limit {
			break
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		v, err := decodeJSON(line)
		if err != nil {
			return nil, fmt.Errorf("line %d of the JSON Lines object is not valid JSON: %w", n+1, err)
		}
		items = append(items, v)
	}
	return items, nil
}

func parseCSVItems(body []byte, ir *itemReader, limit int) ([]any, error) {
	headers := ir.headers
	var items []any
	var dup error
	err := parseCSV(body, ir.delimiter, func(fields []string) bool {
		if headers == nil {
			headers = fields
			return true
		}
		if dup == nil {
			seen := map[string]bool{}
			for _, h := range headers {
				if seen[h] {
					dup = awsCause(causeDuplicateHeaders)
					return false
				}
				seen[h] = true
			}
		}
		if len(items) == limit {
			return false
		}
		// "If the number of fields in a row is less than the number of
		// fields in the header, Step Functions provides empty strings for
		// the missing values. If the number of fields in a row is more
		// than the number of fields in the header, Step Functions skips
		// the additional fields." (ItemReader (Map), developer guide).
		item := make(map[string]any, len(headers))
		for i, h := range headers {
			if i < len(fields) {
				item[h] = fields[i]
			} else {
				item[h] = ""
			}
		}
		items = append(items, item)
		return true
	})
	if dup != nil {
		return nil, dup
	}
	if err != nil {
		return nil, err
	}
	return items, nil
}

// parseCSV splits a text delimited file into records, calling fn with each
// until it returns false, following the rules of the developer guide
// (ItemReader (Map), "CSV file in an Amazon S3 bucket"): newlines separate
// records (CRLF too); fields are strings; double quotes enclose fields that
// may hold the delimiter and newlines, and a doubled quote inside them is
// one quote; a backslash escapes the character after it (a backslash, a
// quote, the delimiter) and is dropped before any other character. Empty
// lines are skipped.
func parseCSV(data []byte, delim byte, fn func(fields []string) bool) error {
	var (
		fields   []string
		cur      []byte
		inQuotes bool
		hasData  bool // the record has a character other than its newline
		line     = 1
	)
	endRecord := func() bool {
		fields = append(fields, string(cur))
		cur = cur[:0]
		rec := fields
		fields, hasData = nil, false
		return fn(rec)
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\\' && i+1 < len(data):
			i++
			cur = append(cur, data[i])
			hasData = true
		case c == '"' && inQuotes && i+1 < len(data) && data[i+1] == '"':
			i++
			cur = append(cur, '"')
		case c == '"':
			inQuotes = !inQuotes
			hasData = true
		case inQuotes:
			if c == '\n' {
				line++
			}
			cur = append(cur, c)
		case c == delim:
			fields = append(fields, string(cur))
			cur = cur[:0]
			hasData = true
		case c == '\r' && i+1 < len(data) && data[i+1] == '\n':
			// the \n ends the record
		case c == '\n':
			line++
			if hasData && !endRecord() {
				return nil
			}
		default:
			cur = append(cur, c)
			hasData = true
		}
	}
	if inQuotes {
		return fmt.Errorf("the CSV object ends inside a quoted field (opened before line %d)", line)
	}
	if hasData {
		endRecord()
	}
	return nil
}
