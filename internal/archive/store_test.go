package archive_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/archive/storetest"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
)

func TestStoreContract(t *testing.T) {
	t.Parallel()
	t.Run("local folder", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, storetest.Options{}, func(t *testing.T) archive.Store {
			s, err := archive.NewLocalStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	emu := testkit.StartEmulator(t, emulator.Config{})
	emu.AddAccount("111111111111")
	client := awsconf.NewS3(testkit.AWSConfig(t, emu, "111111111111"))
	var buckets atomic.Int64
	bucket := func(t *testing.T, policy *emulator.S3Policy) string {
		name := fmt.Sprintf("archive-%d", buckets.Add(1))
		if err := emu.CreateBucket(name); err != nil {
			t.Fatal(err)
		}
		if policy != nil {
			emu.SetS3Policy(name, *policy)
		}
		return name
	}

	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, storetest.Options{}, func(t *testing.T) archive.Store {
			s, err := archive.Open(archive.Destination{Bucket: bucket(t, nil), Prefix: "org/trails"}, client, archive.S3Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	t.Run("s3 with the deployed role's permissions and a KMS key", func(t *testing.T) {
		t.Parallel()
		const key = "arn:aws:kms:us-east-1:111111111111:key/0b8f5cbb-7d2a-4c6e-9a61-3f1c4a3a2b10"
		storetest.Run(t, storetest.Options{MissingKeyForbidden: true}, func(t *testing.T) archive.Store {
			name := bucket(t, &emulator.S3Policy{
				CreateOnlyPrefixes:  []string{"org/AWSLogs/"},
				ListPrefixes:        []string{"org/AWSLogs/", "org/trailfill/"},
				MissingKeyForbidden: true,
				RequireACL:          "bucket-owner-full-control",
				RequireSSEKMSKey:    key,
			})
			s, err := archive.Open(archive.Destination{Bucket: name, Prefix: "org"}, client, archive.S3Options{KMSKeyID: key})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
		t.Cleanup(func() {
			// Every write sends the ACL and the key, and nothing under
			// AWSLogs/ is replaced: the only refusals are the reads of a
			// missing key the suite asks for.
			for _, r := range emu.S3Refusals() {
				if r.Reason != emulator.RefusedMissingKey {
					t.Errorf("refused: %+v", r)
				}
			}
		})
	})
}
