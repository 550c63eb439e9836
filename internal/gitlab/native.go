package gitlab

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
)

// DefaultNativeLookahead is how many months after an event's month the
// gitlab-s3 backfill searches for GitLab's own copy of it. GitLab names its
// objects by upload time and uploads within seconds of the event, so the
// next month is needed only for events at the end of a month; raise it for
// instances whose delivery lagged longer (NativeLookahead).
const DefaultNativeLookahead = 1

// MaxNativeLookahead bounds NativeLookahead.
const MaxNativeLookahead = 12

// ValidateNativeLookahead checks a --native-lookahead value: 1 to
// MaxNativeLookahead months.
func ValidateNativeLookahead(months int) error {
	if months < 1 || months > MaxNativeLookahead {
		return fmt.Errorf("invalid native lookahead of %d months: use 1 to %d (months after an event's month searched for GitLab's own copy)", months, MaxNativeLookahead)
	}
	return nil
}

// nativeSlack is how long before the range start an object's upload time may
// be and still be read: upload follows the event, but the clocks of GitLab's
// processes may differ a little.
const nativeSlack = time.Hour

// batchReadParallel is how many batch objects are read at once.
const batchReadParallel = 8

// nativeRef is an object that holds an event.
type nativeRef struct {
	key    string
	timeMS int64 // the time in its name
	batch  bool
	// size and sha256 of a batch object, read once for all its events.
	size   int
	sha256 string
}

// native reports whether GitLab wrote the object that holds the event
// created at createdMS: a batch, or a per-event object named by its upload
// time. trailfill names its own per-event objects by created_at; an upload in
// the very millisecond of the event's creation does not happen (GitLab
// streams from a background job after the event is saved).
func (r nativeRef) native(createdMS int64) bool { return r.batch || r.timeMS != createdMS }

// nativeIndex finds, by id, the events the archive already holds in the
// gitlab-s3 layout: per-event objects (GitLab's own, named by upload time,
// and trailfill's, named by created_at) and GitLab's batched objects. Each
// folder is listed once per run, when an event first needs it, and each batch
// object read once; only ids and keys stay in memory. Objects uploaded before
// minMS (the range start, less a margin) cannot hold an event of the range
// and are skipped.
type nativeIndex struct {
	store archive.Store
	minMS int64

	mu      sync.Mutex
	folders map[string]*nativeFolder
}

// nativeFolder is one listed folder: the ids its objects hold.
type nativeFolder struct {
	once sync.Once
	err  error
	ids  map[string][]nativeRef
}

func newNativeIndex(store archive.Store, rangeStart time.Time) *nativeIndex {
	return &nativeIndex{store: store, minMS: rangeStart.Add(-nativeSlack).UnixMilli(), folders: map[string]*nativeFolder{}}
}

// lookup returns an object holding e (whose own gitlab-s3 key is own): own if
// it exists, otherwise the first native object (in key order) holding e's id,
// in the folders of the months that can hold it. Found is false when none
// does.
func (x *nativeIndex) lookup(ctx context.Context, e Event, own string, lookahead int) (ref nativeRef, found bool, err error) {
	folder := EntityFolder(e.EntityType) + "/"
	var refs []nativeRef
	for _, m := range NativeMonths(e.CreatedAt, lookahead) {
		month := m.Format("2006/01/")
		for _, f := range []struct {
			prefix string
			batch  bool
		}{{folder + month, false}, {month, true}} {
			ids, err := x.folder(ctx, f.prefix, f.batch)
			if err != nil {
				return nativeRef{}, false, err
			}
			refs = append(refs, ids[e.ID]...)
		}
	}
	if len(refs) == 0 {
		return nativeRef{}, false, nil
	}
	for _, r := range refs {
		if r.key == own {
			return r, true, nil
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].key < refs[j].key })
	return refs[0], true, nil
}

// folder returns the ids held by the objects under prefix, listing it (and
// reading its batch objects) once, on first use; a listing that failed is
// tried again on the next use.
func (x *nativeIndex) folder(ctx context.Context, prefix string, batch bool) (map[string][]nativeRef, error) {
	x.mu.Lock()
	f, ok := x.folders[prefix]
	if !ok {
		f = &nativeFolder{}
		x.folders[prefix] = f
	}
	x.mu.Unlock()
	f.once.Do(func() {
		if batch {
			f.ids, f.err = x.readBatches(ctx, prefix)
		} else {
			f.ids, f.err = x.listEvents(ctx, prefix)
		}
	})
	if f.err != nil {
		// Not kept: a failed listing (a transient error, the first caller's
		// context ending) is tried again by the next window that needs it.
		x.mu.Lock()
		if x.folders[prefix] == f {
			delete(x.folders, prefix)
		}
		x.mu.Unlock()
		return nil, fmt.Errorf("find GitLab's own copies under %s: %w", prefix, f.err)
	}
	return f.ids, nil
}

// listEvents reads the ids from the names of the per-event objects under
// prefix (<entity>/YYYY/MM/).
func (x *nativeIndex) listEvents(ctx context.Context, prefix string) (map[string][]nativeRef, error) {
	keys, err := x.store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	ids := map[string][]nativeRef{}
	for _, k := range keys {
		o, ok := ParseEventObjectKey(k)
		if !ok || o.TimeMS < x.minMS {
			continue
		}
		ids[o.ID] = append(ids[o.ID], nativeRef{key: k, timeMS: o.TimeMS})
	}
	return ids, nil
}

// readBatches reads every batch object under prefix (YYYY/MM/) uploaded
// since minMS and indexes the ids of its events (a JSON array), with the
// object's size and SHA-256 for the manifests (a batch is read once, however
// many of its events a window lists).
func (x *nativeIndex) readBatches(ctx context.Context, prefix string) (map[string][]nativeRef, error) {
	keys, err := x.store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var batches []NativeObject
	for _, k := range keys {
		if o, ok := ParseBatchObjectKey(k); ok && o.TimeMS >= x.minMS {
			batches = append(batches, o)
		}
	}
	type batchRead struct {
		ids  []string
		size int
		sum  string
	}
	found := make([]batchRead, len(batches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchReadParallel)
	for i, o := range batches {
		k := o.Key
		g.Go(func() error {
			body, err := x.store.Get(gctx, k)
			if err != nil {
				return fmt.Errorf("read GitLab batch %s: %w", k, err)
			}
			ids, err := batchIDs(body)
			if err != nil {
				return fmt.Errorf("GitLab batch %s: %w", k, err)
			}
			found[i] = batchRead{ids: ids, size: len(body), sum: archive.SHA256Hex(body)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	ids := map[string][]nativeRef{}
	for i, o := range batches {
		for _, id := range found[i].ids {
			ids[id] = append(ids[id], nativeRef{key: o.Key, timeMS: o.TimeMS, batch: true, size: found[i].size, sha256: found[i].sum})
		}
	}
	return ids, nil
}

// batchIDs are the ids of the events of a batch object: a JSON array of
// streaming payloads (encode_body(event_bodies) in
// amazon_s3_stream_destination.rb). Elements without a valid id are skipped.
func batchIDs(body []byte) ([]string, error) {
	var elems []struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, fmt.Errorf("not a JSON array of events: %w", err)
	}
	ids := make([]string, 0, len(elems))
	for _, e := range elems {
		if e.ID == nil {
			continue
		}
		if id, err := parseID(e.ID); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
