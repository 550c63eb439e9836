// Command cdk is trailfill's AWS CDK app (cdk.json: "app": "go run ./cmd/cdk").
// It reads the context keys documented in docs/deploy.md and defines the
// backfill stack and, if asked, the read-role stack or StackSet.
//
// The stacks are environment-agnostic: they deploy into the account and region
// of the credentials `cdk deploy` uses, and synthesize with no credentials.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/trailfill/trailfill/stacks"
)

func main() {
	// No jsii.Close(): with jsii-runtime-go 1.139 it races the runtime's own
	// wait on the node process and prints "Runtime process exited abnormally";
	// the process ends with main anyway.
	app := awscdk.NewApp(nil)
	cfg, err := stacks.ConfigFromContext(func(key string) any {
		return app.Node().TryGetContext(jsii.String(key))
	})
	if err != nil {
		fatal(err)
	}
	if _, err := stacks.Build(app, cfg, stacks.Options{AssetDir: stacks.DefaultAssetDir}); err != nil {
		fatal(err)
	}
	app.Synth(nil)
}

// fatal reports a configuration error in one line and exits with status 2.
func fatal(err error) {
	fmt.Fprintf(os.Stderr, "trailfill cdk: %v (see docs/deploy.md)\n", err)
	os.Exit(2)
}
