package local

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps every event and Map Run count.
type recorder struct {
	mu      sync.Mutex
	events  map[string][]HistoryEvent
	refs    map[string]ExecutionRef
	order   []string
	mapRuns map[string][]MapRunCounts
}

func newRecorder() *recorder {
	return &recorder{events: map[string][]HistoryEvent{}, refs: map[string]ExecutionRef{}, mapRuns: map[string][]MapRunCounts{}}
}

func (r *recorder) Event(exec ExecutionRef, ev HistoryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.refs[exec.ID]; !ok {
		r.order = append(r.order, exec.ID)
	}
	r.refs[exec.ID] = exec
	r.events[exec.ID] = append(r.events[exec.ID], ev)
}

func (r *recorder) MapRun(parent ExecutionRef, mapRunID string, counts MapRunCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mapRuns[mapRunID] = append(r.mapRuns[mapRunID], counts)
}

// types lists the event types of one execution, in ID order.
func (r *recorder) types(execID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events[execID] {
		out = append(out, ev.Type)
	}
	return out
}

func (r *recorder) children(parentID string) []ExecutionRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ExecutionRef
	for _, id := range r.order {
		if r.refs[id].ParentID == parentID {
			out = append(out, r.refs[id])
		}
	}
	return out
}

func (r *recorder) details(execID, typ string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, ev := range r.events[execID] {
		if ev.Type == typ {
			var d map[string]any
			_ = json.Unmarshal(ev.Details, &d)
			out = append(out, d)
		}
	}
	return out
}

var epoch = time.Date(2025, 4, 17, 15, 0, 0, 0, time.UTC)

func mustLoad(t *testing.T, def string) *Machine {
	t.Helper()
	m, err := Load([]byte(def))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

// run loads and executes a definition with a fake clock and a recorder.
func run(t *testing.T, def, input string, inv Invoker) (*Result, *recorder, *FakeClock) {
	t.Helper()
	m := mustLoad(t, def)
	rec := newRecorder()
	clock := NewFakeClock(epoch)
	res, err := m.Execute(context.Background(), json.RawMessage(input), Options{
		Invoker: inv, Clock: clock, Observer: rec, ExecutionName: "test",
	})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return res, rec, clock
}

// echo is an Invoker returning its payload.
var echo = InvokerFunc(func(_ context.Context, _, _ string, payload json.RawMessage) (json.RawMessage, error) {
	return payload, nil
})

func jsonEqual(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s is not JSON: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("output = %s, want %s", got, want)
	}
}

func wantStatus(t *testing.T, res *Result, status string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %s (error %q, cause %q), want %s", res.Status, res.Error, res.Cause, status)
	}
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
