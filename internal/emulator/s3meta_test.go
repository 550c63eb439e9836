package emulator

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// objectView is what GetObject and HeadObject report about an object.
type objectView struct {
	Metadata    map[string]string
	SSE         types.ServerSideEncryption
	KeyID       string
	BucketKey   bool
	ContentType string
}

// views returns what HeadObject and GetObject say about an object.
func views(t *testing.T, c *s3.Client, key string) (head, get objectView) {
	t.Helper()
	ctx := context.Background()
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	g.Body.Close()
	head = objectView{h.Metadata, h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId), aws.ToBool(h.BucketKeyEnabled), aws.ToString(h.ContentType)}
	get = objectView{g.Metadata, g.ServerSideEncryption, aws.ToString(g.SSEKMSKeyId), aws.ToBool(g.BucketKeyEnabled), aws.ToString(g.ContentType)}
	return head, get
}

func sameView(a, b objectView) bool {
	return maps.Equal(a.Metadata, b.Metadata) && a.SSE == b.SSE && a.KeyID == b.KeyID && a.BucketKey == b.BucketKey && a.ContentType == b.ContentType
}

func TestS3ObjectMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	meta := map[string]string{"trailfill-sha256": "9f86d081884c7d65", "purpose": "backfill"}

	t.Run("user metadata and SSE-KMS", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{})
		out, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(archive), Key: aws.String(trailKey), Body: strings.NewReader("gz"),
			Metadata: map[string]string{"Trailfill-SHA256": "9f86d081884c7d65", "purpose": "backfill"}, ContentType: aws.String("application/json"),
			ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(kmsKey), BucketKeyEnabled: aws.Bool(true),
			ACL: types.ObjectCannedACLBucketOwnerFullControl,
		})
		if err != nil {
			t.Fatal(err)
		}
		if out.ServerSideEncryption != types.ServerSideEncryptionAwsKms || aws.ToString(out.SSEKMSKeyId) != kmsKey || !aws.ToBool(out.BucketKeyEnabled) {
			t.Errorf("PutObject answer: %s %s %v", out.ServerSideEncryption, aws.ToString(out.SSEKMSKeyId), aws.ToBool(out.BucketKeyEnabled))
		}
		head, get := views(t, c, trailKey)
		want := objectView{meta, types.ServerSideEncryptionAwsKms, kmsKey, true, "application/json"}
		if !sameView(head, want) {
			t.Errorf("HeadObject: %+v\nwant %+v", head, want)
		}
		if !sameView(get, want) {
			t.Errorf("GetObject: %+v\nwant %+v", get, want)
		}
		info, ok := s.S3ObjectInfo(archive, trailKey)
		if !ok || !maps.Equal(info.Metadata, meta) || info.ACL != "bucket-owner-full-control" || info.SSE != "aws:kms" ||
			info.SSEKMSKeyID != kmsKey || !info.BucketKeyEnabled || info.Size != 2 || info.ContentType != "application/json" ||
			info.ETag != `"`+md5Hex("gz")+`"` {
			t.Errorf("S3ObjectInfo = %+v, %v", info, ok)
		}
	})
	t.Run("ACL stored but not returned", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{})
		if err := put(c, "k", "x", func(in *s3.PutObjectInput) {
			in.ACL = types.ObjectCannedACLBucketOwnerFullControl
			in.GrantRead = aws.String(`id="abc"`)
		}); err != nil {
			t.Fatal(err)
		}
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			status, hdr, _ := rawDo(t, s, method, "/"+archive+"/k", nil, nil)
			if status != 200 {
				t.Fatalf("%s: %d", method, status)
			}
			for name := range hdr {
				if strings.EqualFold(name, "x-amz-acl") || strings.HasPrefix(strings.ToLower(name), "x-amz-grant-") {
					t.Errorf("%s returns %s", method, name)
				}
			}
		}
		info, _ := s.S3ObjectInfo(archive, "k")
		if info.ACL != "bucket-owner-full-control" || info.Grants["x-amz-grant-read"] != `id="abc"` {
			t.Errorf("info = %+v", info)
		}
	})
	t.Run("default encryption is SSE-S3", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{})
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(archive), Key: aws.String("k"), Body: strings.NewReader("x")})
		if err != nil {
			t.Fatal(err)
		}
		if out.ServerSideEncryption != types.ServerSideEncryptionAes256 || out.SSEKMSKeyId != nil {
			t.Errorf("PutObject answer: %s %v", out.ServerSideEncryption, out.SSEKMSKeyId)
		}
		head, get := views(t, c, "k")
		want := objectView{map[string]string{}, types.ServerSideEncryptionAes256, "", false, "application/octet-stream"}
		if !sameView(head, want) || !sameView(get, want) {
			t.Errorf("head %+v, get %+v", head, get)
		}
		if info, _ := s.S3ObjectInfo(archive, "k"); info.SSE != "AES256" || info.ACL != "" {
			t.Errorf("info = %+v", info)
		}
	})
	t.Run("aws:kms without a key uses aws/s3", func(t *testing.T) {
		t.Parallel()
		_, c := s3Env(t, S3Policy{})
		if err := put(c, "k", "x", func(in *s3.PutObjectInput) { in.ServerSideEncryption = types.ServerSideEncryptionAwsKms }); err != nil {
			t.Fatal(err)
		}
		head, _ := views(t, c, "k")
		if !regexp.MustCompile(`^arn:aws:kms:us-east-1:111111111111:key/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(head.KeyID) {
			t.Errorf("key %q", head.KeyID)
		}
	})
	t.Run("overwrite replaces metadata", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{})
		if err := put(c, "manifest.json", "v1", func(in *s3.PutObjectInput) {
			in.Metadata = meta
			in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
			in.SSEKMSKeyId = aws.String(kmsKey)
			in.BucketKeyEnabled = aws.Bool(true)
			in.ContentType = aws.String("application/json")
			in.ACL = types.ObjectCannedACLBucketOwnerFullControl
		}); err != nil {
			t.Fatal(err)
		}
		if err := put(c, "manifest.json", "v2", func(in *s3.PutObjectInput) { in.Metadata = map[string]string{"round": "2"} }); err != nil {
			t.Fatal(err)
		}
		head, get := views(t, c, "manifest.json")
		want := objectView{map[string]string{"round": "2"}, types.ServerSideEncryptionAes256, "", false, "application/octet-stream"}
		if !sameView(head, want) || !sameView(get, want) {
			t.Errorf("after overwrite: head %+v, get %+v", head, get)
		}
		if info, _ := s.S3ObjectInfo(archive, "manifest.json"); info.ACL != "" || info.SSEKMSKeyID != "" || len(info.Metadata) != 1 {
			t.Errorf("info = %+v", info)
		}
	})
	t.Run("copy takes the destination's default encryption", func(t *testing.T) {
		t.Parallel()
		_, c := s3Env(t, S3Policy{})
		if err := put(c, "src", "x", func(in *s3.PutObjectInput) {
			in.Metadata = meta
			in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
			in.SSEKMSKeyId = aws.String(kmsKey)
		}); err != nil {
			t.Fatal(err)
		}
		out, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(archive), Key: aws.String("dst"), CopySource: aws.String(archive + "/src")})
		if err != nil {
			t.Fatal(err)
		}
		if out.ServerSideEncryption != types.ServerSideEncryptionAes256 {
			t.Errorf("CopyObject answer: %s", out.ServerSideEncryption)
		}
		head, _ := views(t, c, "dst")
		// The metadata is copied (COPY directive), the encryption is not.
		if want := (objectView{meta, types.ServerSideEncryptionAes256, "", false, "application/octet-stream"}); !sameView(head, want) {
			t.Errorf("copy: %+v", head)
		}
	})
	t.Run("invalid encryption headers", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{})
		err := put(c, "a", "x", func(in *s3.PutObjectInput) { in.ServerSideEncryption = "rot13" })
		wantAPIError(t, "unknown algorithm", err, "InvalidArgument", 400)
		err = put(c, "b", "x", func(in *s3.PutObjectInput) {
			in.ServerSideEncryption = types.ServerSideEncryptionAes256
			in.SSEKMSKeyId = aws.String(kmsKey)
		})
		wantAPIError(t, "KMS key with AES256", err, "InvalidArgument", 400)
		if keys := s.S3Keys(archive, ""); len(keys) != 0 {
			t.Errorf("stored %v", keys)
		}
	})
	t.Run("missing objects", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{})
		if _, ok := s.S3ObjectInfo(archive, "nothing"); ok {
			t.Error("S3ObjectInfo of a missing key")
		}
		if _, ok := s.S3ObjectInfo("no-bucket", "nothing"); ok {
			t.Error("S3ObjectInfo in a missing bucket")
		}
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: aws.String("nothing")})
		if !isA[*types.NotFound](err) {
			t.Errorf("head: %v", err)
		}
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("no-bucket"), Key: aws.String("nothing")})
		wantAPIError(t, "head in a missing bucket", err, "NotFound", 404)
	})
}

func TestS3RequestCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("every SDK operation counted under its name", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		c := s3Client(awsConfig(s, acctA, "us-east-1"))
		b := aws.String("bkt")
		k := aws.String("dir/key")
		var mp *s3.CreateMultipartUploadOutput
		var part *s3.UploadPartOutput
		calls := []struct {
			op   string
			call func() error
		}{
			{S3CreateBucket, func() error { _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); return err }},
			{S3HeadBucket, func() error { _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b}); return err }},
			{S3ListBuckets, func() error { _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); return err }},
			{S3GetBucketLocation, func() error { _, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: b}); return err }},
			{S3PutObject, func() error {
				_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("x")})
				return err
			}},
			{S3HeadObject, func() error { _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k}); return err }},
			{S3GetObject, func() error {
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
				if err == nil {
					out.Body.Close()
				}
				return err
			}},
			{S3CopyObject, func() error {
				_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("dir/copy"), CopySource: aws.String("bkt/dir/key")})
				return err
			}},
			{S3ListObjectsV2, func() error {
				_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("dir/")})
				return err
			}},
			{S3ListObjects, func() error { _, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: b}); return err }},
			{S3ListObjectVersions, func() error { _, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b}); return err }},
			{S3CreateMultipartUpload, func() error {
				var err error
				mp, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("dir/mp")})
				return err
			}},
			{S3UploadPart, func() error {
				var err error
				part, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("dir/mp"), UploadId: mp.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("p")})
				return err
			}},
			{S3ListParts, func() error {
				_, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: aws.String("dir/mp"), UploadId: mp.UploadId})
				return err
			}},
			{S3ListMultipartUploads, func() error {
				_, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b})
				return err
			}},
			{S3CompleteMultipartUpload, func() error {
				_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("dir/mp"), UploadId: mp.UploadId,
					MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}})
				return err
			}},
			{S3AbortMultipartUpload, func() error {
				// Aborting a finished upload is an error; the request still counts.
				_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("dir/mp"), UploadId: mp.UploadId})
				return nil
			}},
			{S3DeleteObjects, func() error {
				_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("dir/copy")}}}})
				return err
			}},
			{S3DeleteObject, func() error { _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}); return err }},
			{S3GetBucketVersioning, func() error {
				_, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
				return err
			}},
		}
		for _, call := range calls {
			before := s.S3Requests(call.op)
			if err := call.call(); err != nil {
				t.Fatalf("%s: %v", call.op, err)
			}
			if got := s.S3Requests(call.op); got != before+1 {
				t.Errorf("S3Requests(%s) went from %d to %d", call.op, before, got)
			}
		}
		if n, other := s.S3Requests(""), s.S3Requests(S3OtherOperation); n != len(calls) || other != 0 {
			t.Errorf("%d requests (%d unclassified), want %d", n, other, len(calls))
		}
	})
	t.Run("prefixes, statuses, refusals and a reset", func(t *testing.T) {
		t.Parallel()
		s, c := s3Env(t, S3Policy{CreateOnlyPrefixes: []string{"AWSLogs/"}})
		for i := range 3 {
			if err := put(c, "AWSLogs/1/k"+string(rune('a'+i)), "x", ifNoneMatch); err != nil {
				t.Fatal(err)
			}
		}
		_ = put(c, "AWSLogs/1/ka", "again", ifNoneMatch) // 412
		_ = put(c, "AWSLogs/1/kz", "x")                  // refused
		if err := put(c, "trailfill/m.json", "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/1/")}); err != nil {
			t.Fatal(err)
		}
		checks := []struct {
			op, prefix string
			want       int
		}{
			{S3PutObject, "", 6},
			{S3PutObject, "AWSLogs/", 5},
			{S3PutObject, "trailfill/", 1},
			{S3ListObjectsV2, "AWSLogs/1/", 1},
			{S3ListObjectsV2, "AWSLogs/2/", 0},
			{"", "", 7},
		}
		for _, ch := range checks {
			if got := s.S3RequestsUnder(ch.op, ch.prefix); got != ch.want {
				t.Errorf("S3RequestsUnder(%q, %q) = %d, want %d", ch.op, ch.prefix, got, ch.want)
			}
		}
		var statuses []int
		for _, e := range s.S3RequestLog() {
			statuses = append(statuses, e.Status)
		}
		if want := []int{200, 200, 200, 412, 403, 200, 200}; !slices.Equal(statuses, want) {
			t.Errorf("statuses %v, want %v", statuses, want)
		}
		s.ResetS3Counters()
		if n := s.S3Requests(""); n != 0 || len(s.S3RequestLog()) != 0 {
			t.Errorf("after reset: %d", n)
		}
		if err := put(c, "trailfill/m.json", "y"); err != nil {
			t.Fatal(err)
		}
		if n := s.S3Requests(S3PutObject); n != 1 {
			t.Errorf("after reset and one put: %d", n)
		}
		if r := s.S3Refusals(); len(r) != 1 {
			t.Errorf("refusals survive a reset: %v", r)
		}
	})
	t.Run("each retried attempt counts", func(t *testing.T) {
		t.Parallel()
		s, _ := s3Env(t, S3Policy{})
		s.FailS3Puts(nil, 1)
		retrying := s3.NewFromConfig(awsConfig(s, acctA, "us-east-1"), func(o *s3.Options) {
			o.UsePathStyle = true
			o.Retryer = retryNoBackoff(3)
		})
		if err := put(retrying, "k", "v"); err != nil {
			t.Fatal(err)
		}
		log := s.S3RequestLog()
		if len(log) != 2 || log[0].Status != 500 || log[1].Status != 200 || log[0].Key != "k" {
			t.Errorf("log = %+v", log)
		}
	})
}

// md5Hex is the hex MD5 of s: the ETag of a single-part upload.
func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
