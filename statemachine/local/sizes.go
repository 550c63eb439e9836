package local

import "sync"

// PayloadSize is the size of one payload, in bytes of compact UTF-8 JSON
// (what the 256 KiB quota, MaxPayloadBytes, measures), and where it was
// seen. Past the quota the size is what was measured before the state
// failed with States.DataLimitExceeded, so at least MaxPayloadBytes+1.
type PayloadSize struct {
	Bytes int
	// State is the state that produced the payload ("" for an execution
	// input).
	State string
	// Execution is the ARN of the execution it belongs to.
	Execution string
}

// Sizes are the largest payloads of an execution, to compare with
// MaxPayloadBytes ("Quotas related to state machine executions": 256 KiB for
// an execution input, a state's input or output, a task's input and
// result).
type Sizes struct {
	// Input is the execution input (a Distributed Map child's input: its
	// item after ItemSelector).
	Input PayloadSize
	// StateOutput is the largest output of a state.
	StateOutput PayloadSize
	// TaskArguments is the largest request a Task sent (its evaluated
	// Arguments, or its input without Arguments).
	TaskArguments PayloadSize
	// TaskResult is the largest result a Task received ($states.result),
	// before Output.
	TaskResult PayloadSize
}

func (s *Sizes) merge(o Sizes) {
	for _, p := range []struct{ dst, src *PayloadSize }{
		{&s.Input, &o.Input}, {&s.StateOutput, &o.StateOutput},
		{&s.TaskArguments, &o.TaskArguments}, {&s.TaskResult, &o.TaskResult},
	} {
		if p.src.Bytes > p.dst.Bytes || (p.dst.Execution == "" && p.src.Execution != "") {
			*p.dst = *p.src
		}
	}
}

// sizeMeter records an execution's largest payloads; inline Map iterations
// record concurrently.
type sizeMeter struct {
	mu    sync.Mutex
	sizes Sizes
}

// Kinds of payload.
const (
	sizeInput = iota
	sizeStateOutput
	sizeTaskArguments
	sizeTaskResult
)

func (m *sizeMeter) note(kind, n int, stateName, exec string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var p *PayloadSize
	switch kind {
	case sizeInput:
		p = &m.sizes.Input
	case sizeStateOutput:
		p = &m.sizes.StateOutput
	case sizeTaskArguments:
		p = &m.sizes.TaskArguments
	default:
		p = &m.sizes.TaskResult
	}
	if n > p.Bytes || p.Execution == "" {
		*p = PayloadSize{Bytes: n, State: stateName, Execution: exec}
	}
}

func (m *sizeMeter) get() Sizes {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sizes
}

// noteSize records a payload size of this execution.
func (ex *execution) noteSize(kind, n int, stateName string) {
	ex.sizes.note(kind, n, stateName, ex.ref.ID)
}
