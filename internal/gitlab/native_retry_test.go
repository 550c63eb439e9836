package gitlab

import (
	"context"
	"errors"
	"testing"
	"time"
)

// failListOnce fails its first List, as a store with a transient error.
type failListOnce struct {
	*memStore
	failed bool
}

func (s *failListOnce) List(ctx context.Context, prefix string) ([]string, error) {
	if !s.failed {
		s.failed = true
		return nil, errors.New("connection reset")
	}
	return s.memStore.List(ctx, prefix)
}

// A folder whose listing failed once is listed again on its next use, not
// failed for the rest of the run.
func TestNativeFolderListingIsRetried(t *testing.T) {
	t.Parallel()
	store := &failListOnce{memStore: newMemStore()}
	x := newNativeIndex(store, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if _, err := x.folder(context.Background(), "user/2025/03/", false); err == nil {
		t.Fatal("the failed listing was not reported")
	}
	if _, err := x.folder(context.Background(), "user/2025/03/", false); err != nil {
		t.Fatalf("the folder's second use: %v; want it listed again", err)
	}
}
