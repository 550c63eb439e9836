package stacks

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/statemachine"
)

func ctx(kv map[string]any) func(string) any {
	return func(k string) any { return kv[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := ConfigFromContext(ctx(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		StackName: "trailfill", ReadRoleName: contract.DefaultRoleName, ReadRoles: ReadRolesNone,
		TargetRegion: "us-east-1", StackSetCallAs: "SELF", ObjectLockMode: "GOVERNANCE",
		MemoryMB: 1024, LogRetentionDays: 365,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.LambdaRoleName() != "trailfill-backfill" || c.StateMachineName() != "trailfill-backfill" || c.ReadRoleStackName() != "trailfill-read-role" {
		t.Fatalf("names: %s %s %s", c.LambdaRoleName(), c.StateMachineName(), c.ReadRoleStackName())
	}
}

func TestConfigJSONTypes(t *testing.T) {
	// cdk.json gives JSON types; -c gives strings.
	c, err := ConfigFromContext(ctx(map[string]any{
		KeyReadRoles:      "stackset-accounts",
		KeyTargetAccounts: []any{"111122223333", "444455556666"},
		KeyMemoryMB:       float64(2048),
		KeyObjectLock:     true,
		KeyObjectLockDays: "30",
		KeyRate:           float64(1.5),
		KeyPrefix:         "/cloudtrail/",
		KeyOrgID:          "o-abcdefghij",
		KeyOrgTrail:       "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.TargetAccounts, []string{"111122223333", "444455556666"}) || c.MemoryMB != 2048 ||
		!c.ObjectLock || c.ObjectLockDays != 30 || c.Rate != 1.5 || c.Prefix != "cloudtrail" || c.OrgTrail {
		t.Fatalf("parsed %+v", c)
	}
	c, err = ConfigFromContext(ctx(map[string]any{KeyOrgID: "o-abcdefghij"}))
	if err != nil || !c.OrgTrail {
		t.Fatalf("orgId alone should select the organization-trail layout: %+v %v", c, err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		kv   map[string]any
		want string
	}{
		{"bad stack name", map[string]any{KeyStackName: "1trail"}, "stackName"},
		{"long stack name", map[string]any{KeyStackName: strings.Repeat("a", 41)}, "stackName"},
		{"bucket url", map[string]any{KeyBucketName: "s3://bucket"}, "bucketName"},
		{"prefix inside AWSLogs", map[string]any{KeyPrefix: "logs/AWSLogs/123"}, "before AWSLogs/"},
		{"kms alias", map[string]any{KeyKMSKeyArn: "alias/trail"}, "kmsKeyArn"},
		{"object lock on existing bucket", map[string]any{KeyBucketName: "trail-bucket", KeyObjectLock: true}, "existing bucket"},
		{"lock days without lock", map[string]any{KeyObjectLockDays: "7"}, "objectLock=true"},
		{"org id", map[string]any{KeyOrgID: "org-1"}, "organization ID"},
		{"org trail without org", map[string]any{KeyOrgTrail: true}, "orgId"},
		{"role name", map[string]any{KeyReadRoleName: "bad name"}, "readRoleName"},
		{"mode", map[string]any{KeyReadRoles: "stackset"}, "readRoles"},
		{"org mode needs OUs", map[string]any{KeyReadRoles: "stackset-org", KeyOrgID: "o-abcdefghij"}, "targetOuIds"},
		{"org mode needs org", map[string]any{KeyReadRoles: "stackset-org", KeyTargetOUIDs: "r-ab12"}, "orgId"},
		{"bad OU", map[string]any{KeyReadRoles: "stackset-org", KeyOrgID: "o-abcdefghij", KeyTargetOUIDs: "ou-1"}, "ou-1"},
		{"accounts mode needs accounts", map[string]any{KeyReadRoles: "stackset-accounts"}, "targetAccounts"},
		{"bad account", map[string]any{KeyReadRoles: "stackset-accounts", KeyTargetAccounts: "1234"}, "1234"},
		{"targets without mode", map[string]any{KeyTargetAccounts: "111122223333"}, "readRoles=none"},
		{"two regions", map[string]any{KeyTargetRegion: "us-east-1,eu-west-1"}, "one region"},
		{"stack mode needs role", map[string]any{KeyReadRoles: "stack"}, "backfillRoleArn"},
		{"read-role stack needs role", map[string]any{KeyReadRoleStack: "true"}, "backfillRoleArn"},
		{"role without read-role stack", map[string]any{KeyBackfillRoleArn: "arn:aws:iam::111122223333:role/trailfill-backfill-us-east-1"}, "readRoleStack=true"},
		{"stack mode with targets", map[string]any{KeyReadRoles: "stack", KeyBackfillRoleArn: "arn:aws:iam::111122223333:role/trailfill-backfill-us-east-1", KeyTargetOUIDs: "r-ab12"}, "readRoleStack=true"},
		{"backfill role arn", map[string]any{KeyReadRoles: "stack", KeyBackfillRoleArn: "trailfill-backfill"}, "backfillRoleArn"},
		{"local principal sts", map[string]any{KeyLocalPrincipalArn: "arn:aws:sts::111122223333:assumed-role/x/y"}, "localPrincipalArn"},
		{"rate", map[string]any{KeyRate: "3"}, "at most 2"},
		{"memory", map[string]any{KeyMemoryMB: "64"}, "memoryMb"},
		{"retention", map[string]any{KeyLogRetentionDays: "10"}, "logRetentionDays"},
		{"email", map[string]any{KeyAlarmEmail: "nobody"}, "alarmEmail"},
		{"topic", map[string]any{KeyAlarmTopicArn: "arn:aws:sqs:us-east-1:111122223333:q"}, "alarmTopicArn"},
		{"delegated admin self-managed", map[string]any{KeyReadRoles: "stackset-accounts", KeyTargetAccounts: "111122223333", KeyStackSetCallAs: "DELEGATED_ADMIN"}, "SELF"},
		{"read accounts", map[string]any{KeyReadAccounts: "111122223333,x"}, "readAccounts"},
		{"list of numbers", map[string]any{KeyTargetAccounts: []any{float64(1)}}, "strings"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConfigFromContext(ctx(tc.kv))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			var ce configErrors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("not a configErrors: %T", err)
			}
		})
	}
}

func TestConfigValidModes(t *testing.T) {
	for _, kv := range []map[string]any{
		{KeyReadRoles: "stackset-org", KeyOrgID: "o-abcdefghij", KeyTargetOUIDs: "r-ab12,ou-ab12-abcdefgh", KeyStackSetCallAs: "DELEGATED_ADMIN"},
		{KeyReadRoles: "stackset-accounts", KeyTargetAccounts: "111122223333", KeyStackSetAdminRole: "arn:aws:iam::111122223333:role/Admin", KeyStackSetExecRole: "Exec"},
		// The management account's read role next to an organization configuration.
		{KeyReadRoles: "stackset-org", KeyOrgID: "o-abcdefghij", KeyTargetOUIDs: "r-ab12", KeyStackSetCallAs: "DELEGATED_ADMIN",
			KeyReadRoleStack: "true", KeyBackfillRoleArn: "arn:aws:iam::111122223333:role/trailfill-backfill-us-east-1"},
		{KeyReadRoles: "stack", KeyBackfillRoleArn: "arn:aws:iam::111122223333:role/trailfill-backfill-us-east-1", KeyLocalPrincipalArn: "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*"},
		{KeyBucketName: "org-trail-logs.example", KeyPrefix: "org", KeyKMSKeyArn: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", KeyAlarmEmail: "sec@example.com", KeyReservedConcurrency: "50"},
	} {
		if _, err := ConfigFromContext(ctx(kv)); err != nil {
			t.Errorf("%v: %v", kv, err)
		}
	}
}

func TestDistributedMapLabels(t *testing.T) {
	got, err := distributedMapLabels(statemachine.Definition)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"Partition"}) {
		t.Fatalf("labels of backfill.asl.json: %v", got)
	}
	got, _ = distributedMapLabels(`{"States":{"M":{"Type":"Map","ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED"},"States":{}}}}}`)
	if !reflect.DeepEqual(got, []string{"*"}) {
		t.Fatalf("unlabelled map: %v", got)
	}
	if _, err := distributedMapLabels("{"); err == nil {
		t.Fatal("bad JSON accepted")
	}
}

func TestArchiveFolders(t *testing.T) {
	// The function's S3 permissions cover these folders: the manifests must be
	// inside ManifestFolder.
	if !strings.HasPrefix(archive.ManifestRoot, ManifestFolder) {
		t.Fatalf("archive.ManifestRoot %q is outside %q: widen the function's S3 permissions", archive.ManifestRoot, ManifestFolder)
	}
}

func TestCheckAsset(t *testing.T) {
	dir := t.TempDir()
	if err := checkAsset(dir); err == nil || !strings.Contains(err.Error(), "make build-lambda") {
		t.Fatalf("missing bootstrap: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkAsset(dir); err == nil {
		t.Fatal("non-executable bootstrap accepted")
	}
	if err := os.Chmod(filepath.Join(dir, "bootstrap"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkAsset(dir); err != nil {
		t.Fatal(err)
	}
}

func TestAccountOfArn(t *testing.T) {
	if a := accountOfArn("arn:aws:iam::111122223333:role/x"); a != "111122223333" {
		t.Fatal(a)
	}
	if a := accountOfArn("nope"); a != "" {
		t.Fatal(a)
	}
}
