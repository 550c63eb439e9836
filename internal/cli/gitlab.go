package cli

import (
	"context"

	gitlabcli "github.com/trailfill/trailfill/internal/gitlab/cli"
)

// gitlabMain runs `trailfill gitlab serve|backfill`.
func gitlabMain(ctx context.Context, args []string, env *Env) int {
	return gitlabcli.Main(ctx, args, env.Stdout, env.Stderr)
}
