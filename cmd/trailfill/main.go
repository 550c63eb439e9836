// Command trailfill recovers CloudTrail management events (and GitLab audit
// events) into an archive in the native layout. See `trailfill -h`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/trailfill/trailfill/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Interactive: term.IsTerminal(int(os.Stderr.Fd()))})
	stop()
	os.Exit(code)
}
