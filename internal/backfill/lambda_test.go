package backfill_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

// handler is the backfill handler over the emulators, as the deployed
// function builds it, writing into a local folder.
func handler(t *testing.T) (*backfill.Handler, *emulator.Server, archive.Store) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Rate: 1000, Burst: 10})
	emu.AddAccount("111111111111")
	cfg := testkit.AWSConfig(t, emu, "111111111111")
	store, err := archive.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &backfill.Handler{Store: store, Clients: awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, 1000)}, emu, store
}

// TestLocalInvokerNamesErrorsOnPurpose invokes the handler through
// aws-lambda-go's invocation path and checks the Task error the state
// machine sees: the contract's names, and the Lambda error payload as cause.
func TestLocalInvokerNamesErrorsOnPurpose(t *testing.T) {
	t.Parallel()
	h, _, _ := handler(t)
	inv := backfill.LocalInvoker(h)
	start := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	bad, _ := json.Marshal(contract.Invocation{Account: "12345", Region: "us-east-1", Start: start, End: start.Add(time.Hour)})
	for _, tc := range []struct {
		name, function, payload string
		wantName, wantCause     string
	}{
		{"a failed partition", contract.LocalFunctionName, string(bad), contract.ErrorPartition,
			`{"errorMessage":"partition 12345/us-east-1: invalid account ID \"12345\": use the 12-digit account number","errorType":"PartitionError"}`},
		{"a payload that is not an invocation", contract.LocalFunctionName, `{"start": "soon"}`, contract.ErrorInvalidInvocation, ""},
		{"another function", "someone-else", string(bad), "Lambda.ResourceNotFoundException", "no local function someone-else"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := inv.Invoke(context.Background(), "arn:aws:states:::lambda:invoke", tc.function, json.RawMessage(tc.payload))
			te, ok := err.(*local.TaskError)
			if !ok || out != nil {
				t.Fatalf("out %s, err %#v: want a *local.TaskError", out, err)
			}
			if te.Name != tc.wantName {
				t.Errorf("error name %q, want %q", te.Name, tc.wantName)
			}
			if tc.wantCause != "" && te.Cause != tc.wantCause {
				t.Errorf("cause %s, want %s", te.Cause, tc.wantCause)
			}
			if tc.function == contract.LocalFunctionName {
				var c contract.LambdaErrorCause
				if err := json.Unmarshal([]byte(te.Cause), &c); err != nil || c.ErrorType != tc.wantName || c.ErrorMessage == "" {
					t.Errorf("cause %q is not the Lambda error payload of %s: %v", te.Cause, tc.wantName, err)
				}
			}
		})
	}
}

// TestTaskErrorNamesOtherErrorsAsTheRuntime: an error that is not one of
// Function's is named as aws-lambda-go names it, after its Go type.
func TestTaskErrorNamesOtherErrorsAsTheRuntime(t *testing.T) {
	t.Parallel()
	var v struct{}
	err := json.Unmarshal([]byte("{"), &v)
	te := backfill.TaskError(err)
	if te.Name != "SyntaxError" || te.Cause != `{"errorMessage":"unexpected end of JSON input","errorType":"SyntaxError"}` {
		t.Errorf("TaskError(%T) = %+v", err, te)
	}
}

// TestFunctionArchivesAPartition drives one quiet partition through the
// local invoker to the end: JSON in, JSON out, as in Lambda.
func TestFunctionArchivesAPartition(t *testing.T) {
	t.Parallel()
	h, emu, store := handler(t)
	start := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	events := testkit.Retimed(t, "111111111111", "eu-west-1", testkit.Spaced(start.Add(time.Minute), 7*time.Minute, 17)) // 10:01 .. 11:53
	testkit.Load(t, emu, events)
	payload, _ := json.Marshal(contract.Invocation{Account: "111111111111", Region: "eu-west-1", Start: start, End: start.Add(2 * time.Hour), WindowMinutes: 30})
	out, err := backfill.LocalInvoker(h).Invoke(context.Background(), "", contract.LocalFunctionName, payload)
	if err != nil {
		t.Fatal(err)
	}
	var got contract.Invocation
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	if !got.Done || got.Cursor.Invocations != 1 || got.Cursor.Events != 17 || got.Cursor.Windows != 4 || got.Cursor.WindowsTotal != 4 {
		t.Errorf("answer %s", out)
	}
	testkit.CheckArchive(t, store, testkit.Expect{Events: events, Start: start, End: start.Add(2 * time.Hour)})
}
