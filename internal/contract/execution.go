package contract

import (
	"encoding/json"
	"fmt"
	"time"
)

// Partition is one (account, region) of a backfill.
type Partition struct {
	Account string `json:"account"`
	Region  string `json:"region"`
}

func (p Partition) String() string { return p.Account + "/" + p.Region }

// ExecutionInput is the input of the backfill state machine, written by
// `trailfill start` (Step Functions) and `trailfill run` (the local executor).
type ExecutionInput struct {
	Partitions     []Partition `json:"partitions"`
	Start          string      `json:"start"` // RFC 3339
	End            string      `json:"end"`   // RFC 3339, exclusive
	WindowMinutes  int         `json:"window_minutes"`
	RoleName       string      `json:"role_name"`
	Destination    string      `json:"destination,omitempty"`
	MaxConcurrency int         `json:"max_concurrency"`
	// Exactly-once options, passed to every invocation (see Invocation).
	IgnoreNative           bool `json:"ignore_native,omitempty"`
	NativeLookaheadMinutes int  `json:"native_lookahead_minutes,omitempty"`
	SettleMinutes          int  `json:"settle_minutes,omitempty"`
	// Selection names the management events to archive (the trail's event
	// selectors, `--trail`): the canonical selection text of package trail,
	// "" for every management event.
	Selection string `json:"selection,omitempty"`
	// OrgID is the organization-trail layout the execution expects ("":
	// whatever the function writes); a function of another layout refuses it.
	OrgID string `json:"org_id,omitempty"`
}

// Invocation is the payload of one backfill Lambda invocation and its answer:
// the partition, the range and the cursor. The state machine builds the first
// one per partition (the Map's ItemSelector) and passes each answer back in
// until Done.
type Invocation struct {
	Account       string    `json:"account"`
	Region        string    `json:"region"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	WindowMinutes int       `json:"window_minutes"`
	RoleName      string    `json:"role_name,omitempty"`   // must match the function's, if set
	Destination   string    `json:"destination,omitempty"` // must match the function's archive, if set
	// IgnoreNative: do not read native trail files (--ignore-native).
	IgnoreNative bool `json:"ignore_native,omitempty"`
	// NativeLookaheadMinutes: how far after a slice native files that can
	// hold its events are read (0: the default, a day; negative: only the
	// slice's own day folder).
	NativeLookaheadMinutes int `json:"native_lookahead_minutes,omitempty"`
	// SettleMinutes: windows ending less than this before the invocation are
	// archived provisionally (0: the default, 20; negative: none).
	SettleMinutes int `json:"settle_minutes,omitempty"`
	// Selection: the management events to archive, as in ExecutionInput.
	Selection string `json:"selection,omitempty"`
	// OrgID: the layout the execution expects, as in ExecutionInput.
	OrgID  string `json:"org_id,omitempty"`
	Done   bool   `json:"done"`
	Cursor Cursor `json:"cursor"`
}

// Cursor carries progress between invocations of one partition. Windows with a
// settled manifest are found again from the archive; Read lists the parts of
// unfinished windows that an invocation read completely (and whose events it
// wrote) before it stopped, so the next one reads only the rest. Counters add
// up over the invocations.
type Cursor struct {
	Read           []Span `json:"read,omitempty"`
	Invocations    int    `json:"invocations"`
	Events         int64  `json:"events"`  // events written
	Native         int64  `json:"native"`  // events native trail files already held
	Present        int64  `json:"present"` // events trailfill's own files already held
	Files          int64  `json:"files"`
	Pages          int64  `json:"pages"`
	Windows        int    `json:"windows"`
	WindowsSkipped int    `json:"windows_skipped"`
	WindowsTotal   int    `json:"windows_total"`
	Provisional    int    `json:"provisional,omitempty"` // windows archived provisionally (near the present)
	// Stalled counts consecutive invocations that made no progress.
	Stalled int `json:"stalled,omitempty"`
}

// Span is a half-open interval [From, To) of event time. Provisional: it was
// read less than the settling margin after its end.
type Span struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Provisional bool      `json:"provisional,omitempty"`
}

// PartitionSummary is one partition's line in the state machine's output: what
// the child execution archived, or why it failed.
type PartitionSummary struct {
	Account        string `json:"account"`
	Region         string `json:"region"`
	Failed         bool   `json:"failed"`
	Error          string `json:"error,omitempty"`
	Cause          string `json:"cause,omitempty"`
	Events         int64  `json:"events"`
	Native         int64  `json:"native"`
	Present        int64  `json:"present"`
	Files          int64  `json:"files"`
	Pages          int64  `json:"pages"`
	Windows        int    `json:"windows"`
	WindowsSkipped int    `json:"windows_skipped"`
	WindowsTotal   int    `json:"windows_total"`
	Provisional    int    `json:"provisional"`
	Invocations    int    `json:"invocations"`
}

// ExecutionOutput is the output of a backfill execution that succeeded, and
// the input of its final Choice.
type ExecutionOutput struct {
	Partitions []PartitionSummary `json:"partitions"`
	Events     int64              `json:"events"`
	Failed     int                `json:"failed"`
}

// FailureCause is the Cause of the Fail state (error ErrorPartitionsFailed):
// a JSON document, so that `trailfill watch` decodes it instead of parsing prose.
type FailureCause struct {
	Message    string             `json:"message"`
	Failed     int                `json:"failed"`
	Partitions []PartitionSummary `json:"partitions"` // the failed ones
}

// DecodeFailureCause decodes the Cause of a failed execution.
func DecodeFailureCause(cause string) (*FailureCause, error) {
	var c FailureCause
	if err := json.Unmarshal([]byte(cause), &c); err != nil {
		return nil, fmt.Errorf("decode the execution's failure cause: %w", err)
	}
	return &c, nil
}

// LambdaErrorCause is the Cause Step Functions records for a Lambda function
// error: the function's error payload.
type LambdaErrorCause struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// CauseMessage returns the errorMessage of a Lambda error cause, or the cause as it is.
func CauseMessage(cause string) string {
	var c LambdaErrorCause
	if json.Unmarshal([]byte(cause), &c) == nil && c.ErrorMessage != "" {
		return c.ErrorMessage
	}
	return cause
}
