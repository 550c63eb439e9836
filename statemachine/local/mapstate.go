package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

var (
	errIterationFailed = errors.New("another iteration of the Map state failed")
	errMapRunFailed    = errors.New("the Map Run failed")
)

// mapAttempt runs a Map state's iterations once: it evaluates Items and
// MaxConcurrency, then runs the items inline or as a Distributed Map Run.
func (r *stateRun) mapAttempt() (any, *stateError) {
	st, t := r.st, r.t
	var itemsValue any = r.input
	var itemsTemplate template = literal{}
	if st.items != nil {
		v, serr := r.eval(st.items, "Items", binding{})
		if serr != nil {
			return nil, serr
		}
		itemsValue, itemsTemplate = v, st.items
	}
	items, ok := itemsValue.([]any)
	if !ok {
		return nil, r.typeError(itemsTemplate, "Items", "an array", itemsValue)
	}
	maxConcurrency := 0
	if st.maxConcurrency != nil {
		n, serr := r.evalInt(st.maxConcurrency, "MaxConcurrency", 0, binding{})
		if serr != nil {
			return nil, serr
		}
		maxConcurrency = int(n)
	}
	t.emit("MapStateStarted", st.name, func() any { return map[string]any{"length": len(items)} })
	if st.distributed {
		return r.mapRun(items, maxConcurrency)
	}
	return r.inlineMap(items, maxConcurrency)
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
	sem := make(chan struct{}, limit)
launch:
	for i, item := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func(i int, item any) {
			defer wg.Done()
			defer func() { <-sem }()
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
// children run at once.
//
// The Map Run fails with States.ExceedToleratedFailureThreshold as soon as
// more children failed than ToleratedFailureCount or
// ToleratedFailurePercentage allow (with neither set, at the first failure);
// the children still running are then aborted and no new one starts, as
// Step Functions does. The cause names the first failed child, its error and
// its cause. When failures are tolerated the output array holds, at a failed
// child's index, {"Error": .., "Cause": ..} instead of an output.
func (r *stateRun) mapRun(items []any, maxConcurrency int) (any, *stateError) {
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

	var (
		mu       sync.Mutex
		counts   = MapRunCounts{Total: total, Pending: total}
		failed   int
		first    string // the first failed child, described
		failure  *stateError
		fatal    *stateError
		results  = make([]any, total)
		wg       sync.WaitGroup
		snapshot = func() MapRunCounts { return counts }
	)
	notify := func() {
		if s.mapRunObserver != nil {
			s.mapRunObserver.MapRun(ex.ref, mapRunArn, snapshot())
		}
	}
	countsDetails := func() any {
		c := snapshot()
		return map[string]any{"total": c.Total, "pending": c.Pending, "running": c.Running,
			"succeeded": c.Succeeded, "failed": c.Failed, "aborted": c.Aborted}
	}
	t.emit("MapRunStarted", st.name, func() any { return map[string]any{"mapRunArn": mapRunArn, "total": total} })
	mu.Lock()
	notify()
	mu.Unlock()

	ctx, cancel := context.WithCancelCause(t.ctx)
	defer cancel(nil)
	sem := make(chan struct{}, limit)
launch:
	for i, item := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		if ctx.Err() != nil {
			<-sem
			break
		}
		// ItemSelector belongs to the Map state: it is evaluated here, in
		// this execution, with its variables.
		in, serr := r.itemInput(i, item)
		if serr != nil {
			<-sem
			mu.Lock()
			fatal = serr
			mu.Unlock()
			cancel(errMapRunFailed)
			break
		}
		wg.Add(1)
		go func(i int, in any) {
			defer wg.Done()
			defer func() { <-sem }()
			mu.Lock()
			counts.Pending--
			counts.Running++
			notify()
			mu.Unlock()
			name := newUUID()
			ref := ExecutionRef{
				ID:       fmt.Sprintf("arn:%s:states:%s:%s:execution:%s/%s:%s", s.partition, s.region, s.account, s.machineName, label, name),
				Name:     name,
				ParentID: ex.ref.ID,
				MapRunID: mapRunArn,
			}
			child := newExecution(ex.m, s, ref, ex.tally, st.processor)
			res := child.run(ctx, in, 0)
			mu.Lock()
			defer mu.Unlock()
			counts.Running--
			switch res.Status {
			case StatusSucceeded:
				counts.Succeeded++
				results[i] = child.output
			case StatusAborted, StatusTimedOut:
				counts.Aborted++
				results[i] = map[string]any{"Error": res.Error, "Cause": res.Cause}
			default:
				counts.Failed++
				failed++
				results[i] = map[string]any{"Error": res.Error, "Cause": res.Cause}
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

	mapRunFailed := func(serr *stateError) (any, *stateError) {
		t.emit("MapRunFailed", st.name, func() any {
			d := map[string]any{"mapRunArn": mapRunArn, "error": serr.Name, "cause": serr.Cause, "counts": countsDetails()}
			return d
		})
		return nil, serr
	}
	if fatal != nil {
		return mapRunFailed(fatal)
	}
	if failure != nil {
		failure.Cause = fmt.Sprintf("The specified tolerated failure threshold was exceeded: %d of %d child executions failed (%s). First failure: %s",
			failed, total, toleranceText(pctSet, pct, countOK, count), first)
		return mapRunFailed(failure)
	}
	if t.ctx.Err() != nil {
		t.emit("MapRunAborted", st.name, func() any {
			return map[string]any{"mapRunArn": mapRunArn, "counts": countsDetails()}
		})
		return nil, abortError(t.ctx)
	}
	t.emit("MapRunSucceeded", st.name, func() any {
		return map[string]any{"mapRunArn": mapRunArn, "counts": countsDetails()}
	})
	t.emit("MapStateSucceeded", st.name, nil)
	return results, nil
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
