package local

import (
	"encoding/json"
	"time"
)

// ExecutionRef identifies an execution. ID is the execution ARN. A child
// execution of a Distributed Map has ParentID (the parent's ARN) and MapRunID
// (the Map Run's ARN) set.
type ExecutionRef struct {
	ID, Name, ParentID string
	MapRunID           string
}

// HistoryEvent is one entry of an execution's history, numbered from 1 in the
// order the events happened. PreviousEventID is the event it follows on its
// own thread (the state before it, or the Map iteration it belongs to), as in
// GetExecutionHistory; 0 for ExecutionStarted. StateName is the state the
// event belongs to, when it belongs to one.
//
// Details is the JSON of the type-specific details structure of the
// GetExecutionHistory API (for example the content of
// stateEnteredEventDetails: {"name":..,"input":..,"inputDetails":{..}}),
// with JSON payloads as strings, as the API returns them. Map Run events add
// non-AWS fields: "total" in MapRunStarted (not with an ItemReader, which
// reads the items after the Map Run started) and "counts" in
// MapRunSucceeded, MapRunFailed and MapRunAborted.
type HistoryEvent struct {
	ID              int64
	PreviousEventID int64
	Type            string
	Timestamp       time.Time
	StateName       string
	Details         json.RawMessage
}

// Observer receives every history event of an execution and of its child
// executions, as it happens. Events of one execution are delivered one at a
// time, in ID order; events of different executions (Distributed Map
// children) can arrive concurrently, so Event must be safe for concurrent
// calls. Event must not call back into the executor and should return
// quickly: the execution waits for it.
type Observer interface {
	Event(exec ExecutionRef, ev HistoryEvent)
}

// MapRunObserver is an optional extension of Observer. If the Observer given
// in Options also implements it, MapRun is called with a snapshot of the
// counts of a Distributed Map's Map Run each time they change (for
// DescribeMapRun and ListMapRuns of an emulated Step Functions API).
type MapRunObserver interface {
	MapRun(parent ExecutionRef, mapRunID string, counts MapRunCounts)
}

// MapRunCounts counts the child executions of a Map Run by status, like the
// itemCounts and executionCounts of DescribeMapRun (one item per child: no
// ItemBatcher). Pending children have not started; after a Map Run fails the
// children it never started stay Pending. ResultsWritten counts the children
// whose results a ResultWriter exported to S3 (set once they are written).
// With an ItemReader, Total is 0 until the items have been read.
type MapRunCounts struct {
	Total, Pending, Running, Succeeded, Failed, Aborted int
	ResultsWritten                                      int
}

// ObserverFunc adapts a function to the Observer interface.
type ObserverFunc func(exec ExecutionRef, ev HistoryEvent)

// Event calls f.
func (f ObserverFunc) Event(exec ExecutionRef, ev HistoryEvent) { f(exec, ev) }
