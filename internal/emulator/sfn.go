package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trailfill/trailfill/statemachine/local"
)

// Step Functions limits the emulation enforces.
const (
	sfnMaxNameLength     = 80
	sfnDefaultMaxResults = 100
	sfnMaxMaxResults     = 1000
)

// StateMachineOptions bind a registered state machine to the code its Task
// states call.
type StateMachineOptions struct {
	// Invoker runs the Task states (see local.Invoker); required when the
	// definition has Task states.
	Invoker local.Invoker
	// Clock drives timestamps and the Retry and Wait delays; nil means the
	// system clock. A local.FakeClock makes retries instant.
	Clock local.Clock
	// MaxConcurrency caps the Distributed Map children run at once
	// in-process (0: local.DefaultMaxConcurrency).
	MaxConcurrency int
	// S3 serves the Distributed Map ItemReader and ResultWriter and the
	// aws-sdk:s3:getObject Task; nil means the emulator's own S3
	// ([Server.LocalS3]), as the buckets of a state machine's own account
	// are on AWS.
	S3 local.S3
}

// StepFunctions emulates the AWS Step Functions API (service "states",
// awsJson1_0, X-Amz-Target AWSStepFunctions.<Operation>) for state machines
// registered with [StepFunctions.AddStateMachine]. Executions run in
// goroutines on statemachine/local, whose Observer records every history
// event and Map Run count, so the API answers as Step Functions would while
// an execution runs and after it ended.
//
// Operations: StartExecution (idempotent for the same name and input while the
// execution runs; ExecutionAlreadyExists otherwise; InvalidName,
// InvalidExecutionInput, StateMachineDoesNotExist, InvalidArn),
// DescribeExecution (parents and Distributed Map children), GetExecutionHistory
// (paged, reverseOrder, includeExecutionData), ListMapRuns and DescribeMapRun.
// DescribeMapRun reports itemCounts and executionCounts (equal: one item per
// child, no ItemBatcher) with resultsWritten once a ResultWriter exported
// the results; maxConcurrency and the tolerated failures are reported as 0,
// as the executor does not expose them to observers (the executor's own
// aws-sdk:sfn:describeMapRun Task reports them).
//
// Create it with [NewStepFunctions]; Close aborts the running executions and
// waits for them.
type StepFunctions struct {
	srv    *Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	machines map[string]*sfnMachine   // by ARN
	execs    map[string]*sfnExecution // by ARN, children included
	mapRuns  map[string]*sfnMapRun    // by ARN
	calls    map[string]int           // requests by operation
	closed   bool
}

type sfnMachine struct {
	arn     string
	machine *local.Machine
	opts    StateMachineOptions
	execs   []*sfnExecution // top-level executions, in start order
}

type sfnExecution struct {
	arn, name, machineArn string
	parentArn, mapRunArn  string
	input                 string
	status                string
	output                string
	hasOutput             bool
	errName, cause        string
	startDate, stopDate   time.Time
	events                []local.HistoryEvent
	mapRuns               []string      // ARNs, in start order
	done                  chan struct{} // top-level executions: closed when run returned
}

type sfnMapRun struct {
	arn, execArn, machineArn string
	status                   string
	counts                   local.MapRunCounts
	startDate, stopDate      time.Time
}

// NewStepFunctions creates the Step Functions emulation and serves it on srv
// under the service name "states".
func NewStepFunctions(srv *Server) *StepFunctions {
	ctx, cancel := context.WithCancel(context.Background())
	sf := &StepFunctions{
		srv:      srv,
		ctx:      ctx,
		cancel:   cancel,
		machines: map[string]*sfnMachine{},
		execs:    map[string]*sfnExecution{},
		mapRuns:  map[string]*sfnMapRun{},
		calls:    map[string]int{},
	}
	srv.Handle("states", sf)
	return sf
}

// Close aborts the executions still running and waits until they ended.
func (sf *StepFunctions) Close() {
	sf.mu.Lock()
	sf.closed = true
	sf.mu.Unlock()
	sf.cancel()
	sf.wg.Wait()
}

// AddStateMachine registers a state machine under its ARN
// (arn:aws:states:<region>:<account>:stateMachine:<name>) with its
// definition (JSONata ASL, loaded by statemachine/local).
func (sf *StepFunctions) AddStateMachine(arn, definition string, opts StateMachineOptions) error {
	if _, ok := parseStateMachineArn(arn); !ok {
		return fmt.Errorf("emulator: malformed state machine ARN %q", arn)
	}
	m, err := local.Load([]byte(definition))
	if err != nil {
		return fmt.Errorf("emulator: load state machine %s: %w", arn, err)
	}
	if opts.S3 == nil {
		opts.S3 = sf.srv.LocalS3()
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	sf.machines[arn] = &sfnMachine{arn: arn, machine: m, opts: opts}
	return nil
}

// Calls returns how many requests of an operation (such as "StartExecution")
// the emulation received, refused ones included.
func (sf *StepFunctions) Calls(operation string) int {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return sf.calls[operation]
}

// Executions returns the ARNs of the top-level executions of a state machine,
// in the order they were started.
func (sf *StepFunctions) Executions(stateMachineArn string) []string {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	m, ok := sf.machines[stateMachineArn]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(m.execs))
	for _, e := range m.execs {
		out = append(out, e.arn)
	}
	return out
}

// Wait blocks until the top-level execution has ended (or ctx ends) and
// returns its status. Tests use it instead of polling.
func (sf *StepFunctions) Wait(ctx context.Context, executionArn string) (string, error) {
	sf.mu.Lock()
	ex, ok := sf.execs[executionArn]
	sf.mu.Unlock()
	if !ok || ex.done == nil {
		return "", fmt.Errorf("emulator: no top-level execution %s", executionArn)
	}
	select {
	case <-ex.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return ex.status, nil
}

// smArn is a parsed state machine ARN.
type smArn struct{ partition, region, account, name string }

func parseStateMachineArn(arn string) (smArn, bool) {
	p := strings.Split(arn, ":")
	if len(p) != 7 || p[0] != "arn" || p[1] == "" || p[2] != "states" || p[3] == "" || len(p[4]) != 12 || p[5] != "stateMachine" || p[6] == "" {
		return smArn{}, false
	}
	return smArn{partition: p[1], region: p[3], account: p[4], name: p[6]}, true
}

// validExecutionName applies the Step Functions naming rules: 1-80
// characters, no whitespace, brackets, wildcards, the characters
// " # % \ ^ | ~ ` $ & , ; : / and no control characters.
func validExecutionName(n string) bool {
	if n == "" || utf8.RuneCountInString(n) > sfnMaxNameLength || !utf8.ValidString(n) {
		return false
	}
	for _, r := range n {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r) {
			return false
		}
	}
	return true
}

// sfnError is an awsJson1_0 error answer.
type sfnError struct {
	status        int
	code, message string
}

func (e *sfnError) Error() string { return e.code + ": " + e.message }

func sfnErr(status int, code, format string, a ...any) *sfnError {
	return &sfnError{status: status, code: code, message: fmt.Sprintf(format, a...)}
}

func writeSFNError(w http.ResponseWriter, e *sfnError) {
	body, err := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.code, e.message})
	if err != nil {
		body = []byte(`{"__type":"InternalFailure"}`)
	}
	w.Header().Set("X-Amzn-ErrorType", e.code)
	writeRaw(w, e.status, "application/x-amz-json-1.0", body)
}

// ServeHTTP answers the states service.
func (sf *StepFunctions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", sf.srv.requestID())
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AWSStepFunctions.")
	if ok {
		sf.mu.Lock()
		sf.calls[op]++
		sf.mu.Unlock()
	}
	switch callerOf(r).state {
	case credUnknown:
		writeSFNError(w, sfnErr(http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."))
		return
	case credExpired:
		writeSFNError(w, sfnErr(http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired"))
		return
	}
	if r.Method != http.MethodPost || !ok {
		writeSFNError(w, sfnErr(http.StatusBadRequest, "UnknownOperationException", "the emulator does not implement %s %q", r.Method, r.Header.Get("X-Amz-Target")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		writeSFNError(w, sfnErr(http.StatusBadRequest, "ValidationException", "cannot read the request body"))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var (
		resp any
		serr *sfnError
	)
	switch op {
	case "StartExecution":
		resp, serr = sf.startExecution(body)
	case "DescribeExecution":
		resp, serr = sf.describeExecution(body)
	case "GetExecutionHistory":
		resp, serr = sf.getExecutionHistory(body)
	case "ListMapRuns":
		resp, serr = sf.listMapRuns(body)
	case "DescribeMapRun":
		resp, serr = sf.describeMapRun(body)
	default:
		serr = sfnErr(http.StatusBadRequest, "UnknownOperationException", "the emulator does not implement AWSStepFunctions.%s", op)
	}
	if serr != nil {
		writeSFNError(w, serr)
		return
	}
	writeJSON(w, "application/x-amz-json-1.0", resp)
}

func decodeRequest(body []byte, v any) *sfnError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return sfnErr(http.StatusBadRequest, "SerializationException", "cannot decode the request: %v", err)
	}
	return nil
}

// epoch is a timestamp as awsJson encodes it: seconds since the epoch.
func epoch(t time.Time) json.Number {
	return json.Number(fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000))
}

func epochPtr(t time.Time) *json.Number {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

func (sf *StepFunctions) startExecution(body []byte) (any, *sfnError) {
	var req struct {
		StateMachineArn *string `json:"stateMachineArn"`
		Name            *string `json:"name"`
		Input           *string `json:"input"`
	}
	if serr := decodeRequest(body, &req); serr != nil {
		return nil, serr
	}
	if req.StateMachineArn == nil {
		return nil, sfnErr(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'stateMachineArn' failed to satisfy constraint: Member must not be null")
	}
	arn := *req.StateMachineArn
	sm, ok := parseStateMachineArn(arn)
	if !ok {
		return nil, sfnErr(http.StatusBadRequest, "InvalidArn", "Invalid Arn: 'Resource type not valid in this context: %s'", arn)
	}
	name := ""
	if req.Name != nil {
		name = *req.Name
		if !validExecutionName(name) {
			return nil, sfnErr(http.StatusBadRequest, "InvalidName", "Invalid Name: '%s'", name)
		}
	} else {
		name = newSFNUUID()
	}
	input := "{}"
	if req.Input != nil {
		input = *req.Input
	}
	if len(input) > local.MaxPayloadBytes {
		return nil, sfnErr(http.StatusBadRequest, "InvalidExecutionInput", "Invalid Input: the input has %d bytes, more than the %d bytes allowed", len(input), local.MaxPayloadBytes)
	}
	if !json.Valid([]byte(input)) {
		return nil, sfnErr(http.StatusBadRequest, "InvalidExecutionInput", "Invalid State Machine Execution Input: 'Unexpected character or malformed JSON'")
	}
	execArn := fmt.Sprintf("arn:%s:states:%s:%s:execution:%s:%s", sm.partition, sm.region, sm.account, sm.name, name)

	sf.mu.Lock()
	defer sf.mu.Unlock()
	m, ok := sf.machines[arn]
	if !ok {
		return nil, sfnErr(http.StatusBadRequest, "StateMachineDoesNotExist", "State Machine Does Not Exist: '%s'", arn)
	}
	if sf.closed {
		return nil, sfnErr(http.StatusServiceUnavailable, "ServiceUnavailable", "the emulator is shutting down")
	}
	if old, ok := sf.execs[execArn]; ok {
		// StartExecution is idempotent for Standard workflows: the same name
		// and input while the execution runs answer as the first call did.
		if old.status == local.StatusSucceeded || old.status == local.StatusFailed || old.status == local.StatusTimedOut || old.status == local.StatusAborted || old.input != input {
			return nil, sfnErr(http.StatusBadRequest, "ExecutionAlreadyExists", "Execution Already Exists: '%s'", execArn)
		}
		return startResponse(old), nil
	}
	clock := m.opts.Clock
	if clock == nil {
		clock = local.SystemClock{}
	}
	ex := &sfnExecution{arn: execArn, name: name, machineArn: arn, input: input, status: "RUNNING", startDate: clock.Now(), done: make(chan struct{})}
	sf.execs[execArn] = ex
	m.execs = append(m.execs, ex)
	sf.wg.Add(1)
	go sf.run(m, ex, clock)
	return startResponse(ex), nil
}

func startResponse(ex *sfnExecution) any {
	return struct {
		ExecutionArn string      `json:"executionArn"`
		StartDate    json.Number `json:"startDate"`
	}{ex.arn, epoch(ex.startDate)}
}

// run executes a top-level execution and records its outcome.
func (sf *StepFunctions) run(m *sfnMachine, ex *sfnExecution, clock local.Clock) {
	defer sf.wg.Done()
	defer close(ex.done)
	res, err := m.machine.Execute(sf.ctx, json.RawMessage(ex.input), local.Options{
		Invoker:         m.opts.Invoker,
		Clock:           clock,
		Observer:        sfnObserver{sf},
		MaxConcurrency:  m.opts.MaxConcurrency,
		ExecutionName:   ex.name,
		StateMachineArn: m.arn,
		S3:              m.opts.S3,
	})
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if err != nil {
		ex.status, ex.errName, ex.cause = local.StatusFailed, "States.Runtime", err.Error()
		ex.stopDate = clock.Now()
		return
	}
	ex.status, ex.errName, ex.cause = res.Status, res.Error, res.Cause
	if res.Status == local.StatusSucceeded {
		ex.output, ex.hasOutput = string(res.Output), true
	}
	ex.stopDate = res.StopTime
}

// sfnObserver records history events and Map Run counts.
type sfnObserver struct{ sf *StepFunctions }

// Event implements local.Observer.
func (o sfnObserver) Event(ref local.ExecutionRef, ev local.HistoryEvent) {
	sf := o.sf
	sf.mu.Lock()
	defer sf.mu.Unlock()
	ex, ok := sf.execs[ref.ID]
	if !ok {
		// A Distributed Map child: it appears with its ExecutionStarted. Its
		// state machine is <parent's>/<Map Run label>, as Step Functions
		// names it (ResultWriter (Map), developer guide: child results
		// carry "StateMachineArn": "...:stateMachine:orderProcessing/getOrders").
		machine := ""
		if mr, ok := sf.mapRuns[ref.MapRunID]; ok {
			machine = mr.machineArn
		} else if parent, ok := sf.execs[ref.ParentID]; ok {
			machine = parent.machineArn
		}
		if i := strings.LastIndex(ref.MapRunID, ":"); machine != "" && i > 0 {
			if j := strings.LastIndex(ref.MapRunID[:i], "/"); j >= 0 {
				machine += "/" + ref.MapRunID[j+1:i]
			}
		}
		ex = &sfnExecution{arn: ref.ID, name: ref.Name, machineArn: machine, parentArn: ref.ParentID, mapRunArn: ref.MapRunID, status: "RUNNING", startDate: ev.Timestamp}
		sf.execs[ref.ID] = ex
	}
	ex.events = append(ex.events, ev)
	var d struct {
		Input     string `json:"input"`
		Output    string `json:"output"`
		Error     string `json:"error"`
		Cause     string `json:"cause"`
		MapRunArn string `json:"mapRunArn"`
	}
	if len(ev.Details) > 0 {
		_ = json.Unmarshal(ev.Details, &d)
	}
	switch ev.Type {
	case "ExecutionStarted":
		if ex.input == "" {
			ex.input = d.Input
		}
	case "ExecutionSucceeded":
		ex.status, ex.output, ex.hasOutput, ex.stopDate = local.StatusSucceeded, d.Output, true, ev.Timestamp
	case "ExecutionFailed":
		ex.status, ex.errName, ex.cause, ex.stopDate = local.StatusFailed, d.Error, d.Cause, ev.Timestamp
	case "ExecutionTimedOut":
		ex.status, ex.errName, ex.cause, ex.stopDate = local.StatusTimedOut, d.Error, d.Cause, ev.Timestamp
	case "ExecutionAborted":
		ex.status, ex.errName, ex.cause, ex.stopDate = local.StatusAborted, d.Error, d.Cause, ev.Timestamp
	case "MapRunStarted":
		mr := sf.mapRunLocked(ex, d.MapRunArn, ev.Timestamp)
		mr.status = "RUNNING"
	case "MapRunSucceeded", "MapRunFailed", "MapRunAborted":
		mr := sf.mapRunLocked(ex, d.MapRunArn, ev.Timestamp)
		mr.status = strings.ToUpper(strings.TrimPrefix(ev.Type, "MapRun"))
		mr.stopDate = ev.Timestamp
	}
}

// MapRun implements local.MapRunObserver.
func (o sfnObserver) MapRun(parent local.ExecutionRef, mapRunID string, counts local.MapRunCounts) {
	sf := o.sf
	sf.mu.Lock()
	defer sf.mu.Unlock()
	ex, ok := sf.execs[parent.ID]
	if !ok {
		return
	}
	mr := sf.mapRunLocked(ex, mapRunID, time.Time{})
	mr.counts = counts
}

// mapRunLocked returns the Map Run, creating it. sf.mu must be held.
func (sf *StepFunctions) mapRunLocked(ex *sfnExecution, arn string, at time.Time) *sfnMapRun {
	mr, ok := sf.mapRuns[arn]
	if !ok {
		mr = &sfnMapRun{arn: arn, execArn: ex.arn, machineArn: ex.machineArn, status: "RUNNING", startDate: at}
		if at.IsZero() {
			mr.startDate = ex.startDate
		}
		sf.mapRuns[arn] = mr
		ex.mapRuns = append(ex.mapRuns, arn)
	}
	return mr
}

// execution finds an execution by ARN. sf.mu must be held.
func (sf *StepFunctions) executionLocked(arn *string) (*sfnExecution, *sfnError) {
	if arn == nil {
		return nil, sfnErr(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'executionArn' failed to satisfy constraint: Member must not be null")
	}
	p := strings.Split(*arn, ":")
	if len(p) != 8 || p[0] != "arn" || p[2] != "states" || p[5] != "execution" || p[6] == "" || p[7] == "" {
		return nil, sfnErr(http.StatusBadRequest, "InvalidArn", "Invalid Arn: 'Resource type not valid in this context: %s'", *arn)
	}
	ex, ok := sf.execs[*arn]
	if !ok {
		return nil, sfnErr(http.StatusBadRequest, "ExecutionDoesNotExist", "Execution Does Not Exist: '%s'", *arn)
	}
	return ex, nil
}

func (sf *StepFunctions) describeExecution(body []byte) (any, *sfnError) {
	var req struct {
		ExecutionArn *string `json:"executionArn"`
	}
	if serr := decodeRequest(body, &req); serr != nil {
		return nil, serr
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	ex, serr := sf.executionLocked(req.ExecutionArn)
	if serr != nil {
		return nil, serr
	}
	type dataDetails struct {
		Included bool `json:"included"`
	}
	resp := struct {
		ExecutionArn    string       `json:"executionArn"`
		StateMachineArn string       `json:"stateMachineArn"`
		Name            string       `json:"name"`
		Status          string       `json:"status"`
		StartDate       json.Number  `json:"startDate"`
		StopDate        *json.Number `json:"stopDate,omitempty"`
		Input           string       `json:"input"`
		InputDetails    dataDetails  `json:"inputDetails"`
		Output          *string      `json:"output,omitempty"`
		OutputDetails   *dataDetails `json:"outputDetails,omitempty"`
		Error           string       `json:"error,omitempty"`
		Cause           string       `json:"cause,omitempty"`
		MapRunArn       string       `json:"mapRunArn,omitempty"`
		RedriveCount    int          `json:"redriveCount"`
		RedriveStatus   string       `json:"redriveStatus"`
	}{
		ExecutionArn:    ex.arn,
		StateMachineArn: ex.machineArn,
		Name:            ex.name,
		Status:          ex.status,
		StartDate:       epoch(ex.startDate),
		StopDate:        epochPtr(ex.stopDate),
		Input:           ex.input,
		InputDetails:    dataDetails{Included: true},
		Error:           ex.errName,
		Cause:           ex.cause,
		MapRunArn:       ex.mapRunArn,
		RedriveStatus:   "NOT_REDRIVABLE",
	}
	if ex.hasOutput {
		out := ex.output
		resp.Output, resp.OutputDetails = &out, &dataDetails{Included: true}
	}
	if ex.status == local.StatusFailed || ex.status == local.StatusTimedOut || ex.status == local.StatusAborted {
		resp.RedriveStatus = "REDRIVABLE"
	}
	return resp, nil
}

// sfnPageToken is the NextToken of the paged operations: an offset bound to the
// request it continues.
type sfnPageToken struct {
	Offset int    `json:"o"`
	Params string `json:"p"`
}

func encodePageToken(offset int, params string) string {
	b, _ := json.Marshal(sfnPageToken{Offset: offset, Params: params})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(tok *string, params string) (int, *sfnError) {
	if tok == nil {
		return 0, nil
	}
	var t sfnPageToken
	b, err := base64.RawURLEncoding.DecodeString(*tok)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Offset < 0 || t.Params != params {
		return 0, sfnErr(http.StatusBadRequest, "InvalidToken", "Invalid Token: '%s'", *tok)
	}
	return t.Offset, nil
}

func pageLimit(n *int) (int, *sfnError) {
	if n == nil || *n == 0 {
		return sfnDefaultMaxResults, nil
	}
	if *n < 0 || *n > sfnMaxMaxResults {
		return 0, sfnErr(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to %d", *n, sfnMaxMaxResults)
	}
	return *n, nil
}

// historyDetailsField is the member of HistoryEvent holding an event type's
// details, for example stateEnteredEventDetails for PassStateEntered.
func historyDetailsField(typ string) string {
	switch {
	case strings.HasSuffix(typ, "StateEntered"):
		return "stateEnteredEventDetails"
	case strings.HasSuffix(typ, "StateExited"):
		return "stateExitedEventDetails"
	}
	return strings.ToLower(typ[:1]) + typ[1:] + "EventDetails"
}

func (sf *StepFunctions) getExecutionHistory(body []byte) (any, *sfnError) {
	var req struct {
		ExecutionArn         *string `json:"executionArn"`
		MaxResults           *int    `json:"maxResults"`
		NextToken            *string `json:"nextToken"`
		ReverseOrder         bool    `json:"reverseOrder"`
		IncludeExecutionData *bool   `json:"includeExecutionData"`
	}
	if serr := decodeRequest(body, &req); serr != nil {
		return nil, serr
	}
	limit, serr := pageLimit(req.MaxResults)
	if serr != nil {
		return nil, serr
	}
	sf.mu.Lock()
	ex, serr := sf.executionLocked(req.ExecutionArn)
	var events []local.HistoryEvent
	if serr == nil {
		events = slices.Clone(ex.events)
	}
	sf.mu.Unlock()
	if serr != nil {
		return nil, serr
	}
	includeData := req.IncludeExecutionData == nil || *req.IncludeExecutionData
	params := fmt.Sprintf("%s|%t|%t", *req.ExecutionArn, req.ReverseOrder, includeData)
	offset, serr := decodePageToken(req.NextToken, params)
	if serr != nil {
		return nil, serr
	}
	if req.ReverseOrder {
		slices.Reverse(events)
	}
	offset = min(offset, len(events))
	end := min(offset+limit, len(events))
	out := make([]map[string]any, 0, end-offset)
	for _, ev := range events[offset:end] {
		e := map[string]any{
			"id":              ev.ID,
			"previousEventId": ev.PreviousEventID,
			"timestamp":       epoch(ev.Timestamp),
			"type":            ev.Type,
		}
		if len(ev.Details) > 0 {
			var d map[string]any
			if err := json.Unmarshal(ev.Details, &d); err == nil {
				if !includeData {
					delete(d, "input")
					delete(d, "output")
				}
				e[historyDetailsField(ev.Type)] = d
			}
		}
		out = append(out, e)
	}
	resp := struct {
		Events    []map[string]any `json:"events"`
		NextToken string           `json:"nextToken,omitempty"`
	}{Events: out}
	if end < len(events) {
		resp.NextToken = encodePageToken(end, params)
	}
	return resp, nil
}

func (sf *StepFunctions) listMapRuns(body []byte) (any, *sfnError) {
	var req struct {
		ExecutionArn *string `json:"executionArn"`
		MaxResults   *int    `json:"maxResults"`
		NextToken    *string `json:"nextToken"`
	}
	if serr := decodeRequest(body, &req); serr != nil {
		return nil, serr
	}
	limit, serr := pageLimit(req.MaxResults)
	if serr != nil {
		return nil, serr
	}
	type item struct {
		ExecutionArn    string       `json:"executionArn"`
		MapRunArn       string       `json:"mapRunArn"`
		StateMachineArn string       `json:"stateMachineArn"`
		StartDate       json.Number  `json:"startDate"`
		StopDate        *json.Number `json:"stopDate,omitempty"`
	}
	sf.mu.Lock()
	ex, serr := sf.executionLocked(req.ExecutionArn)
	var all []item
	if serr == nil {
		for _, a := range ex.mapRuns {
			mr := sf.mapRuns[a]
			all = append(all, item{ExecutionArn: mr.execArn, MapRunArn: mr.arn, StateMachineArn: mr.machineArn, StartDate: epoch(mr.startDate), StopDate: epochPtr(mr.stopDate)})
		}
	}
	sf.mu.Unlock()
	if serr != nil {
		return nil, serr
	}
	offset, serr := decodePageToken(req.NextToken, *req.ExecutionArn)
	if serr != nil {
		return nil, serr
	}
	offset = min(offset, len(all))
	end := min(offset+limit, len(all))
	resp := struct {
		MapRuns   []item `json:"mapRuns"`
		NextToken string `json:"nextToken,omitempty"`
	}{MapRuns: append([]item{}, all[offset:end]...)}
	if end < len(all) {
		resp.NextToken = encodePageToken(end, *req.ExecutionArn)
	}
	return resp, nil
}

func (sf *StepFunctions) describeMapRun(body []byte) (any, *sfnError) {
	var req struct {
		MapRunArn *string `json:"mapRunArn"`
	}
	if serr := decodeRequest(body, &req); serr != nil {
		return nil, serr
	}
	if req.MapRunArn == nil {
		return nil, sfnErr(http.StatusBadRequest, "ValidationException", "1 validation error detected: Value null at 'mapRunArn' failed to satisfy constraint: Member must not be null")
	}
	if p := strings.Split(*req.MapRunArn, ":"); len(p) != 8 || p[0] != "arn" || p[2] != "states" || p[5] != "mapRun" {
		return nil, sfnErr(http.StatusBadRequest, "InvalidArn", "Invalid Arn: 'Resource type not valid in this context: %s'", *req.MapRunArn)
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	mr, ok := sf.mapRuns[*req.MapRunArn]
	if !ok {
		return nil, sfnErr(http.StatusBadRequest, "ResourceNotFound", "Resource not found: '%s'", *req.MapRunArn)
	}
	type counts struct {
		Pending               int `json:"pending"`
		Running               int `json:"running"`
		Succeeded             int `json:"succeeded"`
		Failed                int `json:"failed"`
		TimedOut              int `json:"timedOut"`
		Aborted               int `json:"aborted"`
		Total                 int `json:"total"`
		ResultsWritten        int `json:"resultsWritten"`
		FailuresNotRedrivable int `json:"failuresNotRedrivable"`
		PendingRedrive        int `json:"pendingRedrive"`
	}
	c := counts{Pending: mr.counts.Pending, Running: mr.counts.Running, Succeeded: mr.counts.Succeeded,
		Failed: mr.counts.Failed, Aborted: mr.counts.Aborted, Total: mr.counts.Total, ResultsWritten: mr.counts.ResultsWritten}
	return struct {
		MapRunArn                  string       `json:"mapRunArn"`
		ExecutionArn               string       `json:"executionArn"`
		Status                     string       `json:"status"`
		StartDate                  json.Number  `json:"startDate"`
		StopDate                   *json.Number `json:"stopDate,omitempty"`
		MaxConcurrency             int          `json:"maxConcurrency"`
		ToleratedFailurePercentage float64      `json:"toleratedFailurePercentage"`
		ToleratedFailureCount      int          `json:"toleratedFailureCount"`
		ItemCounts                 counts       `json:"itemCounts"`
		ExecutionCounts            counts       `json:"executionCounts"`
		RedriveCount               int          `json:"redriveCount"`
	}{
		MapRunArn: mr.arn, ExecutionArn: mr.execArn, Status: mr.status,
		StartDate: epoch(mr.startDate), StopDate: epochPtr(mr.stopDate),
		ItemCounts: c, ExecutionCounts: c,
	}, nil
}

// newSFNUUID returns a random version 4 UUID, the default execution name.
func newSFNUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
