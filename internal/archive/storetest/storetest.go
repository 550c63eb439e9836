// Package storetest is the contract every archive.Store must keep, as one
// suite run against each implementation (the local folder, S3 through the
// emulator, and S3 under the create-only permissions the deployed roles
// have). litestream's replica client suite is the model.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/trailfill/trailfill/internal/archive"
)

// Options describe what the store under test can tell.
type Options struct {
	// MissingKeyForbidden: reading a missing key fails without ErrNotFound
	// (S3 answers 403 to a caller who may not list the key).
	MissingKeyForbidden bool
}

// Keys used by the suite: trail files are created under AWSLogs/ (create-only
// under strict permissions), replaceable objects live under trailfill/.
const (
	trailDir = "AWSLogs/111111111111/CloudTrail/us-east-1/2025/03/09/"
	ownDir   = "trailfill/manifests/111111111111/us-east-1/2025/03/09/"
)

// Run runs the contract against fresh stores made by open.
func Run(t *testing.T, o Options, open func(t *testing.T) archive.Store) {
	t.Helper()
	ctx := context.Background()

	t.Run("put replaces and get reads", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := ownDir + "20250309T0000Z.json"
		for _, body := range []string{`{"a":1}`, `{"a":2,"b":[1,2,3]}`} {
			if err := s.Put(ctx, key, []byte(body)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, key)
			if err != nil || string(got) != body {
				t.Fatalf("Get = %q, %v; want %q", got, err, body)
			}
		}
		info, err := s.Head(ctx, key)
		if err != nil || info.Size != int64(len(`{"a":2,"b":[1,2,3]}`)) || len(info.Metadata) != 0 {
			t.Fatalf("Head = %+v, %v", info, err)
		}
	})

	t.Run("put if absent creates once and keeps the first", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := trailDir + "111111111111_CloudTrail_us-east-1_20250309T0005Z_AAAAAAAAAAAAAAAA.json.gz"
		meta := archive.Metadata{"trailfill": "piece/1"}
		wrote, err := s.PutIfAbsent(ctx, key, []byte("first"), meta)
		if err != nil || !wrote {
			t.Fatalf("first PutIfAbsent = %v, %v", wrote, err)
		}
		wrote, err = s.PutIfAbsent(ctx, key, []byte("second, longer"), archive.Metadata{"trailfill": "other"})
		if err != nil || wrote {
			t.Fatalf("second PutIfAbsent = %v, %v; want false, nil", wrote, err)
		}
		got, err := s.Get(ctx, key)
		if err != nil || string(got) != "first" {
			t.Fatalf("Get = %q, %v", got, err)
		}
		info, err := s.Head(ctx, key)
		if err != nil || info.Size != 5 || info.Metadata["trailfill"] != "piece/1" {
			t.Fatalf("Head = %+v, %v: want size 5 and the first writer's metadata", info, err)
		}
		plain := trailDir + "111111111111_CloudTrail_us-east-1_20250309T0005Z_BBBBBBBBBBBBBBBB.json.gz"
		if wrote, err := s.PutIfAbsent(ctx, plain, []byte("native"), nil); err != nil || !wrote {
			t.Fatalf("PutIfAbsent without metadata = %v, %v", wrote, err)
		}
		if info, err := s.Head(ctx, plain); err != nil || len(info.Metadata) != 0 {
			t.Fatalf("an object created without metadata has %+v, %v", info, err)
		}
	})

	t.Run("concurrent creators store one body", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := trailDir + "111111111111_CloudTrail_us-east-1_20250309T0010Z_CCCCCCCCCCCCCCCC.json.gz"
		const n = 12
		var wg sync.WaitGroup
		won := make([]bool, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				won[i], errs[i] = s.PutIfAbsent(ctx, key, fmt.Appendf(nil, "writer %02d", i), archive.Metadata{"writer": fmt.Sprint(i)})
			}()
		}
		wg.Wait()
		winner := -1
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("writer %d: %v", i, errs[i])
			}
			if won[i] {
				if winner >= 0 {
					t.Fatalf("writers %d and %d both created %s", winner, i, key)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatal("no writer created the object")
		}
		got, err := s.Get(ctx, key)
		if err != nil || !bytes.Equal(got, fmt.Appendf(nil, "writer %02d", winner)) {
			t.Fatalf("stored %q, %v; the winner was %d", got, err, winner)
		}
		info, err := s.Head(ctx, key)
		if err != nil || info.Metadata["writer"] != fmt.Sprint(winner) {
			t.Fatalf("metadata %+v, %v: not the winner's (%d)", info.Metadata, err, winner)
		}
	})

	t.Run("put if match replaces only the version read", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := ownDir + "20250309T0030Z.json"
		if err := s.Put(ctx, key, []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		body, v1, err := s.GetVersion(ctx, key)
		if err != nil || string(body) != `{"v":1}` || v1 == "" {
			t.Fatalf("GetVersion = %q, %q, %v", body, v1, err)
		}
		if ok, err := s.PutIfMatch(ctx, key, []byte(`{"v":2}`), v1); err != nil || !ok {
			t.Fatalf("PutIfMatch on the version read = %v, %v; want true", ok, err)
		}
		_, v2, err := s.GetVersion(ctx, key)
		if err != nil || v2 == v1 {
			t.Fatalf("the version after a change is %q (was %q), %v: it must change with the object", v2, v1, err)
		}
		// A writer still holding the first version must not replace the second.
		if ok, err := s.PutIfMatch(ctx, key, []byte(`{"v":"stale"}`), v1); err != nil || ok {
			t.Fatalf("PutIfMatch on a stale version = %v, %v; want false, nil", ok, err)
		}
		if got, err := s.Get(ctx, key); err != nil || string(got) != `{"v":2}` {
			t.Fatalf("after a refused PutIfMatch the object is %q, %v", got, err)
		}
		if ok, err := s.PutIfMatch(ctx, ownDir+"20250309T0100Z.json", []byte(`{}`), v2); err != nil || ok {
			t.Fatalf("PutIfMatch on a missing key = %v, %v; want false, nil", ok, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.PutIfMatch(ctx, key, []byte(`{"v":3}`), v2); err != nil || ok {
			t.Fatalf("PutIfMatch on a deleted key = %v, %v; want false, nil", ok, err)
		}
	})

	t.Run("concurrent updates lose nothing", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := ownDir + "index.json"
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Every updater appends its own line to what it read.
				errs[i] = archive.Update(ctx, s, key, false, func(old []byte) ([]byte, error) {
					return fmt.Appendf(old, "writer %02d\n", i), nil
				})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("updater %d: %v", i, err)
			}
		}
		got, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n"))
		slices.SortFunc(lines, bytes.Compare)
		var want [][]byte
		for i := range n {
			want = append(want, fmt.Appendf(nil, "writer %02d", i))
		}
		if !slices.EqualFunc(lines, want, bytes.Equal) {
			t.Fatalf("after %d concurrent updates the object holds\n%s\nwant one line of each updater", n, got)
		}
	})

	t.Run("missing keys", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := ownDir + "20250309T2330Z.json"
		_, gerr := s.Get(ctx, key)
		_, herr := s.Head(ctx, key)
		for _, err := range []error{gerr, herr} {
			switch {
			case err == nil:
				t.Fatal("a missing key reads without error")
			case o.MissingKeyForbidden && errors.Is(err, archive.ErrNotFound):
				t.Fatalf("this store cannot tell a missing key, yet says %v", err)
			case !o.MissingKeyForbidden && !errors.Is(err, archive.ErrNotFound):
				t.Fatalf("missing key: %v, want ErrNotFound", err)
			}
		}
		if keys, err := s.List(ctx, ownDir); err != nil || len(keys) != 0 {
			t.Fatalf("List of an empty prefix = %v, %v", keys, err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		key := ownDir + "20250309T0030Z.json"
		if err := s.Put(ctx, key, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if keys, err := s.List(ctx, ownDir); err != nil || len(keys) != 0 {
			t.Fatalf("after Delete, List = %v, %v", keys, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
	})

	t.Run("list is sorted, by prefix, whole objects only", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		names := []string{"b/2.json", "a/1.json", "a/10.json", "ab/3.json", "a/sub/4.json"}
		for _, n := range names {
			if err := s.Put(ctx, ownDir+n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{ownDir, []string{"a/1.json", "a/10.json", "a/sub/4.json", "ab/3.json", "b/2.json"}},
			{ownDir + "a/", []string{"a/1.json", "a/10.json", "a/sub/4.json"}},
			{ownDir + "a", []string{"a/1.json", "a/10.json", "a/sub/4.json", "ab/3.json"}},
			{ownDir + "a/1", []string{"a/1.json", "a/10.json"}},
			{ownDir + "c/", nil},
		} {
			keys, err := s.List(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("List(%s): %v", tc.prefix, err)
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, ownDir+w)
			}
			if !slices.Equal(keys, want) {
				t.Fatalf("List(%s) = %v, want %v", tc.prefix, keys, want)
			}
		}
	})

	t.Run("invalid keys are refused", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for _, key := range []string{"", "/abs", "trailfill/../x", "trailfill//x", "trailfill/x/", "trailfill/./x"} {
			if err := s.Put(ctx, key, []byte("x")); err == nil {
				t.Errorf("Put(%q) accepted", key)
			}
			if _, err := s.PutIfAbsent(ctx, key, []byte("x"), nil); err == nil {
				t.Errorf("PutIfAbsent(%q) accepted", key)
			}
		}
	})
}
