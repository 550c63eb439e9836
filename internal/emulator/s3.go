package emulator

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
)

// crc64NVME is the reversed NVMe polynomial, as hash/crc64 wants it (the
// same constant the SDK uses for CRC64NVME checksums).
const crc64NVME = 0x9a6c9329ac4bc9b5

// maxS3Body bounds an uploaded object or part (the backend is in memory).
const maxS3Body = 1 << 30

// s3Service is gofakes3 over an in-memory backend, with fault injection,
// access policies (s3policy.go), S3's metadata rules (s3meta.go) and
// request counters (s3ops.go).
type s3Service struct {
	backend *s3Backend
	faker   http.Handler
	// condMu serialises conditional writes, so that If-None-Match and
	// If-Match (compare-and-swap) hold across PutObject (checked by the
	// backend) and CompleteMultipartUpload (If-None-Match checked here;
	// gofakes3 ignores its conditions).
	condMu sync.Mutex

	mu       sync.Mutex
	rules    []*putFailure
	failures int
	policies map[string]*S3Policy
	refusals []S3Refusal
	requests []*S3Request
}

// putFailure is one FailS3Puts rule.
type putFailure struct {
	match     func(bucket, key string) bool
	remaining int // < 0: unlimited
}

// headers the SDK sends that describe the request, not the object: they are
// removed before gofakes3 stores the X-Amz-* headers as object metadata.
var s3RequestOnlyHeaders = []string{
	"X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256",
	"X-Amz-Decoded-Content-Length", "X-Amz-Trailer",
	"X-Amz-Sdk-Checksum-Algorithm", "X-Amz-User-Agent",
}

// checksumHeaders maps the x-amz-checksum-* headers S3 verifies to their
// hash and name in error messages.
var checksumHeaders = []struct {
	header string
	name   string
	hash   func() hash.Hash
}{
	{"X-Amz-Checksum-Crc32", "CRC32", func() hash.Hash { return crc32.NewIEEE() }},
	{"X-Amz-Checksum-Crc32c", "CRC32C", func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
	{"X-Amz-Checksum-Crc64nvme", "CRC64NVME", func() hash.Hash { return crc64.New(crc64.MakeTable(crc64NVME)) }},
	{"X-Amz-Checksum-Sha1", "SHA1", sha1.New},
	{"X-Amz-Checksum-Sha256", "SHA256", sha256.New},
}

type s3ErrorDoc struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

// writeS3Error answers an S3 error document. The request id also goes in
// x-amz-request-id, where the SDK finds it for HEAD answers, which carry no
// body.
func (s *Server) writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	id := s.requestID()
	w.Header().Set("X-Amz-Request-Id", id)
	writeXML(w, status, s3ErrorDoc{Code: code, Message: message, Resource: r.URL.Path, RequestID: id})
}

// splitS3Path returns the bucket and key of a path-style request.
func splitS3Path(p string) (bucket, key string) {
	bucket, key, _ = strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return bucket, key
}

// s3Subresources are PUT subresources of an object that change settings,
// not data.
var s3Subresources = []string{"acl", "tagging", "retention", "legal-hold"}

// isS3Write reports whether a request stores object data: PutObject,
// CopyObject, UploadPart, CreateMultipartUpload, CompleteMultipartUpload.
func isS3Write(r *http.Request, key string) bool {
	if key == "" {
		return false
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodPut:
		for _, sub := range s3Subresources {
			if q.Has(sub) {
				return false
			}
		}
		return true
	case http.MethodPost:
		return q.Has("uploads") || q.Has("uploadId")
	}
	return false
}

// serveS3 answers the s3 service through gofakes3 (path-style requests):
// count, authenticate, apply the bucket's policy, inject faults, prepare
// the body and metadata, then let gofakes3 answer.
func (s *Server) serveS3(w http.ResponseWriter, r *http.Request) {
	bucket, key := splitS3Path(r.URL.Path)
	op := s3Operation(r, bucket, key)
	countKey := key
	if op == S3ListObjects || op == S3ListObjectsV2 {
		countKey = r.URL.Query().Get("prefix")
	}
	resp := &s3Response{ResponseWriter: w, s3: s.s3, entry: s.s3.countS3(op, bucket, countKey)}
	defer resp.finish()
	w = resp
	c := callerOf(r)
	switch c.state {
	case credUnknown:
		s.writeS3Error(w, r, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		return
	case credExpired:
		s.writeS3Error(w, r, http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
		return
	}
	switch op {
	case S3PutObject, S3CopyObject, S3CreateMultipartUpload:
		// Invalid headers are refused before authorisation.
		echo, status, code, msg := prepareS3Metadata(r, op, c.id)
		if status != 0 {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxS3Body))
			s.writeS3Error(w, r, status, code, msg)
			return
		}
		resp.echo = echo
	}
	if p := s.s3.policyFor(bucket, c.id); p != nil {
		if op == S3DeleteObjects && s.deleteObjects(w, r, p, bucket, c.id) {
			return
		}
		if d := p.check(s.s3, op, r, bucket, key, c.id); d != nil {
			s.s3.refuse(op, bucket, countKey, d.reason, c.id)
			// Drain an upload so the connection stays usable.
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxS3Body))
			s.writeS3Error(w, r, d.status, d.code, d.message)
			return
		}
	}
	if isS3Write(r, key) {
		if s.s3.takeFailure(bucket, key) {
			// Drain the upload so the connection stays usable; store nothing.
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxS3Body))
			s.writeS3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
			return
		}
		if r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") == "" {
			if status, code, msg := prepareS3Body(r); status != 0 {
				s.writeS3Error(w, r, status, code, msg)
				return
			}
		}
		for _, h := range s3RequestOnlyHeaders {
			r.Header.Del(h)
		}
		if (r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != "") && (op == S3PutObject || op == S3CompleteMultipartUpload) {
			s.s3.condMu.Lock()
			defer s.s3.condMu.Unlock()
			if op == S3CompleteMultipartUpload && r.Header.Get("If-None-Match") == "*" {
				if obj, err := s.s3.backend.HeadObject(bucket, key); err == nil {
					obj.Contents.Close()
					s.writeS3Error(w, r, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
					return
				}
			}
		}
	}
	s.s3.faker.ServeHTTP(w, r)
}

// prepareS3Body reads an upload body, decodes aws-chunked content encoding
// (signed or unsigned, with trailers), verifies x-amz-checksum-* values and
// leaves a plain body with its Content-Length for gofakes3. It returns a
// non-zero HTTP status with an S3 error code on failure.
func prepareS3Body(r *http.Request) (status int, code, message string) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxS3Body+1))
	if err != nil {
		return http.StatusBadRequest, "IncompleteBody", "cannot read the request body: " + err.Error()
	}
	if len(raw) > maxS3Body {
		return http.StatusBadRequest, "EntityTooLarge", "the emulator stores objects of at most 1 GiB"
	}
	body := raw
	encodings := splitList(r.Header.Get("Content-Encoding"))
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") || slices.Contains(encodings, "aws-chunked") {
		decoded, trailers, err := decodeAWSChunked(raw)
		if err != nil {
			return http.StatusBadRequest, "IncompleteBody", "cannot decode the aws-chunked body: " + err.Error()
		}
		if dl := r.Header.Get("X-Amz-Decoded-Content-Length"); dl != "" {
			if n, err := strconv.Atoi(dl); err != nil || n != len(decoded) {
				return http.StatusBadRequest, "IncompleteBody", "the decoded body length does not match x-amz-decoded-content-length"
			}
		}
		for k, v := range trailers {
			r.Header.Set(k, v)
		}
		body = decoded
		encodings = slices.DeleteFunc(encodings, func(e string) bool { return e == "aws-chunked" })
		if len(encodings) == 0 {
			r.Header.Del("Content-Encoding")
		} else {
			r.Header.Set("Content-Encoding", strings.Join(encodings, ","))
		}
	}
	for _, c := range checksumHeaders {
		want := r.Header.Get(c.header)
		if want == "" {
			continue
		}
		h := c.hash()
		h.Write(body)
		if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
			return http.StatusBadRequest, "BadDigest", fmt.Sprintf("The %s you specified did not match the calculated checksum.", c.name)
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	r.TransferEncoding = nil
	return 0, "", ""
}

// splitList splits a comma-separated header value into trimmed tokens.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// decodeAWSChunked decodes an aws-chunked body:
//
//	<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n[<trailer>:<value>\r\n ...]\r\n
//
// and returns the payload and the trailers (x-amz-trailer-signature dropped),
// keyed by canonical header name.
func decodeAWSChunked(b []byte) ([]byte, map[string]string, error) {
	rd := bufio.NewReader(bytes.NewReader(b))
	var out bytes.Buffer
	for {
		line, err := readCRLFLine(rd)
		if err != nil {
			return nil, nil, fmt.Errorf("chunk header: %w", err)
		}
		sizeHex, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || size < 0 || size > maxS3Body {
			return nil, nil, fmt.Errorf("bad chunk size %q", sizeHex)
		}
		if size == 0 {
			break
		}
		if _, err := io.CopyN(&out, rd, size); err != nil {
			return nil, nil, fmt.Errorf("chunk data: %w", err)
		}
		if end, err := readCRLFLine(rd); err != nil || end != "" {
			return nil, nil, errors.New("chunk data not followed by CRLF")
		}
	}
	trailers := map[string]string{}
	for {
		line, err := readCRLFLine(rd)
		if err == io.EOF && line == "" {
			break // no final empty line: tolerated
		}
		if err != nil {
			return nil, nil, fmt.Errorf("trailer: %w", err)
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("bad trailer line %q", line)
		}
		name = http.CanonicalHeaderKey(strings.TrimSpace(name))
		if name != "X-Amz-Trailer-Signature" {
			trailers[name] = strings.TrimSpace(value)
		}
	}
	return out.Bytes(), trailers, nil
}

// readCRLFLine reads a line ending in \r\n and returns it without the ending.
func readCRLFLine(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		if err == io.EOF && line == "" {
			return "", io.EOF
		}
		return "", fmt.Errorf("line %q: %w", line, io.ErrUnexpectedEOF)
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("line %q does not end in CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}

// takeFailure reports whether a write to bucket/key must fail, consuming one
// use of the first matching rule.
func (s3 *s3Service) takeFailure(bucket, key string) bool {
	s3.mu.Lock()
	defer s3.mu.Unlock()
	for i, rule := range s3.rules {
		if rule.match != nil && !rule.match(bucket, key) {
			continue
		}
		if rule.remaining > 0 {
			rule.remaining--
			if rule.remaining == 0 {
				s3.rules = slices.Delete(s3.rules, i, i+1)
			}
		}
		s3.failures++
		return true
	}
	return false
}

// FailS3Puts makes the next n S3 writes (PutObject, CopyObject, UploadPart,
// CreateMultipartUpload, CompleteMultipartUpload) whose bucket and key match
// answer HTTP 500 InternalError and store nothing. A nil match matches every
// write; n < 0 fails matching writes until ClearS3Faults; n == 0 does
// nothing. Rules add up and are tried in the order they were added. Note that
// the SDK retries a 500 by default.
func (s *Server) FailS3Puts(match func(bucket, key string) bool, n int) {
	if n == 0 {
		return
	}
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	s.s3.rules = append(s.s3.rules, &putFailure{match: match, remaining: n})
}

// ClearS3Faults removes every FailS3Puts rule.
func (s *Server) ClearS3Faults() {
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	s.s3.rules = nil
}

// S3PutFailures returns how many S3 writes were failed by FailS3Puts.
func (s *Server) S3PutFailures() int {
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	return s.s3.failures
}

// CreateBucket creates an S3 bucket.
func (s *Server) CreateBucket(name string) error {
	if err := s.s3.backend.CreateBucket(name); err != nil {
		return fmt.Errorf("emulator: create bucket %s: %w", name, err)
	}
	return nil
}

// S3Object returns the content of an object, read directly from the
// backend, and whether it exists.
func (s *Server) S3Object(bucket, key string) ([]byte, bool) {
	obj, err := s.s3.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, false
	}
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	if err != nil {
		return nil, false
	}
	return b, true
}

// S3Keys returns the sorted keys of a bucket that start with prefix (nil if
// the bucket does not exist).
func (s *Server) S3Keys(bucket, prefix string) []string {
	list, err := s.s3.backend.ListBucket(bucket, &gofakes3.Prefix{HasPrefix: prefix != "", Prefix: prefix}, gofakes3.ListBucketPage{})
	if err != nil {
		return nil
	}
	keys := make([]string, 0, len(list.Contents))
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	slices.Sort(keys)
	return keys
}
