// Package e2e runs the real Lambda bootstraps (functions/backfill and
// functions/gitlab-receiver, built as `make build-lambda` builds them but for
// the host) under the AWS Lambda Runtime Interface Emulator (aws-lambda-rie),
// against the project's emulators on 127.0.0.1: the backfill state machine's
// Task bound to the Lambda Invoke API (local.LambdaInvoker), and the GitLab
// receiver invoked with Function URL events.
//
// The tests carry the build tag lambdae2e, so `go test ./...` skips them;
// `make lambda-e2e` installs aws-lambda-rie, builds the bootstraps and runs
//
//	go test -tags lambdae2e -race ./internal/e2e/...
//
// with TRAILFILL_E2E_RIE, TRAILFILL_E2E_BACKFILL_BOOTSTRAP and
// TRAILFILL_E2E_GITLAB_BOOTSTRAP naming the binaries. aws-lambda-rie runs on
// Linux only.
//
// The tests tagged e2e run the launcher (bin/trailfill, built by the test) as
// separate processes against the emulators, as operators run it beside each
// other: a run paused with SIGSTOP while another archives the range, a run
// killed in the middle of a window. `make e2e` runs both kinds.
package e2e
