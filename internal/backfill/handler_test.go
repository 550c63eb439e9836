package backfill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got (indented JSON) with testdata/<name>, or rewrites it
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s: %v: %s", name, err, got)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs from the golden file:\n got %s\nwant %s", name, pretty.Bytes(), want)
	}
}

// invoke sends the payload in testdata/<name> through the Lambda binding
// (aws-lambda-go's invocation path) and returns the answer or the error.
func invoke(t *testing.T, h *backfill.Handler, name string, ctx context.Context) (json.RawMessage, error) {
	t.Helper()
	payload, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return backfill.LocalInvoker(h).Invoke(ctx, "", contract.LocalFunctionName, payload)
}

// TestHandlerCursors drives the handler with hand-written payloads (the
// state machine's first invocation, a resumed one, a re-run) and compares
// every answer, cursor included, with its golden file: the wire shape between
// the state machine and the function.
func TestHandlerCursors(t *testing.T) {
	t.Parallel()
	h, emu, store := handler(t)
	h.Now = func() time.Time { return time.Date(2025, 11, 23, 0, 0, 0, 0, time.UTC) }
	start := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	defer func() {
		if !t.Failed() {
			testkit.CheckArchive(t, store, testkit.Expect{Events: testkit.Between(evsOf(t, start), start, start.Add(4*time.Hour))})
		}
	}()
	// 120 events 2 minutes apart, 10:00 .. 13:58: 3 pages, one pager.
	testkit.Load(t, emu, evsOf(t, start))

	t.Run("first invocation", func(t *testing.T) {
		out, err := invoke(t, h, "first.json", context.Background())
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "first.golden.json", out)
	})
	t.Run("re-run: every window archived, nothing read", func(t *testing.T) {
		out, err := invoke(t, h, "first.json", context.Background())
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "rerun.golden.json", out)
	})
}

// evsOf are TestHandlerCursors' events.
func evsOf(t *testing.T, start time.Time) []testkit.Event {
	return testkit.Retimed(t, "111111111111", "eu-west-1", testkit.Spaced(start, 2*time.Minute, 120))
}

// TestHandlerResumesFromTheCursor: the cursor says 14:00..15:00 was read and
// written by an earlier invocation; the handler trusts it (its pieces are not
// there, so nothing of that hour is archived) and reads only the rest.
func TestHandlerResumesFromTheCursor(t *testing.T) {
	t.Parallel()
	h, emu, store := handler(t)
	h.Now = func() time.Time { return time.Date(2025, 11, 23, 0, 0, 0, 0, time.UTC) }
	start := time.Date(2025, 11, 22, 14, 0, 0, 0, time.UTC)
	evs := testkit.Retimed(t, "111111111111", "us-east-1", testkit.Spaced(start, 3*time.Minute, 40))
	testkit.Load(t, emu, evs)
	out, err := invoke(t, h, "resumed.json", context.Background())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "resumed.golden.json", out)
	testkit.CheckArchive(t, store, testkit.Expect{Events: testkit.Between(evs, start.Add(time.Hour), start.Add(2*time.Hour))})
}

// TestHandlerRefusesWhatItCannotDo: payloads the function must refuse, with
// the message that says what to do.
func TestHandlerRefusesWhatItCannotDo(t *testing.T) {
	t.Parallel()
	h, _, _ := handler(t)
	start := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		in   contract.Invocation
		want string
	}{
		{"another read role", contract.Invocation{Account: "111111111111", Region: "eu-west-1", Start: start, End: start.Add(time.Hour), RoleName: "other-role"},
			`assumes role "trailfill-read" but the execution asked for "other-role"`},
		{"another archive", contract.Invocation{Account: "111111111111", Region: "eu-west-1", Start: start, End: start.Add(time.Hour), Destination: "s3://elsewhere/x"},
			"but the execution asked for s3://elsewhere/x"},
		{"empty range", contract.Invocation{Account: "111111111111", Region: "eu-west-1", Start: start, End: start},
			"is not before end"},
		{"bad window", contract.Invocation{Account: "111111111111", Region: "eu-west-1", Start: start, End: start.Add(time.Hour), WindowMinutes: 7},
			"must be a multiple of 5m"},
		{"unknown region", contract.Invocation{Account: "111111111111", Region: "moon-1", Start: start, End: start.Add(time.Hour)},
			"moon-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			payload, _ := json.Marshal(tc.in)
			_, err := backfill.LocalInvoker(h).Invoke(context.Background(), "", contract.LocalFunctionName, payload)
			if err == nil || !strings.Contains(contract.CauseMessage(causeOf(err)), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestHandlerStopsLoopingWithoutProgress: invocations whose budget is gone
// before they read anything count as stalled; the third in a row fails the
// partition with a cause that says why, instead of looping until the
// execution's history is full.
func TestHandlerStopsLoopingWithoutProgress(t *testing.T) {
	t.Parallel()
	h, emu, _ := handler(t)
	h.Margin = time.Hour // the soft deadline is already past
	start := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	testkit.Load(t, emu, testkit.Retimed(t, "111111111111", "eu-west-1", testkit.Spaced(start, time.Minute, 10)))
	in := contract.Invocation{Account: "111111111111", Region: "eu-west-1", Start: start, End: start.Add(time.Hour)}
	for i := 1; i <= backfill.MaxStalled; i++ {
		payload, _ := json.Marshal(in)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := backfill.LocalInvoker(h).Invoke(ctx, "", contract.LocalFunctionName, payload)
		cancel()
		if i < backfill.MaxStalled {
			if err != nil {
				t.Fatalf("invocation %d: %v", i, err)
			}
			if err := json.Unmarshal(out, &in); err != nil || in.Done || in.Cursor.Stalled != i {
				t.Fatalf("invocation %d: %s: want not done, stalled %d", i, out, i)
			}
			continue
		}
		if err == nil || !strings.Contains(causeOf(err), "no progress in 3 invocations in a row") {
			t.Fatalf("invocation %d: %v %s: want the partition failed for no progress", i, err, causeOf(err))
		}
	}
}

// causeOf is the cause of a Task error (the Lambda error payload).
func causeOf(err error) string {
	var te *local.TaskError
	if errors.As(err, &te) {
		return te.Cause
	}
	return ""
}
