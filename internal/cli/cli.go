// Package cli is the trailfill command line: one command tree (run, plan,
// start, watch, verify, reconcile, gaps, demo, gitlab serve, gitlab
// backfill, gitlab verify) whose commands
// parse and validate all of their input before they write or start
// anything, call one domain function (internal/backfill, internal/plan,
// internal/archive, internal/gitlab, ...) and print its result. Errors are
// one line on stderr saying what to do; exit codes are 0 success, 1 the job
// failed, 2 bad usage. The AWS configuration, clients, the credential and
// limiter registry and the archive store are created lazily, once, by deps.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/trailfill/trailfill/internal/clock"
	"github.com/trailfill/trailfill/internal/contract"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Env is what a command may touch of the outside world; zero fields take the
// process defaults, tests replace them.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string // os.Getenv
	Now            func() time.Time    // time.Now
	// Interactive reports whether stderr is a terminal (progress bar vs lines).
	Interactive bool
	// Clock drives the waits of a local execution (the state machine's Retry
	// delays) and of the GitLab backfill's backoff; nil is the real clock.
	// `watch` polls in real time whatever it is.
	Clock clock.Clock
	// ProgressEvery is the interval of plain progress lines (default 10 s).
	ProgressEvery time.Duration
	// Logger receives the CloudTrail commands' logs; nil: text on stderr at
	// TRAILFILL_LOG_LEVEL (default warn).
	Logger *slog.Logger
	// Ready, if set, receives the address `gitlab serve` listens on.
	Ready func(net.Addr)
}

func (e *Env) defaults() {
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Clock == nil {
		e.Clock = clock.System{}
	}
	if e.ProgressEvery == 0 {
		e.ProgressEvery = 10 * time.Second
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: e.logLevel(slog.LevelWarn)}))
	}
}

// logLevel is TRAILFILL_LOG_LEVEL (debug, info, warn, error), or def.
func (e *Env) logLevel(def slog.Level) slog.Level {
	level := def
	if v := e.Getenv(contract.EnvLogLevel); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	return level
}

// usageError marks bad input: exit code 2. Every command reports its bad
// input through usagef or by wrapping a validation error in usageError.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// failedError marks a job that ran and failed (exit 1) whose details were
// already printed.
type failedError struct{ msg string }

func (f failedError) Error() string { return f.msg }

// Main runs the trailfill command line and returns the exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	env.defaults()
	t := newTree(env, &deps{env: env})
	if err := t.root.Parse(args); err != nil {
		return t.reportParse(err)
	}
	err := t.root.Run(ctx)
	if errors.Is(err, flag.ErrHelp) {
		t.printHelp()
		return ExitOK
	}
	return report(env, err)
}

// report prints err in one line and returns its exit code.
func report(env *Env, err error) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "trailfill: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailed
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
