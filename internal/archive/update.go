package archive

import (
	"context"
	"errors"
	"fmt"
)

// updateAttempts bounds how often Update reads again after another writer
// changed the object between its read and its write.
const updateAttempts = 12

// Update replaces the object at key with what change makes of its current
// body (nil when there is none), atomically against concurrent updaters:
// a compare-and-swap (PutIfAbsent, then PutIfMatch on the version read),
// retried from a fresh read when another writer came first, so that no
// writer's change is lost. It is for trailfill's own objects that several
// runs amend (window manifests, coverage indexes), never for trail files.
//
// exists says whether the object is known to be there (from a listing): an
// S3 caller that may not list the key gets 403 for a missing one, so a
// missing object is created without reading it first.
func Update(ctx context.Context, s Store, key string, exists bool, change func(old []byte) ([]byte, error)) error {
	for attempt := 1; ; attempt++ {
		var old []byte
		var version string
		if exists {
			b, v, err := s.GetVersion(ctx, key)
			switch {
			case err == nil:
				old, version = b, v
			case errors.Is(err, ErrNotFound):
				exists = false
			default:
				return err
			}
		}
		body, err := change(old)
		if err != nil {
			return err
		}
		var ok bool
		if exists {
			ok, err = s.PutIfMatch(ctx, key, body, version)
		} else {
			ok, err = s.PutIfAbsent(ctx, key, body, nil)
		}
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		exists = true // created or changed by another writer: read it again
		if attempt == updateAttempts {
			return fmt.Errorf("update %s: another writer changed it %d times in a row while this run amended it; re-run to resume", key, attempt)
		}
		if err := conflictBackoff.Wait(ctx, nil, attempt); err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
	}
}
