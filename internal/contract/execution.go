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

// Partitions are every account in every region, by account then region.
func Partitions(accounts, regions []string) []Partition {
	out := make([]Partition, 0, len(accounts)*len(regions))
	for _, a := range accounts {
		for _, r := range regions {
			out = append(out, Partition{Account: a, Region: r})
		}
	}
	return out
}

func (p Partition) String() string { return p.Account + "/" + p.Region }

// ExecutionInput is the input of the backfill state machine, written by
// `trailfill start` (Step Functions) and `trailfill run` (the local executor).
// It stays small at any partition count: the partitions themselves are an
// object in the state machine's staging bucket (PartitionsKey), which the
// Distributed Map reads with its ItemReader.
type ExecutionInput struct {
	// PartitionsKey is the key of the partitions object in the staging
	// bucket: a JSON array of Partition (PartitionsObjectKey).
	PartitionsKey string `json:"partitions_key"`
	// Partitions is how many partitions the object lists (for watch; the
	// state machine reads the object).
	Partitions     int    `json:"partitions"`
	Start          string `json:"start"` // RFC 3339
	End            string `json:"end"`   // RFC 3339, exclusive
	WindowMinutes  int    `json:"window_minutes"`
	RoleName       string `json:"role_name"`
	Destination    string `json:"destination,omitempty"`
	MaxConcurrency int    `json:"max_concurrency"`
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

// Folders of the state machine's staging bucket (stack output
// StagingBucket, in the state machine's own account and region): the
// launcher writes each execution's partitions under StagingInputsFolder and
// the Distributed Map's ResultWriter writes the child results under
// StagingResultsFolder<execution name>/<Map Run ID>/. The state machine's
// role may read only the first and write only the second.
const (
	StagingInputsFolder  = "inputs/"
	StagingResultsFolder = "results/"
	// LocalStagingBucket is the staging bucket's name in `trailfill run`
	// and `trailfill plan` (a folder or memory, not an S3 bucket).
	LocalStagingBucket = "staging"
)

// PartitionsObjectKey is the staging key of an execution's partitions.
func PartitionsObjectKey(executionName string) string {
	return StagingInputsFolder + executionName + "/partitions.json"
}

// ResultsPrefix is the ResultWriter prefix of an execution: the state
// machine builds the same from its execution name.
func ResultsPrefix(executionName string) string {
	return StagingResultsFolder + executionName
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

// PartitionSummary is the output of a partition's child execution that
// archived its range: what it did. With the ResultWriter's COMPACT
// transformation, the SUCCEEDED result files are JSON arrays of these.
type PartitionSummary struct {
	Account        string `json:"account"`
	Region         string `json:"region"`
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

// PartitionFailure is the Cause of a partition's child execution that
// failed for good (its Fail state, error ErrorPartitionFailed): a JSON
// document naming the partition, its range, the Task's error name and the
// function's error message (the errorMessage of a Lambda error, which names
// the window when the engine knows it; otherwise the cause as Step
// Functions gave it), and how far the partition got. The FAILED result
// files hold it as each failed child's Cause.
type PartitionFailure struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Start   string `json:"start"` // the partition's range, RFC 3339
	End     string `json:"end"`
	Error   string `json:"error"`
	Message string `json:"message"`
	// Events, Windows and WindowsTotal are the cursor of the last
	// invocation that succeeded (0 when none did).
	Events       int64 `json:"events"`
	Windows      int   `json:"windows"`
	WindowsTotal int   `json:"windows_total"`
	Invocations  int   `json:"invocations"`
}

// DecodePartitionFailure decodes a failed child execution's Cause.
func DecodePartitionFailure(cause string) (*PartitionFailure, error) {
	var f PartitionFailure
	if err := json.Unmarshal([]byte(cause), &f); err != nil {
		return nil, fmt.Errorf("decode the partition's failure cause: %w", err)
	}
	if f.Account == "" || f.Region == "" {
		return nil, fmt.Errorf("decode the partition's failure cause: it names no account and region")
	}
	return &f, nil
}

// ResultsLocation is where the Distributed Map's ResultWriter wrote the
// child results: the manifest.json that lists the SUCCEEDED, FAILED and
// PENDING result files ("ResultWriter (Map)", Step Functions Developer
// Guide).
type ResultsLocation struct {
	Bucket   string `json:"bucket"`
	Manifest string `json:"manifest"` // key of manifest.json
}

// URL is the manifest's s3:// address.
func (l ResultsLocation) URL() string { return "s3://" + l.Bucket + "/" + l.Manifest }

// ExecutionOutput is the output of a backfill execution that succeeded, and
// the body of the failure cause: the Map Run's counts and the location of
// the child results. It is small at any partition count.
type ExecutionOutput struct {
	Partitions int             `json:"partitions"`
	Succeeded  int             `json:"succeeded"`
	Failed     int             `json:"failed"` // failed, timed out or aborted children
	Results    ResultsLocation `json:"results"`
}

// FailureCause is the Cause of the Fail state (error ErrorPartitionsFailed):
// a JSON document, so that `trailfill watch` decodes it instead of parsing
// prose. The failures themselves are in the FAILED result files.
type FailureCause struct {
	Message string `json:"message"`
	ExecutionOutput
}

// DecodeFailureCause decodes the Cause of a failed execution.
func DecodeFailureCause(cause string) (*FailureCause, error) {
	var c FailureCause
	if err := json.Unmarshal([]byte(cause), &c); err != nil {
		return nil, fmt.Errorf("decode the execution's failure cause: %w", err)
	}
	if c.Results.Bucket == "" || c.Results.Manifest == "" {
		return nil, fmt.Errorf("decode the execution's failure cause: it names no results location")
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
