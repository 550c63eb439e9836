package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestS3RoundTrip(t *testing.T) {
	s := start(t, fast())
	c := s3Client(awsConfig(s, acctA, "us-east-1"))
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("archive")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket("archive"); err == nil {
		t.Error("CreateBucket of an existing bucket: no error")
	}
	prefix := "AWSLogs/" + acctA + "/CloudTrail/us-east-1/2025/04/17/"
	var keys []string
	for i := range 5 {
		key := fmt.Sprintf("%s%s_CloudTrail_us-east-1_20250417T15%02dZ_k%d.json.gz", prefix, acctA, i*5, i)
		keys = append(keys, key)
		body := bytes.Repeat([]byte{byte(i), 0x1f, 0x8b, 0}, 1000+i)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("archive"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		got, ok := s.S3Object("archive", key)
		if !ok || !bytes.Equal(got, body) {
			t.Fatalf("stored bytes of %s differ (%d vs %d)", key, len(got), len(body))
		}
	}
	odd := "trailfill/manifests/x y+z=1.json"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("archive"), Key: aws.String(odd), Body: strings.NewReader("{}"), ContentType: aws.String("application/json")}); err != nil {
		t.Fatal(err)
	}

	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("archive"), Key: aws.String(keys[2])})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := s.S3Object("archive", keys[2]); !bytes.Equal(b, want) {
		t.Error("GetObject returned other bytes")
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("archive"), Key: aws.String(odd)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(head.ContentLength) != 2 || aws.ToString(head.ContentType) != "application/json" {
		t.Errorf("head: %d %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType))
	}
	// Request-only headers are not kept as object metadata.
	status, hdr, _ := rawDo(t, s, http.MethodGet, "/archive/"+keys[1], nil, nil)
	if status != 200 {
		t.Fatalf("raw get: %d", status)
	}
	for _, h := range s3RequestOnlyHeaders {
		if v := hdr.Get(h); v != "" {
			t.Errorf("GetObject returns request header %s: %s", h, v)
		}
	}

	// ListObjectsV2 with a prefix, two keys per page.
	var listed []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("archive"), Prefix: aws.String("AWSLogs/"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Contents {
			listed = append(listed, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(listed, keys) || pages != 3 {
		t.Errorf("listed %d keys in %d pages: %v", len(listed), pages, listed)
	}
	if got := s.S3Keys("archive", "trailfill/"); !slices.Equal(got, []string{odd}) {
		t.Errorf("S3Keys = %v", got)
	}

	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("archive"), Key: aws.String(keys[0])}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.S3Object("archive", keys[0]); ok {
		t.Error("deleted object still there")
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("archive"), Key: aws.String(keys[0])})
	if !isA[*types.NotFound](err) {
		t.Errorf("head of a deleted object: %v", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("missing"), Key: aws.String("k"), Body: strings.NewReader("x")})
	if code, status := apiCode(t, err); code != "NoSuchBucket" || status != 404 {
		t.Errorf("put into a missing bucket: %s %d", code, status)
	}
	if s.S3Keys("missing", "") != nil {
		t.Error("S3Keys of a missing bucket")
	}
}

func TestS3PresignedGet(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	c := s3Client(awsConfig(s, acctA, "us-east-1"))
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("shared")}); err != nil {
		t.Fatal(err)
	}
	req, err := s3.NewPresignClient(c).PresignGetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(b) != "shared" {
		t.Errorf("presigned get: %d %q %v", resp.StatusCode, b, err)
	}
}

func TestS3ConditionalPut(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	c := s3Client(awsConfig(s, acctA, "us-east-1"))
	ctx := context.Background()
	put := func(body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("once"), Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := put("first"); err != nil {
		t.Fatal(err)
	}
	err := put("second")
	if code, status := apiCode(t, err); code != "PreconditionFailed" || status != 412 {
		t.Errorf("second conditional put: %s %d", code, status)
	}
	if got, _ := s.S3Object("b", "once"); string(got) != "first" {
		t.Errorf("object = %q", got)
	}
}

func TestS3ChecksumAlgorithms(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	c := s3Client(awsConfig(s, acctA, "us-east-1"))
	ctx := context.Background()
	body := bytes.Repeat([]byte("trailfill "), 10_000)
	algs := []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256}
	for _, alg := range algs {
		key := "obj-" + string(alg)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: bytes.NewReader(body), ChecksumAlgorithm: alg}); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got, _ := s.S3Object("b", key); !bytes.Equal(got, body) {
			t.Errorf("%s: stored bytes differ", key)
		}
		// The SDK validates the returned checksum.
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: get: %v", key, err)
		}
	}
	// The SDK's default is CRC32 when the operation supports checksums.
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("obj-"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.ChecksumCRC32) != crc32Base64(body) {
		t.Errorf("default checksum %q, want the CRC32 %q", aws.ToString(out.ChecksumCRC32), crc32Base64(body))
	}
}

func crc32Base64(b []byte) string {
	h := crc32.NewIEEE()
	h.Write(b)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// rawDo sends an S3 request signed (in scope only) with account A's key.
func rawDo(t *testing.T, s *Server, method, path string, body []byte, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	ak, _ := s.CallerCredentials(acctA)
	req, err := http.NewRequest(method, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+ak+"/20250417/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// rawPut sends a PUT to bucket b, as SDKs do over TLS with aws-chunked
// bodies.
func rawPut(t *testing.T, s *Server, key string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	status, _, msg := rawDo(t, s, http.MethodPut, "/b/"+key, body, hdr)
	return status, msg
}

func TestS3AWSChunkedBodies(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	payload := []byte(strings.Repeat("hello aws-chunked world\n", 500))
	sum := crc32Base64(payload)
	chunk := func(p []byte, ext string) string { return fmt.Sprintf("%x%s\r\n%s\r\n", len(p), ext, p) }

	unsigned := chunk(payload[:8192], "") + chunk(payload[8192:], "") + "0\r\nx-amz-checksum-crc32:" + sum + "\r\n\r\n"
	status, msg := rawPut(t, s, "unsigned", []byte(unsigned), map[string]string{
		"Content-Encoding":             "aws-chunked",
		"X-Amz-Content-Sha256":         "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
		"X-Amz-Decoded-Content-Length": fmt.Sprint(len(payload)),
		"X-Amz-Trailer":                "x-amz-checksum-crc32",
	})
	if status != 200 {
		t.Fatalf("unsigned trailer upload: %d %s", status, msg)
	}
	if got, _ := s.S3Object("b", "unsigned"); !bytes.Equal(got, payload) {
		t.Errorf("unsigned: stored %q", got)
	}

	sig := ";chunk-signature=" + strings.Repeat("0", 64)
	signed := chunk(payload[:100], sig) + chunk(payload[100:], sig) + "0" + sig + "\r\n\r\n"
	status, msg = rawPut(t, s, "signed", []byte(signed), map[string]string{
		"X-Amz-Content-Sha256":         "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		"X-Amz-Decoded-Content-Length": fmt.Sprint(len(payload)),
		"Content-Encoding":             "aws-chunked,gzip",
	})
	if status != 200 {
		t.Fatalf("signed upload: %d %s", status, msg)
	}
	if got, _ := s.S3Object("b", "signed"); !bytes.Equal(got, payload) {
		t.Errorf("signed: stored %d bytes", len(got))
	}

	bad := chunk(payload, "") + "0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
	status, msg = rawPut(t, s, "bad", []byte(bad), map[string]string{
		"Content-Encoding":     "aws-chunked",
		"X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
	})
	if status != 400 || !strings.Contains(msg, "BadDigest") {
		t.Errorf("bad checksum: %d %s", status, msg)
	}
	status, msg = rawPut(t, s, "truncated", []byte("10\r\nshort"), map[string]string{"Content-Encoding": "aws-chunked"})
	if status != 400 || !strings.Contains(msg, "IncompleteBody") {
		t.Errorf("truncated: %d %s", status, msg)
	}
	status, msg = rawPut(t, s, "plain-bad", payload, map[string]string{"X-Amz-Checksum-Crc32": "AAAAAA=="})
	if status != 400 || !strings.Contains(msg, "BadDigest") {
		t.Errorf("bad header checksum: %d %s", status, msg)
	}
	for _, k := range []string{"bad", "truncated", "plain-bad"} {
		if _, ok := s.S3Object("b", k); ok {
			t.Errorf("%s stored", k)
		}
	}
}

func TestFailS3Puts(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	c := s3Client(awsConfig(s, acctA, "us-east-1"))
	ctx := context.Background()
	put := func(key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: strings.NewReader("data")})
		return err
	}
	s.FailS3Puts(func(bucket, key string) bool { return bucket == "b" && strings.HasPrefix(key, "AWSLogs/") }, 2)
	if err := put("trailfill/manifest.json"); err != nil {
		t.Errorf("non-matching key failed: %v", err)
	}
	for i := range 2 {
		err := put("AWSLogs/x.json.gz")
		if code, status := apiCode(t, err); code != "InternalError" || status != 500 {
			t.Errorf("put %d: %s %d, want InternalError 500", i, code, status)
		}
		if _, ok := s.S3Object("b", "AWSLogs/x.json.gz"); ok {
			t.Fatal("failed put stored the object")
		}
	}
	if err := put("AWSLogs/x.json.gz"); err != nil {
		t.Errorf("third put: %v", err)
	}
	if n := s.S3PutFailures(); n != 2 {
		t.Errorf("S3PutFailures = %d", n)
	}

	// The SDK retries a 500: with retries, one failure is invisible.
	s.FailS3Puts(nil, 1)
	retrying := s3.NewFromConfig(awsConfig(s, acctA, "us-east-1"), func(o *s3.Options) {
		o.UsePathStyle = true
		o.Retryer = retryNoBackoff(3)
	})
	if _, err := retrying.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Errorf("retried put: %v", err)
	}
	if n := s.S3PutFailures(); n != 3 {
		t.Errorf("S3PutFailures = %d, want 3", n)
	}

	// Unlimited until cleared; multipart uploads are writes too.
	s.FailS3Puts(nil, -1)
	for range 3 {
		if err := put("y"); err == nil {
			t.Error("put succeeded under an unlimited rule")
		}
	}
	_, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("mp")})
	if code, _ := apiCode(t, err); code != "InternalError" {
		t.Errorf("CreateMultipartUpload: %v", err)
	}
	s.ClearS3Faults()
	if err := put("y"); err != nil {
		t.Errorf("after ClearS3Faults: %v", err)
	}
	// Reads are never failed.
	s.FailS3Puts(nil, -1)
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("y")}); err != nil {
		t.Errorf("get under a put rule: %v", err)
	}
}

func TestS3MultipartUpload(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	c := s3Client(awsConfig(s, acctA, "us-east-1"))
	ctx := context.Background()
	key := aws.String("big.json.gz")
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{bytes.Repeat([]byte("a"), 5<<20), []byte("tail")}
	var done []types.CompletedPart
	for i, p := range parts {
		n := aws.Int32(int32(i + 1))
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("b"), Key: key, UploadId: mp.UploadId, PartNumber: n, Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: n})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("b"), Key: key, UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.S3Object("b", *key)
	if !bytes.Equal(got, bytes.Join(parts, nil)) {
		t.Errorf("multipart object: %d bytes", len(got))
	}
}

func TestS3WithoutPathStyleOnIPEndpoint(t *testing.T) {
	s := start(t, fast())
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	// The SDK falls back to path style for an IP endpoint such as s.URL().
	c := s3.NewFromConfig(awsConfig(s, acctA, "us-east-1"))
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.S3Object("b", "k"); string(got) != "v" {
		t.Errorf("object = %q", got)
	}
	// Over plain HTTP the SDK refuses unseekable bodies (no trailing checksum
	// without TLS): clients must give PutObject an io.Seeker.
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k2"), Body: struct{ io.Reader }{strings.NewReader("v")}})
	if err == nil || !strings.Contains(err.Error(), "seekable") {
		t.Errorf("unseekable body: %v", err)
	}
}
