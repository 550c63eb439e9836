package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/trailfill/trailfill/internal/contract"
)

// The command tree is ffcli's (github.com/peterbourgon/ff/v3/ffcli): one
// node per command with its own flag set, usage and examples. Flags are not
// mirrored by environment variables wholesale: TRAILFILL_STACK is the
// default of --stack (it always was), and the rest of TRAILFILL_* is the
// deployed Lambda's environment (TRAILFILL_RATE, TRAILFILL_ROLE_NAME,
// TRAILFILL_ORG_ID), which must not silently change what a launcher command
// does, nor turn into flags that `start` refuses because the stack decides
// them.

// tree is the command tree of one Main call.
type tree struct {
	env   *Env
	deps  *deps
	root  *ffcli.Command
	paths map[*ffcli.Command]string // "trailfill gitlab serve"
	sink  *usageSink
}

// usageSink is the output of every flag set of the tree. The flag package
// writes a parse error and then the usage, or for -h the usage alone; the
// sink keeps the last write and who made it, so Main prints one line for an
// error and the usage of the right command for -h.
type usageSink struct {
	who  *ffcli.Command
	last string
}

type sinkWriter struct {
	s *usageSink
	c *ffcli.Command
}

func (w sinkWriter) Write(p []byte) (int, error) {
	w.s.who, w.s.last = w.c, string(p)
	return len(p), nil
}

// command is one node of the tree.
type command struct {
	name       string
	shortUsage string // after "trailfill ": "run --start T --end T [flags]"
	shortHelp  string // one line, in the parent's list
	longHelp   string // paragraphs and examples
	flags      func(fs *flag.FlagSet)
	exec       func(ctx context.Context, args []string) error
	subs       []*ffcli.Command
}

// add builds a node under parent ("" for the root).
func (t *tree) add(parent string, c command) *ffcli.Command {
	path := strings.TrimSpace(parent + " " + c.name)
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	if c.flags != nil {
		c.flags(fs)
	}
	node := &ffcli.Command{
		Name:        c.name,
		ShortUsage:  strings.TrimSpace(parent + " " + c.shortUsage),
		ShortHelp:   c.shortHelp,
		LongHelp:    c.longHelp,
		FlagSet:     fs,
		Subcommands: c.subs,
		UsageFunc:   usageText,
		Exec:        c.exec,
	}
	fs.SetOutput(sinkWriter{t.sink, node})
	t.paths[node] = path
	return node
}

// usageText is the -h text of a command.
func usageText(c *ffcli.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n", c.ShortUsage)
	if c.ShortHelp != "" {
		fmt.Fprintf(&b, "\n%s\n", c.ShortHelp)
	}
	if len(c.Subcommands) > 0 {
		fmt.Fprintf(&b, "\nCommands:\n")
		tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
		for _, s := range c.Subcommands {
			fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.ShortHelp)
		}
		_ = tw.Flush()
	}
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(c.LongHelp, "\n"))
	}
	n := 0
	c.FlagSet.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(&b, "\nFlags:\n")
		out := c.FlagSet.Output()
		c.FlagSet.SetOutput(&b)
		c.FlagSet.PrintDefaults()
		c.FlagSet.SetOutput(out)
	}
	return b.String()
}

// reportParse reports a failure to parse the command line: -h prints the
// usage (exit 0), anything else is a one-line usage error.
func (t *tree) reportParse(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		t.printHelp()
		return ExitOK
	}
	// ff wraps the flag package's error; the inner one is what a user needs.
	const ffPrefix = "error parsing commandline arguments: "
	if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), ffPrefix) {
		err = inner
	}
	path := "trailfill"
	if t.sink.who != nil {
		path = t.paths[t.sink.who]
	}
	return report(t.env, usagef("%v (see %s -h)", err, path))
}

// printHelp prints the usage the last -h asked for: the root's on stdout,
// a command's on stderr.
func (t *tree) printHelp() {
	w := t.env.Stderr
	if t.sink.who == nil || t.sink.who == t.root {
		w = t.env.Stdout
	}
	if t.sink.who == nil {
		fmt.Fprint(w, usageText(t.root))
		return
	}
	fmt.Fprint(w, strings.TrimRight(t.sink.last, "\n")+"\n")
}

// parseInterspersed parses fs over args that may mix flags and positional
// arguments (EXECUTION --interval 5s) and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v (see %s -h)", err, fs.Name())
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// noArgs refuses positional arguments of a command that takes flags only.
func noArgs(name string, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q: %s takes flags only (see trailfill %s -h)", args[0], name, name)
	}
	return nil
}

// newTree builds the command tree.
func newTree(env *Env, d *deps) *tree {
	t := &tree{env: env, deps: d, paths: map[*ffcli.Command]string{}, sink: &usageSink{}}
	var gitlab *ffcli.Command
	gitlab = t.add("trailfill", command{
		name:       "gitlab",
		shortUsage: "gitlab serve|backfill|verify [flags]",
		shortHelp:  "GitLab audit events: streaming receiver, REST backfill and verification (docs/gitlab.md)",
		longHelp: `  trailfill gitlab serve    --token-file FILE [--listen ADDR] [--out DIR|s3://bucket/prefix]
                            [--source NAME] [--max-body BYTES] [--tls-cert FILE --tls-key FILE]
  trailfill gitlab backfill --url URL (--group G | --project P | --instance) --start T --end T
                            [--out DIR|s3://bucket/prefix] [--source NAME] [--window 24h]
                            [--concurrency N] [--rps N] [--json]
  trailfill gitlab verify   (--group G | --project P | --instance) --start T --end T
                            [--out DIR|s3://bucket/prefix] [--layout default|gitlab-s3] [--json]
The backfill reads its API token from ` + contract.EnvGitLabToken + `. Times are RFC 3339 (2025-04-17T15:00:00Z).
Run "trailfill gitlab <command> -h" for the flags.`,
		exec: func(_ context.Context, args []string) error {
			if len(args) == 0 {
				return usagef("missing command after gitlab: use %s (see trailfill gitlab -h)", commandNames(gitlab))
			}
			return usagef("unknown command %q after gitlab: use %s (see trailfill gitlab -h)", args[0], commandNames(gitlab))
		},
		subs: []*ffcli.Command{t.gitlabServe(), t.gitlabBackfill(), t.gitlabVerify()},
	})
	t.root = t.add("", command{
		name:       "trailfill",
		shortUsage: "trailfill <command> [flags]",
		shortHelp:  "trailfill recovers CloudTrail management events (last 90 days) into the native trail layout.",
		longHelp:   rootHelp,
		subs:       []*ffcli.Command{t.run(), t.plan(), t.start(), t.watch(), t.verify(), t.reconcile(), t.gaps(), t.demo(), gitlab},
		exec:       t.rootExec,
	})
	return t
}

const rootHelp = `Times are RFC 3339 (2025-04-17T15:00:00Z); a range is [start, end). AWS settings
come from the SDK's standard configuration (--profile/AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL[_<SERVICE>]); TRAILFILL_STACK is the default of --stack and
TRAILFILL_LOG_LEVEL=info prints one line per partition invocation.
Exit codes: 0 success, 1 the job failed, 2 bad usage (nothing written or started).
Run "trailfill <command> -h" for a command's flags and examples.

Examples:
  trailfill demo
  trailfill run   --trail org-trail --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z
  trailfill gaps  --trail org-trail
  trailfill plan  --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --accounts 111111111111 --events-per-hour 2000
  trailfill run   --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --out s3://my-trail-bucket
  trailfill start --start 2025-04-17T15:00:00Z --end 2025-04-19T00:00:00Z --accounts 111111111111,222222222222 --watch`

// rootExec is `trailfill` with no command, `trailfill help [command]` or an
// unknown command.
func (t *tree) rootExec(_ context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(t.env.Stderr, usageText(t.root))
		return usagef("missing command: use %s", commandNames(t.root))
	}
	if args[0] == "help" {
		node := t.root
		for _, name := range args[1:] {
			next := subcommand(node, name)
			if next == nil {
				return usagef("no command %q: use %s", strings.Join(args[1:], " "), commandNames(t.root))
			}
			node = next
		}
		fmt.Fprint(t.env.Stdout, usageText(node))
		return nil
	}
	return usagef("unknown command %q: use %s", args[0], commandNames(t.root))
}

// commandNames lists a node's subcommands for an error: "a, b or c".
func commandNames(c *ffcli.Command) string {
	names := make([]string, len(c.Subcommands))
	for i, sub := range c.Subcommands {
		names[i] = sub.Name
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func subcommand(c *ffcli.Command, name string) *ffcli.Command {
	for _, s := range c.Subcommands {
		if s.Name == name {
			return s
		}
	}
	return nil
}
