package stacks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
)

func TestZZDump(t *testing.T) {
	t.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	for name, kv := range map[string]map[string]any{
		"new":      {KeyGitLab: "true", KeyPrefix: "audit", KeyKMSKeyArn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
		"existing": {KeyGitLab: true, KeyBucketName: "org-trail-logs", KeyGitLabSource: "gitlab-com", KeyGitLabTokensParam: "gl-tokens", KeyGitLabTokensKMSKeyArn: "arn:aws:kms:eu-west-1:111122223333:key/abcd"},
	} {
		cfg, err := ConfigFromContext(ctx(kv))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
		app := awscdk.NewApp(nil)
		a, err := Build(app, cfg, Options{AssetDir: dir, GitLabAssetDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for stname, st := range map[string]awscdk.Stack{"gitlab": a.GitLab.Stack, "backfill": a.Backfill.Stack} {
			b, _ := json.MarshalIndent(*assertions.Template_FromStack(st, nil).ToJSON(), "", " ")
			os.WriteFile("/tmp/glsynth/"+name+"-"+stname+".json", b, 0o644)
		}
	}
}
