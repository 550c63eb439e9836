package backfill

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
)

// ArchiveProgress counts the windows and events of a backfill that the
// archive's manifests show, for `trailfill watch`. Each Scan lists the
// manifests of the partitions that are not complete yet (one LIST per 1,000
// manifests: archive.ManifestKeys) and reads each manifest it has not
// counted once (archive.ReadManifests): over a whole watch every manifest is
// read once, and a complete partition costs nothing more.
type ArchiveProgress struct {
	store   archive.Store
	parts   []contract.Partition
	windows map[int64]archive.Window // by aligned start
	from    time.Time
	to      time.Time

	mu    sync.Mutex
	state map[contract.Partition]*partitionProgress
}

type partitionProgress struct {
	counted map[string]bool // manifests counted
	windows int64
	events  int64
	done    bool
}

// scanParallel is how many partitions a Scan lists at once.
const scanParallel = 8

// NewArchiveProgress follows the windows of [start, end) of parts in store.
func NewArchiveProgress(store archive.Store, parts []contract.Partition, start, end time.Time, window time.Duration) *ArchiveProgress {
	a := &ArchiveProgress{store: store, parts: parts, windows: map[int64]archive.Window{}, state: map[contract.Partition]*partitionProgress{}}
	ws := archive.Windows(start, end, window)
	for _, w := range ws {
		a.windows[w.Start.Unix()] = w
	}
	if len(ws) > 0 {
		a.from, a.to = ws[0].Start, ws[len(ws)-1].Start
	}
	for _, p := range parts {
		a.state[p] = &partitionProgress{counted: map[string]bool{}}
	}
	return a
}

// Total is the number of windows followed, over all partitions.
func (a *ArchiveProgress) Total() int64 { return int64(len(a.windows) * len(a.parts)) }

// Scan returns the windows archived and the events they hold, over all
// partitions.
func (a *ArchiveProgress) Scan(ctx context.Context) (windows, events int64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(scanParallel)
	for _, p := range a.parts {
		a.mu.Lock()
		st := a.state[p]
		done := st.done
		a.mu.Unlock()
		if done {
			continue
		}
		g.Go(func() error { return a.scanPartition(gctx, p, st) })
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.state {
		windows += st.windows
		events += st.events
	}
	return windows, events, nil
}

func (a *ArchiveProgress) scanPartition(ctx context.Context, p contract.Partition, st *partitionProgress) error {
	keys, err := archive.ManifestKeys(ctx, a.store, archive.ManifestPrefix(p.Account, p.Region), a.from, a.to.Add(time.Second))
	if err != nil {
		return err
	}
	a.mu.Lock()
	for ws, k := range keys {
		if _, ok := a.windows[ws]; !ok || st.counted[k] {
			delete(keys, ws)
		}
	}
	a.mu.Unlock()
	ms, err := archive.ReadManifests(ctx, a.store, keys, archive.DecodeCloudTrailManifest)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ws, m := range ms {
		w := a.windows[ws]
		if !m.Covers(w.From, w.To) {
			continue // a narrower earlier run: read it again when it is rewritten
		}
		st.counted[keys[ws]] = true
		st.windows++
		st.events += int64(m.Events)
	}
	st.done = st.windows == int64(len(a.windows))
	return nil
}
