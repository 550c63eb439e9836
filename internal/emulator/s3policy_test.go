package emulator

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	archive  = "archive"
	trailKey = "AWSLogs/111111111111/CloudTrail/us-east-1/2025/04/17/111111111111_CloudTrail_us-east-1_20250417T1505Z_abcdefghijklmnop.json.gz"
	kmsKey   = "arn:aws:kms:us-east-1:111111111111:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
)

// s3Env is a server with bucket "archive" under a policy, and an S3
// client of account A.
func s3Env(t *testing.T, p S3Policy) (*Server, *s3.Client) {
	t.Helper()
	s := start(t, fast())
	if err := s.CreateBucket(archive); err != nil {
		t.Fatal(err)
	}
	s.SetS3Policy(archive, p)
	return s, s3Client(awsConfig(s, acctA, "us-east-1"))
}

// put uploads body to archive/key with optional changes to the input.
func put(c *s3.Client, key, body string, opts ...func(*s3.PutObjectInput)) error {
	in := &s3.PutObjectInput{Bucket: aws.String(archive), Key: aws.String(key), Body: strings.NewReader(body)}
	for _, o := range opts {
		o(in)
	}
	_, err := c.PutObject(context.Background(), in)
	return err
}

func ifNoneMatch(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }

// wantAPIError checks an error's code and HTTP status.
func wantAPIError(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s %d", what, code, status)
		return
	}
	if c, st := apiCode(t, err); c != code || st != status {
		t.Errorf("%s: %s %d, want %s %d (%v)", what, c, st, code, status, err)
	}
}

// wantRefusals checks the refusals recorded, as "Op Key Reason".
func wantRefusals(t *testing.T, s *Server, want ...string) {
	t.Helper()
	var got []string
	for _, r := range s.S3Refusals() {
		got = append(got, r.Op+" "+r.Key+" "+r.Reason)
		if r.Bucket != archive || r.Caller != "arn:aws:iam::"+acctA+":user/trailfill-emulator" {
			t.Errorf("refusal %v: wrong bucket or caller", r)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("refusals:\n got %q\nwant %q", got, want)
	}
}

func TestS3PolicyCreateOnly(t *testing.T) {
	t.Parallel()
	createOnly := S3Policy{CreateOnlyPrefixes: []string{"AWSLogs/"}}
	ctx := context.Background()

	t.Run("unconditional put refused", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		wantAPIError(t, "put", put(c, trailKey, "native"), "AccessDenied", 403)
		if _, ok := s.S3Object(archive, trailKey); ok {
			t.Error("refused put stored the object")
		}
		wantRefusals(t, s, "PutObject "+trailKey+" create-only")
	})
	t.Run("conditional put creates once", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		if err := put(c, trailKey, "first", ifNoneMatch); err != nil {
			t.Fatal(err)
		}
		wantAPIError(t, "second put", put(c, trailKey, "second", ifNoneMatch), "PreconditionFailed", 412)
		if got, _ := s.S3Object(archive, trailKey); string(got) != "first" {
			t.Errorf("object = %q", got)
		}
		wantRefusals(t, s)
	})
	t.Run("outside the prefixes anything goes", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		for _, body := range []string{"v1", "v2"} {
			if err := put(c, "trailfill/manifests/w.json", body); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(archive), Key: aws.String("trailfill/manifests/w.json")}); err != nil {
			t.Fatal(err)
		}
		wantRefusals(t, s)
	})
	t.Run("delete refused", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		if err := put(c, trailKey, "native", ifNoneMatch); err != nil {
			t.Fatal(err)
		}
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(archive), Key: aws.String(trailKey)})
		wantAPIError(t, "delete", err, "AccessDenied", 403)
		if _, ok := s.S3Object(archive, trailKey); !ok {
			t.Error("refused delete removed the object")
		}
		wantRefusals(t, s, "DeleteObject "+trailKey+" create-only")
	})
	t.Run("delete objects refuses per key", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		keys := []string{trailKey, "trailfill/claims/a", "AWSLogs/x", "trailfill/claims/b"}
		for _, k := range keys {
			if err := put(c, k, "x", ifNoneMatch); err != nil {
				t.Fatal(err)
			}
		}
		var objs []types.ObjectIdentifier
		for _, k := range keys {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(k)})
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(archive), Delete: &types.Delete{Objects: objs}})
		if err != nil {
			t.Fatal(err)
		}
		var deleted, failed []string
		for _, d := range out.Deleted {
			deleted = append(deleted, aws.ToString(d.Key))
		}
		for _, e := range out.Errors {
			failed = append(failed, aws.ToString(e.Key)+"="+aws.ToString(e.Code))
		}
		slices.Sort(deleted)
		slices.Sort(failed)
		if want := []string{"trailfill/claims/a", "trailfill/claims/b"}; !slices.Equal(deleted, want) {
			t.Errorf("deleted %v, want %v", deleted, want)
		}
		if want := []string{trailKey + "=AccessDenied", "AWSLogs/x=AccessDenied"}; !slices.Equal(failed, want) {
			t.Errorf("errors %v, want %v", failed, want)
		}
		if got := s.S3Keys(archive, ""); !slices.Equal(got, []string{trailKey, "AWSLogs/x"}) {
			t.Errorf("left %v", got)
		}
		wantRefusals(t, s, "DeleteObjects "+trailKey+" create-only", "DeleteObjects AWSLogs/x create-only")

		// Quiet mode reports only the errors.
		out, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(archive), Delete: &types.Delete{Objects: objs[:1], Quiet: aws.Bool(true)}})
		if err != nil || len(out.Deleted) != 0 || len(out.Errors) != 1 {
			t.Errorf("quiet: %v, %d deleted, %d errors", err, len(out.Deleted), len(out.Errors))
		}
	})
	t.Run("copy onto a create-only key refused", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		if err := put(c, "staging/piece", "piece"); err != nil {
			t.Fatal(err)
		}
		_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(archive), Key: aws.String(trailKey), CopySource: aws.String(archive + "/staging/piece")})
		wantAPIError(t, "copy", err, "AccessDenied", 403)
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(archive), Key: aws.String(trailKey), CopySource: aws.String(archive + "/staging/piece"), IfNoneMatch: aws.String("*")})
		wantAPIError(t, "conditional copy", err, "NotImplemented", 501)
		if _, ok := s.S3Object(archive, trailKey); ok {
			t.Error("refused copy stored the object")
		}
		// Copies elsewhere work.
		if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(archive), Key: aws.String("staging/copy"), CopySource: aws.String(archive + "/staging/piece")}); err != nil {
			t.Fatal(err)
		}
		wantRefusals(t, s, "CopyObject "+trailKey+" create-only", "CopyObject "+trailKey+" create-only")
	})
	t.Run("multipart completes only conditionally", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		type started struct{ id, etag *string }
		upload := func() started {
			mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(archive), Key: aws.String(trailKey)})
			if err != nil {
				t.Fatal(err)
			}
			part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(archive), Key: aws.String(trailKey), UploadId: mp.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("part"))})
			if err != nil {
				t.Fatal(err)
			}
			return started{mp.UploadId, part.ETag}
		}
		complete := func(u started, inm *string) error {
			_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
				Bucket: aws.String(archive), Key: aws.String(trailKey), UploadId: u.id, IfNoneMatch: inm,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: u.etag}}},
			})
			return err
		}
		id := upload()
		wantAPIError(t, "unconditional complete", complete(id, nil), "AccessDenied", 403)
		if err := complete(id, aws.String("*")); err != nil {
			t.Fatalf("conditional complete: %v", err)
		}
		if got, _ := s.S3Object(archive, trailKey); string(got) != "part" {
			t.Errorf("object = %q", got)
		}
		wantAPIError(t, "complete onto an existing key", complete(upload(), aws.String("*")), "PreconditionFailed", 412)
		wantRefusals(t, s, "CompleteMultipartUpload "+trailKey+" create-only")
	})
	t.Run("AppliesTo exempts other callers", func(t *testing.T) {
		t.Parallel()
		p := createOnly
		p.AppliesTo = func(id Identity) bool { return id.Account == acctA }
		s, c := s3Env(t, p)
		if err := put(c, trailKey, "ours", ifNoneMatch); err != nil {
			t.Fatal(err)
		}
		operator := s3Client(awsConfig(s, acctB, "us-east-1"))
		if _, err := operator.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(archive), Key: aws.String(trailKey)}); err != nil {
			t.Fatalf("operator delete: %v", err)
		}
		if _, ok := s.S3Object(archive, trailKey); ok {
			t.Error("operator delete left the object")
		}
		wantRefusals(t, s)
	})
	t.Run("SetS3Policy replaces and clears", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, createOnly)
		s.SetS3Policy(archive, S3Policy{})
		if err := put(c, trailKey, "x"); err != nil {
			t.Errorf("put after clearing: %v", err)
		}
		wantRefusals(t, s)
	})
}

func TestS3PolicyListPrefixes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name     string
		policy   []string
		prefix   *string
		v1       bool
		refused  bool
		wantKeys int
	}{
		{"under a prefix", []string{"AWSLogs/", "trailfill/"}, aws.String("AWSLogs/111111111111/"), false, false, 2},
		{"exactly a prefix", []string{"AWSLogs/"}, aws.String("AWSLogs/"), false, false, 3},
		{"no prefix parameter", []string{"AWSLogs/"}, nil, false, true, 0},
		{"empty prefix", []string{"AWSLogs/"}, aws.String(""), false, true, 0},
		{"outside the prefixes", []string{"AWSLogs/"}, aws.String("trailfill/"), false, true, 0},
		{"shorter than a prefix", []string{"AWSLogs/"}, aws.String("AWS"), false, true, 0},
		{"ListObjects v1 outside", []string{"AWSLogs/"}, aws.String("other/"), true, true, 0},
		{"ListObjects v1 under", []string{"AWSLogs/"}, aws.String("AWSLogs/2"), true, false, 1},
		{"StringLike wildcard", []string{"AWSLogs/*/CloudTrail/"}, aws.String("AWSLogs/111111111111/CloudTrail/us-east-1/"), false, false, 2},
		{"StringLike wildcard mismatch", []string{"AWSLogs/*/CloudTrail/"}, aws.String("AWSLogs/111111111111/CloudTrail-Digest/"), false, true, 0},
		{"nil list unrestricted", nil, nil, false, false, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := s3Env(t, S3Policy{ListPrefixes: tc.policy})
			for _, k := range []string{
				"AWSLogs/111111111111/CloudTrail/us-east-1/a", "AWSLogs/111111111111/CloudTrail/us-east-1/b",
				"AWSLogs/222222222222/CloudTrail/us-east-1/c", "trailfill/m",
			} {
				if err := put(c, k, "x"); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			var err error
			if tc.v1 {
				var out *s3.ListObjectsOutput
				out, err = c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String(archive), Prefix: tc.prefix})
				if err == nil {
					n = len(out.Contents)
				}
			} else {
				var out *s3.ListObjectsV2Output
				out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: tc.prefix})
				if err == nil {
					n = len(out.Contents)
				}
			}
			if tc.refused {
				wantAPIError(t, "list", err, "AccessDenied", 403)
				if r := s.S3Refusals(); len(r) != 1 || r[0].Reason != RefusedListPrefix || r[0].Key != aws.ToString(tc.prefix) {
					t.Errorf("refusals = %v", r)
				}
				return
			}
			if err != nil || n != tc.wantKeys {
				t.Errorf("list: %d keys, %v; want %d", n, err, tc.wantKeys)
			}
			if r := s.S3Refusals(); len(r) != 0 {
				t.Errorf("refusals = %v", r)
			}
		})
	}
}

func TestS3PolicyMissingKeyForbidden(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, forbidden := range []bool{true, false} {
		name := "403 without ListBucket"
		if !forbidden {
			name = "404 by default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, c := s3Env(t, S3Policy{MissingKeyForbidden: forbidden})
			if err := put(c, "present", "here"); err != nil {
				t.Fatal(err)
			}
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive), Key: aws.String("present")})
			if err != nil {
				t.Fatalf("get of a present key: %v", err)
			}
			get.Body.Close()
			if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: aws.String("present")}); err != nil {
				t.Fatalf("head of a present key: %v", err)
			}
			_, getErr := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive), Key: aws.String("missing")})
			_, headErr := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: aws.String("missing")})
			if forbidden {
				wantAPIError(t, "get", getErr, "AccessDenied", 403)
				// A HEAD answer has no body: the SDK names the error by its status.
				wantAPIError(t, "head", headErr, "Forbidden", 403)
				if isA[*types.NotFound](headErr) || isA[*types.NoSuchKey](getErr) {
					t.Error("typed not-found errors under MissingKeyForbidden")
				}
				wantRefusals(t, s, "GetObject missing missing-key", "HeadObject missing missing-key")
				return
			}
			if !isA[*types.NoSuchKey](getErr) {
				t.Errorf("get: %v, want NoSuchKey", getErr)
			}
			if !isA[*types.NotFound](headErr) {
				t.Errorf("head: %v, want NotFound", headErr)
			}
			wantRefusals(t, s)
		})
	}
}

func TestS3PolicyRequireACL(t *testing.T) {
	t.Parallel()
	const full = "bucket-owner-full-control"
	cases := []struct {
		name   string
		acl    types.ObjectCannedACL
		code   string
		status int
	}{
		{"no ACL refused", "", "AccessDenied", 403},
		{"other ACL refused", types.ObjectCannedACLBucketOwnerRead, "AccessDenied", 403},
		{"required ACL accepted", types.ObjectCannedACLBucketOwnerFullControl, "", 200},
		{"invalid ACL", "everyone-please", "InvalidArgument", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := s3Env(t, S3Policy{RequireACL: full})
			err := put(c, trailKey, "x", ifNoneMatch, func(in *s3.PutObjectInput) { in.ACL = tc.acl })
			if tc.status != 200 {
				wantAPIError(t, "put", err, tc.code, tc.status)
				if _, ok := s.S3Object(archive, trailKey); ok {
					t.Error("refused put stored the object")
				}
				if tc.status == 403 {
					wantRefusals(t, s, "PutObject "+trailKey+" acl")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info, ok := s.S3ObjectInfo(archive, trailKey); !ok || info.ACL != full {
				t.Errorf("info = %+v", info)
			}
			wantRefusals(t, s)
		})
	}
}

func TestS3PolicyRequireSSEKMSKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		sse  types.ServerSideEncryption
		key  string
		ok   bool
	}{
		{"unencrypted refused", "", "", false},
		{"SSE-S3 refused", types.ServerSideEncryptionAes256, "", false},
		{"aws/s3 managed key refused", types.ServerSideEncryptionAwsKms, "", false},
		{"key ID instead of ARN refused", types.ServerSideEncryptionAwsKms, "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", false},
		{"other key refused", types.ServerSideEncryptionAwsKms, "arn:aws:kms:us-east-1:111111111111:key/other", false},
		{"the key accepted", types.ServerSideEncryptionAwsKms, kmsKey, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := s3Env(t, S3Policy{RequireSSEKMSKey: kmsKey})
			err := put(c, "k", "x", func(in *s3.PutObjectInput) {
				in.ServerSideEncryption = tc.sse
				if tc.key != "" {
					in.SSEKMSKeyId = aws.String(tc.key)
				}
			})
			if !tc.ok {
				wantAPIError(t, "put", err, "AccessDenied", 403)
				if err != nil && !strings.Contains(err.Error(), "explicit deny in a resource-based policy") {
					t.Errorf("message does not name the explicit deny: %v", err)
				}
				wantRefusals(t, s, "PutObject k sse-kms")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantRefusals(t, s)
		})
	}
}

func TestStringLike(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"AWSLogs/*", "AWSLogs/", true},
		{"AWSLogs/*", "AWSLogs/1/2/3", true},
		{"AWSLogs/*", "AWSLog", false},
		{"a?c*", "abc", true},
		{"a?c*", "ac", false},
		{"*/CloudTrail/*", "AWSLogs/1/CloudTrail/x", true},
		{"*/CloudTrail/*", "AWSLogs/1/CloudTrail-Digest/x", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+"~"+tc.s, func(t *testing.T) {
			t.Parallel()
			if got := stringLike(tc.pattern, tc.s); got != tc.want {
				t.Errorf("stringLike(%q, %q) = %v", tc.pattern, tc.s, got)
			}
		})
	}
}
