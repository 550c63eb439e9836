// Package cli implements the trailfill command: run, plan, start, watch, verify,
// demo and gitlab. Each command validates all of its input before it writes or
// starts anything; errors are one line on stderr saying what to do; exit codes
// are 0 success, 1 the job failed, 2 bad usage.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/trailfill/trailfill/statemachine/local"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Env is what a command may touch of the outside world; tests replace parts of it.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Now            func() time.Time
	// Interactive reports whether stderr is a terminal (progress bar vs lines).
	Interactive bool
	// Clock drives the local state machine's Retry waits; nil means real time.
	Clock local.Clock
	// ProgressEvery is the interval of plain progress lines (default 10 s).
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// usageError marks bad input: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// failedError marks a job that ran and failed (exit 1) whose details were already
// printed.
type failedError struct{ msg string }

func (f failedError) Error() string { return f.msg }

const usage = `trailfill recovers CloudTrail management events (last 90 days) into the native trail layout.

Usage:
  trailfill run    --start T --end T [--accounts A,B] [--regions R1,R2|all] [--role-name N]
                   [--out DIR|s3://bucket/prefix] [--org-id o-...] [--no-lookback-limit]
  trailfill plan   <range flags> [--json]
  trailfill start  <range flags> [--stack NAME] [--dry-run] [--watch] [--name N] [--max-concurrency N]
  trailfill watch  EXECUTION [--stack NAME] [--interval 5s]
  trailfill verify [--out DIR|s3://bucket/prefix | --stack NAME] <range flags> [--regions ...|archived] [--json]
  trailfill demo   [--dir DIR]
  trailfill gitlab serve|backfill ...

Times are RFC 3339 (2025-04-17T15:00:00Z); the range is [start, end). AWS settings come
from the SDK's standard configuration (--profile/AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL_<SERVICE>). Run "trailfill <command> -h" for a command's flags.
`

// Main runs the trailfill command line and returns the exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	env.defaults()
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return ExitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(ctx, env, rest)
	case "plan":
		err = cmdPlan(ctx, env, rest)
	case "start":
		err = cmdStart(ctx, env, rest)
	case "watch":
		err = cmdWatch(ctx, env, rest)
	case "verify":
		err = cmdVerify(ctx, env, rest)
	case "demo":
		err = cmdDemo(ctx, env, rest)
	case "gitlab":
		return gitlabMain(ctx, rest, env)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(env.Stderr, "trailfill: unknown command %q: use run, plan, start, watch, verify, demo or gitlab\n", cmd)
		return ExitUsage
	}
	return report(env, err)
}

func report(env *Env, err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "trailfill: %s\n", oneLine(ue.Error()))
		return ExitUsage
	}
	var fe failedError
	if errors.As(err, &fe) {
		fmt.Fprintf(env.Stderr, "trailfill: %s\n", oneLine(fe.msg))
		return ExitFailed
	}
	fmt.Fprintf(env.Stderr, "trailfill: %s\n", oneLine(err.Error()))
	return ExitFailed
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
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
	if e.ProgressEvery == 0 {
		e.ProgressEvery = 10 * time.Second
	}
	if e.Logger == nil {
		// TRAILFILL_LOG_LEVEL=info (or debug) shows per-partition details.
		level := slog.LevelWarn
		_ = level.UnmarshalText([]byte(e.Getenv("TRAILFILL_LOG_LEVEL")))
		e.Logger = slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: level}))
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("trailfill "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		// Output is io.Discard while parsing (errors are reported in one line by
		// the caller) and stderr for -h.
		fmt.Fprintf(fs.Output(), "Usage: trailfill %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; a parse failure is a usage error (the flag package has
// already printed it).
func parse(env *Env, fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(env.Stderr)
		fs.Usage()
		return err
	}
	if err != nil {
		return usagef("%v (see trailfill %s -h)", err, strings.TrimPrefix(fs.Name(), "trailfill "))
	}
	return nil
}
