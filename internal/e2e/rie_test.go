//go:build lambdae2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/statemachine/local"
)

// Environment of the test binary (set by `make lambda-e2e`).
const (
	envRIE               = "TRAILFILL_E2E_RIE"
	envBackfillBootstrap = "TRAILFILL_E2E_BACKFILL_BOOTSTRAP"
	envGitLabBootstrap   = "TRAILFILL_E2E_GITLAB_BOOTSTRAP"
)

// rieFunctionName is the only function name aws-lambda-rie serves
// (POST /2015-03-31/functions/function/invocations, rie/http.go).
const rieFunctionName = "function"

// binary returns the file named by the environment variable env.
func binary(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run these tests with `make lambda-e2e`", env)
	}
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (%v): run `make lambda-e2e`", env, p, err)
	}
	return p
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testkit.SyncBuffer

// rie is one aws-lambda-rie process serving one bootstrap: one execution
// environment, which serves one invocation at a time.
type rie struct {
	URL  string
	logs *syncBuffer
}

// startRIE runs aws-lambda-rie with bootstrap and exactly env as the
// function's environment (the emulator passes its own environment on to the
// bootstrap, so nothing of the test's leaks in), on free ports for both its
// invoke endpoint (--runtime-interface-emulator-address, default
// 0.0.0.0:8080) and the Runtime API it serves the bootstrap
// (--runtime-api-address, default 127.0.0.1:9001), so that parallel tests each
// have their own (rie/run.go). It returns once the invoke endpoint answers
// HTTP; the process group is killed when the test ends.
func startRIE(t *testing.T, bootstrap string, env map[string]string) *rie {
	t.Helper()
	bin := binary(t, envRIE)
	addr, apiAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, "--log-level", "info", bootstrap)
	cmd.Dir = t.TempDir()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmd.Env = make([]string, 0, len(keys))
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group, so the bootstrap it starts ends with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r := &rie{URL: "http://" + addr, logs: logs}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("aws-lambda-rie output:\n%s", tail(logs.String(), 8000))
		}
	})

	// Ready when the HTTP server answers (404 for /): poll, do not guess.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return r
		}
		select {
		case <-exited:
			t.Fatalf("aws-lambda-rie exited before serving:\n%s", logs.String())
		case <-ctx.Done():
			t.Fatalf("aws-lambda-rie did not serve %s within 15 s:\n%s", r.URL, logs.String())
		case <-tick.C:
		}
	}
}

// Invoker is a Lambda invoker for the emulated function, through the SDK's
// Lambda client.
func (r *rie) Invoker() *local.LambdaInvoker {
	client := lambda.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDRIE", "rie-ignores-signatures", ""),
		BaseEndpoint: aws.String(r.URL),
		// A fast local server makes the SDK's request-body race likely
		// (awsconf.NewHTTPClient): an invocation must not fail, or be sent
		// twice, for that.
		HTTPClient: awsconf.NewHTTPClient(),
	})
	return &local.LambdaInvoker{Client: client, Emulator: true}
}

// Invocations counts the invocations aws-lambda-rie started ("START
// RequestId: ...", one line each).
func (r *rie) Invocations() int {
	return strings.Count(r.logs.String(), "START RequestId: ")
}

// Timeouts counts the invocations aws-lambda-rie stopped at the function
// timeout ("Task timed out after N.00 seconds", rie/handlers.go).
func (r *rie) Timeouts() int {
	return strings.Count(r.logs.String(), "Task timed out after")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// lambdaEnv is what Lambda itself sets for a function (Lambda Developer
// Guide, "Defined runtime environment variables": region, the execution
// role's credentials, function name, memory, version, log format), with the
// emulator's caller credentials as the role's, AWS_ENDPOINT_URL pointing
// every SDK client at the emulator, and AWS_LAMBDA_FUNCTION_TIMEOUT, the
// function timeout aws-lambda-rie enforces (its README, "How to configure").
func lambdaEnv(emu *emulator.Server, caller, name string, timeoutSeconds, memoryMB int) map[string]string {
	akid, secret := emu.CallerCredentials(caller)
	return map[string]string{
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"AWS_ACCESS_KEY_ID":               akid,
		"AWS_SECRET_ACCESS_KEY":           secret,
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": fmt.Sprint(memoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     fmt.Sprint(timeoutSeconds),
		"AWS_LAMBDA_LOG_FORMAT":           "JSON",
		"AWS_ENDPOINT_URL":                emu.URL(),
	}
}
