package local

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

var (
	errIterationFailed = errors.New("another iteration of the Map state failed")
	errMapRunFailed    = errors.New("the Map Run failed")
)

// mapAttempt runs a Map state's iterations once: it evaluates Items (or the
// ItemReader's Arguments) and MaxConcurrency, then runs the items inline or
// as a Distributed Map Run.
func (r *stateRun) mapAttempt() (any, *stateError) {
	st, t := r.st, r.t
	var (
		items  []any
		source *readerSource
	)
	if st.itemReader != nil {
		bucket, key, maxItems, serr := r.readerArguments()
		if serr != nil {
			return nil, serr
		}
		source = &readerSource{bucket: bucket, key: key, maxItems: maxItems}
	} else {
		var itemsValue any = r.input
		var itemsTemplate template = literal{}
		if st.items != nil {
			v, serr := r.eval(st.items, "Items", binding{})
			if serr != nil {
				return nil, serr
			}
			itemsValue, itemsTemplate = v, st.items
		}
		var ok bool
		if items, ok = itemsValue.([]any); !ok {
			return nil, r.typeError(itemsTemplate, "Items", "an array", itemsValue)
		}
	}
	maxConcurrency := 0
	if st.maxConcurrency != nil {
		n, serr := r.evalInt(st.maxConcurrency, "MaxConcurrency", 0, binding{})
		if serr != nil {
			return nil, serr
		}
		maxConcurrency = int(n)
	}
	// With an ItemReader the items are read by the Map Run, after
	// MapStateStarted, which then reports a length of 0 (histories recorded
	// from AWS in LocalStack's validated snapshot tests).
	t.emit("MapStateStarted", st.name, func() any { return map[string]any{"length": len(items)} })
	if st.distributed {
		return r.mapRun(items, source, maxConcurrency)
	}
	return r.inlineMap(items, maxConcurrency)
}

// readerSource is the object an ItemReader reads.
type readerSource struct {
	bucket, key string
	maxItems    int
}

// itemInput is the input of iteration i: the item, or ItemSelector evaluated
// with $states.context.Map.Item.
func (r *stateRun) itemInput(i int, item any) (any, *stateError) {
	if r.st.itemSelector == nil {
		return item, nil
	}
	return r.eval(r.st.itemSelector, "ItemSelector", binding{hasMapItem: true, mapIndex: i, mapValue: item})
}

// inlineMap runs the iterations inside this execution, at most 40 (or
// MaxConcurrency) at once. Their events go to this execution's history. The
// first failing iteration fails the Map with its error; the iterations still
// running are aborted and no new one starts.
func (r *stateRun) inlineMap(items []any, maxConcurrency int) (any, *stateError) {
	st, t := r.st, r.t
	limit := inlineMapConcurrency
	if maxConcurrency > 0 && maxConcurrency < limit {
		limit = maxConcurrency
	}
	ctx, cancel := context.WithCancelCause(t.ctx)
	defer cancel(nil)

	results := make([]any, len(items))
	var (
		mu      sync.Mutex
		failure *stateError
		lastID  = t.last
		wg      sync.WaitGroup
	)
	startedID := t.last
	sem := semaphore.NewWeighted(int64(limit))
	for i, item := range items {
		if sem.Acquire(ctx, 1) != nil {
			break // the Map is failing or aborted: start no new iteration
		}
		if ctx.Err() != nil {
			sem.Release(1)
			break
		}
		wg.Add(1)
		go func(i int, item any) {
			defer wg.Done()
			defer sem.Release(1)
			it := &thread{ex: t.ex, ctx: ctx, last: startedID}
			iteration := func() any { return map[string]any{"name": st.name, "index": i} }
			it.emit("MapIterationStarted", st.name, iteration)
			ir := *r
			ir.t = it
			in, serr := ir.itemInput(i, item)
			var out any
			if serr == nil {
				out, serr = it.runStates(st.processor, in, newScope(r.sc))
			}
			switch {
			case serr == nil:
				results[i] = out
				it.emit("MapIterationSucceeded", st.name, iteration)
			case serr.aborted || serr.timedOut:
				it.emit("MapIterationAborted", st.name, iteration)
			default:
				it.emit("MapIterationFailed", st.name, iteration)
				mu.Lock()
				if failure == nil {
					failure = serr
				}
				mu.Unlock()
				cancel(errIterationFailed)
			}
			mu.Lock()
			lastID = max(lastID, it.last)
			mu.Unlock()
		}(i, item)
	}
	wg.Wait()
	t.last = lastID
	if failure != nil {
		return nil, failure
	}
	if t.ctx.Err() != nil {
		return nil, abortError(t.ctx)
	}
	t.emit("MapStateSucceeded", st.name, nil)
	return results, nil
}

// mapRun runs a Distributed Map: each item is a child execution of its own,
// with its own history, that sees only its input (no variables of this
// execution). At most min(MaxConcurrency or 10,000, Options.MaxConcurrency)
// children run at once. With an ItemReader (source) the items are read
// once the Map Run started; a read failure fails the Map Run with
// States.ItemReaderFailed.
//
// The Map Run fails with States.ExceedToleratedFailureThreshold as soon as
// more children failed than ToleratedFailureCount or
// ToleratedFailurePercentage allow (with neither set, at the first failure);
// the children still running are then aborted and no new one starts, as
// Step Functions does. The cause names the first failed child, its error and
// its cause. When failures are tolerated the output array holds, at a failed
// child's index, the child's description with its Error and Cause (see
// childRecord.entry).
//
// A ResultWriter writes the children's results when the Map Run ends,
// whether it succeeded or failed (not when it was aborted); with S3 the
// Map's result is then the results' location.
func (r *stateRun) mapRun(items []any, source *readerSource, maxConcurrency int) (any, *stateError) {
	st, t := r.st, r.t
	ex, s := t.ex, t.ex.s
	var (
		pct, count      float64
		pctSet, countOK bool
	)
	if st.toleratedPct != nil {
		f, serr := r.evalNumber(st.toleratedPct, "ToleratedFailurePercentage", 0, 100, binding{})
		if serr != nil {
			return nil, serr
		}
		pct, pctSet = f, true
	}
	if st.toleratedCount != nil {
		n, serr := r.evalInt(st.toleratedCount, "ToleratedFailureCount", 0, binding{})
		if serr != nil {
			return nil, serr
		}
		count, countOK = float64(n), true
	}
	var writerBucket, writerPrefix string
	if rw := st.resultWriter; rw != nil && rw.resource != "" {
		v, serr := r.eval(rw.arguments, "ResultWriter/Arguments", binding{})
		if serr != nil {
			return nil, serr
		}
		if writerBucket, writerPrefix, serr = r.bucketAndKey(rw.arguments, "ResultWriter/Arguments", v, "Prefix"); serr != nil {
			return nil, serr
		}
	}

	label := st.label
	if label == "" {
		label = st.name
		if !validLabel(label) {
			label = "map"
		}
	}
	mapRunArn := fmt.Sprintf("arn:%s:states:%s:%s:mapRun:%s/%s:%s", s.partition, s.region, s.account, s.machineName, label, newUUID())
	limit := distributedMapConcurrency
	if maxConcurrency > 0 {
		limit = maxConcurrency
	}
	limit = min(limit, s.maxConcurrency)
	record := &mapRunRecord{arn: mapRunArn, execArn: ex.ref.ID, status: "RUNNING", start: s.clock.Now(),
		maxConcurrency: maxConcurrency, toleratedPct: pct, toleratedCount: int(count)}
	s.mapRuns.add(record)

	var (
		mu       sync.Mutex
		counts   = MapRunCounts{Total: len(items), Pending: len(items)}
		failed   int
		first    string // the first failed child, described
		failure  *stateError
		fatal    *stateError
		wg       sync.WaitGroup
		snapshot = func() MapRunCounts { return counts }
	)
	notify := func() {
		c := snapshot()
		record.update(func(m *mapRunRecord) { m.counts = c })
		if s.mapRunObserver != nil {
			s.mapRunObserver.MapRun(ex.ref, mapRunArn, c)
		}
	}
	countsDetails := func() any {
		c := snapshot()
		return map[string]any{"total": c.Total, "pending": c.Pending, "running": c.Running,
			"succeeded": c.Succeeded, "failed": c.Failed, "aborted": c.Aborted}
	}
	ended := func(status string) {
		record.update(func(m *mapRunRecord) { m.status, m.stop = status, s.clock.Now() })
	}
	mapRunFailed := func(serr *stateError) (any, *stateError) {
		ended("FAILED")
		t.emit("MapRunFailed", st.name, func() any {
			mu.Lock()
			defer mu.Unlock()
			return map[string]any{"mapRunArn": mapRunArn, "error": serr.Name, "cause": serr.Cause, "counts": countsDetails()}
		})
		return nil, serr
	}
	t.emit("MapRunStarted", st.name, func() any {
		d := map[string]any{"mapRunArn": mapRunArn}
		if source == nil {
			d["total"] = len(items)
		}
		return d
	})
	mu.Lock()
	notify()
	mu.Unlock()
	if source != nil {
		var serr *stateError
		if items, serr = r.readItems(source.bucket, source.key, source.maxItems); serr != nil {
			if serr.aborted || serr.timedOut {
				ended("ABORTED")
				t.emit("MapRunAborted", st.name, func() any {
					return map[string]any{"mapRunArn": mapRunArn, "counts": countsDetails()}
				})
				return nil, serr
			}
			return mapRunFailed(serr)
		}
		mu.Lock()
		counts.Total, counts.Pending = len(items), len(items)
		notify()
		mu.Unlock()
	}
	total := len(items)
	exceeded := func(failed int) bool {
		switch {
		case !pctSet && !countOK:
			return failed > 0
		case countOK && float64(failed) > count:
			return true
		case pctSet && float64(failed)*100/float64(total) > pct:
			return true
		}
		return false
	}
	// A child that never starts keeps its item as its input (ItemSelector
	// is evaluated only for the items the Map Run starts).
	records := make([]childRecord, total)
	for i, item := range items {
		records[i].input = item
	}

	ctx, cancel := context.WithCancelCause(t.ctx)
	defer cancel(nil)
	sem := semaphore.NewWeighted(int64(limit))
	for i, item := range items {
		if sem.Acquire(ctx, 1) != nil {
			break // the Map Run is failing or aborted: start no new child
		}
		if ctx.Err() != nil {
			sem.Release(1)
			break
		}
		// ItemSelector belongs to the Map state: it is evaluated here, in
		// this execution, with its variables. A child's input is held to
		// the execution input quota: "The execution input used to start a
		// child workflow execution can't exceed 256 KiB" (ItemReader (Map),
		// developer guide).
		in, serr := r.itemInput(i, item)
		var inSize int
		if serr == nil {
			inSize, serr = sizeWithin(in, fmt.Sprintf("The input of the child execution for item %d of state '%s'", i, st.name))
		}
		if serr == nil {
			mu.Lock()
			records[i].input = in
			mu.Unlock()
		}
		if serr != nil {
			sem.Release(1)
			mu.Lock()
			fatal = serr
			mu.Unlock()
			cancel(errMapRunFailed)
			break
		}
		wg.Add(1)
		go func(i int, in any) {
			defer wg.Done()
			defer sem.Release(1)
			name := newUUID()
			ref := ExecutionRef{
				ID:       fmt.Sprintf("arn:%s:states:%s:%s:execution:%s/%s:%s", s.partition, s.region, s.account, s.machineName, label, name),
				Name:     name,
				ParentID: ex.ref.ID,
				MapRunID: mapRunArn,
			}
			mu.Lock()
			counts.Pending--
			counts.Running++
			records[i].started, records[i].arn, records[i].name = true, ref.ID, name
			notify()
			mu.Unlock()
			child := newExecution(ex.m, s, ref, ex.tally, st.processor)
			res := child.run(ctx, in, inSize, 0)
			mu.Lock()
			defer mu.Unlock()
			counts.Running--
			rec := &records[i]
			rec.status, rec.startTime, rec.stopTime = res.Status, res.StartTime, res.StopTime
			rec.errName, rec.cause = res.Error, res.Cause
			switch res.Status {
			case StatusSucceeded:
				counts.Succeeded++
				rec.output = child.output
			case StatusAborted, StatusTimedOut:
				counts.Aborted++
			default:
				counts.Failed++
				failed++
				if first == "" {
					first = fmt.Sprintf("item %d (execution %s) failed with %s: %s", i, name, res.Error, res.Cause)
				}
				if failure == nil && exceeded(failed) {
					failure = &stateError{Name: ErrorExceedToleratedFailures}
					cancel(errMapRunFailed)
				}
			}
			notify()
		}(i, in)
	}
	wg.Wait()

	if t.ctx.Err() != nil && fatal == nil && failure == nil {
		ended("ABORTED")
		t.emit("MapRunAborted", st.name, func() any {
			mu.Lock()
			defer mu.Unlock()
			return map[string]any{"mapRunArn": mapRunArn, "counts": countsDetails()}
		})
		return nil, abortError(t.ctx)
	}
	if failure != nil {
		failure.Cause = fmt.Sprintf("The specified tolerated failure threshold was exceeded: %d of %d child executions failed (%s). First failure: %s",
			failed, total, toleranceText(pctSet, pct, countOK, count), first)
	}
	// The children have ended: records is no longer written to.
	var result any
	switch rw := st.resultWriter; {
	case rw != nil && rw.resource != "":
		out, written, werr := r.writeResults(t.ctx, writerBucket, writerPrefix, mapRunArn, records)
		if werr != nil && (werr.aborted || werr.timedOut) {
			ended("ABORTED")
			t.emit("MapRunAborted", st.name, func() any {
				return map[string]any{"mapRunArn": mapRunArn, "counts": countsDetails()}
			})
			return nil, werr
		}
		if werr != nil {
			if fatal == nil && failure == nil {
				return mapRunFailed(werr)
			}
			// The Map Run's own failure stands; say that its results are
			// missing too.
			if fatal != nil {
				fatal.Cause += " (" + werr.Cause + ")"
			} else {
				failure.Cause += " (" + werr.Cause + ")"
			}
			break
		}
		mu.Lock()
		counts.ResultsWritten = written
		notify()
		mu.Unlock()
		result = out
	case fatal != nil || failure != nil:
	case rw != nil:
		result = transformed(records, rw.transformation, s.machineArn+"/"+label)
	default:
		result = transformed(records, "COMPACT", s.machineArn+"/"+label)
	}
	if fatal != nil {
		return mapRunFailed(fatal)
	}
	if failure != nil {
		return mapRunFailed(failure)
	}
	ended("SUCCEEDED")
	t.emit("MapRunSucceeded", st.name, func() any {
		return map[string]any{"mapRunArn": mapRunArn, "counts": countsDetails()}
	})
	t.emit("MapStateSucceeded", st.name, nil)
	return result, nil
}

func toleranceText(pctSet bool, pct float64, countSet bool, count float64) string {
	switch {
	case pctSet && countSet:
		return fmt.Sprintf("tolerated: %v%% or %v failures", pct, count)
	case pctSet:
		return fmt.Sprintf("tolerated: %v%%", pct)
	case countSet:
		return fmt.Sprintf("tolerated: %v failures", count)
	}
	return "no failure tolerated"
}

// validLabel reports whether a state name can stand in for a Map Run label
// in ARNs.
func validLabel(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}
