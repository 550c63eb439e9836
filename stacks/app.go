// Package stacks holds trailfill's AWS CDK stacks: the backfill stack (backfill
// Lambda, JSONata state machine, archive destination, failure alarm, and the
// read-role StackSet) and the read-role stack for a single account. cmd/cdk
// wires them from the app's context (see Config and docs/deploy.md).
//
// The optional GitLab receiver stack (gitlab=true) is in gitlab.go. Further
// stacks go in their own files here, each with a NewXxxStack constructor
// called from Build.
package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
)

// Options are the app inputs that are not context values.
type Options struct {
	// AssetDir holds the backfill function's bootstrap (default DefaultAssetDir).
	AssetDir string
	// GitLabAssetDir holds the GitLab receiver's bootstrap (default
	// DefaultGitLabAssetDir); used with gitlab=true.
	GitLabAssetDir string
}

// App is what Build defined.
type App struct {
	Backfill *BackfillStack
	ReadRole awscdk.Stack // the read-role stack (readRoles=stack or readRoleStack=true)
	GitLab   *GitLabStack // the GitLab receiver stack (gitlab=true)
}

// Build defines every stack of the configuration in scope (the CDK app).
func Build(scope constructs.Construct, cfg Config, opts Options) (*App, error) {
	if opts.AssetDir == "" {
		opts.AssetDir = DefaultAssetDir
	}
	props := BackfillStackProps{Config: cfg, AssetDir: opts.AssetDir}
	if cfg.ReadRoles == ReadRolesStackSetOrg || cfg.ReadRoles == ReadRolesStackSetAccounts {
		tmpl, err := ReadRoleTemplate()
		if err != nil {
			return nil, err
		}
		props.ReadRoleTemplate = tmpl
	}
	a := &App{}
	var err error
	if a.Backfill, err = NewBackfillStack(scope, props); err != nil {
		return nil, err
	}
	if cfg.ReadRoleStack {
		a.ReadRole = NewReadRoleStack(scope, cfg)
	}
	if cfg.GitLab.Enabled {
		if opts.GitLabAssetDir == "" {
			opts.GitLabAssetDir = DefaultGitLabAssetDir
		}
		// The receiver writes into the backfill stack's archive (a new bucket
		// is referenced across the stacks).
		gp := GitLabStackProps{Config: cfg, AssetDir: opts.GitLabAssetDir}
		if a.Backfill.Bucket != nil {
			gp.Bucket = a.Backfill.Bucket
		}
		if a.GitLab, err = NewGitLabStack(scope, gp); err != nil {
			return nil, err
		}
	}
	return a, nil
}
