package cli

import (
	"context"
)

func cmdPlan(ctx context.Context, env *Env, args []string) error {
	return usagef("plan is not built yet")
}

func cmdStart(ctx context.Context, env *Env, args []string) error {
	return usagef("start is not built yet")
}

func cmdWatch(ctx context.Context, env *Env, args []string) error {
	return usagef("watch is not built yet")
}

func cmdVerify(ctx context.Context, env *Env, args []string) error {
	return usagef("verify is not built yet")
}
