package emulator

import (
	"net/http"
	"strings"
)

// S3 operation names, as the SDK names them (s3.Client methods). Requests
// are counted and refused under these names.
const (
	S3ListBuckets             = "ListBuckets"
	S3CreateBucket            = "CreateBucket"
	S3DeleteBucket            = "DeleteBucket"
	S3HeadBucket              = "HeadBucket"
	S3GetBucketLocation       = "GetBucketLocation"
	S3GetBucketVersioning     = "GetBucketVersioning"
	S3PutBucketVersioning     = "PutBucketVersioning"
	S3ListObjects             = "ListObjects"
	S3ListObjectsV2           = "ListObjectsV2"
	S3ListObjectVersions      = "ListObjectVersions"
	S3ListMultipartUploads    = "ListMultipartUploads"
	S3DeleteObjects           = "DeleteObjects"
	S3GetObject               = "GetObject"
	S3HeadObject              = "HeadObject"
	S3PutObject               = "PutObject"
	S3CopyObject              = "CopyObject"
	S3DeleteObject            = "DeleteObject"
	S3GetObjectACL            = "GetObjectAcl"
	S3PutObjectACL            = "PutObjectAcl"
	S3GetObjectTagging        = "GetObjectTagging"
	S3PutObjectTagging        = "PutObjectTagging"
	S3DeleteObjectTagging     = "DeleteObjectTagging"
	S3CreateMultipartUpload   = "CreateMultipartUpload"
	S3UploadPart              = "UploadPart"
	S3UploadPartCopy          = "UploadPartCopy"
	S3CompleteMultipartUpload = "CompleteMultipartUpload"
	S3AbortMultipartUpload    = "AbortMultipartUpload"
	S3ListParts               = "ListParts"
	// S3OtherOperation names a request the classifier does not know.
	S3OtherOperation = "Other"
)

// s3Operation names the S3 operation of a path-style request, following the
// REST API's routing of methods and subresources
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html)
// in the order gofakes3 routes them (uploadId before everything else).
func s3Operation(r *http.Request, bucket, key string) string {
	q := r.URL.Query()
	if q.Has("uploadId") {
		switch r.Method {
		case http.MethodGet:
			return S3ListParts
		case http.MethodPut:
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				return S3UploadPartCopy
			}
			return S3UploadPart
		case http.MethodDelete:
			return S3AbortMultipartUpload
		case http.MethodPost:
			return S3CompleteMultipartUpload
		}
		return S3OtherOperation
	}
	switch {
	case bucket == "":
		if r.Method == http.MethodGet {
			return S3ListBuckets
		}
	case key == "":
		switch r.Method {
		case http.MethodGet:
			switch {
			case q.Has("location"):
				return S3GetBucketLocation
			case q.Has("versioning"):
				return S3GetBucketVersioning
			case q.Has("versions"):
				return S3ListObjectVersions
			case q.Has("uploads"):
				return S3ListMultipartUploads
			case q.Get("list-type") == "2":
				return S3ListObjectsV2
			}
			return S3ListObjects
		case http.MethodPut:
			if q.Has("versioning") {
				return S3PutBucketVersioning
			}
			return S3CreateBucket
		case http.MethodDelete:
			return S3DeleteBucket
		case http.MethodHead:
			return S3HeadBucket
		case http.MethodPost:
			if q.Has("delete") {
				return S3DeleteObjects
			}
		}
	default:
		switch r.Method {
		case http.MethodGet:
			switch {
			case q.Has("acl"):
				return S3GetObjectACL
			case q.Has("tagging"):
				return S3GetObjectTagging
			}
			return S3GetObject
		case http.MethodHead:
			return S3HeadObject
		case http.MethodPut:
			switch {
			case q.Has("acl"):
				return S3PutObjectACL
			case q.Has("tagging"):
				return S3PutObjectTagging
			case r.Header.Get("X-Amz-Copy-Source") != "":
				return S3CopyObject
			}
			return S3PutObject
		case http.MethodDelete:
			if q.Has("tagging") {
				return S3DeleteObjectTagging
			}
			return S3DeleteObject
		case http.MethodPost:
			if q.Has("uploads") {
				return S3CreateMultipartUpload
			}
		}
	}
	return S3OtherOperation
}

// S3Request is one S3 request the server received.
type S3Request struct {
	Op     string // operation name, such as "PutObject" (the S3* constants)
	Bucket string
	// Key is the object key, or for ListObjects and ListObjectsV2 the
	// prefix parameter ("" when absent).
	Key string
	// Status is the HTTP status of the answer (0 while it is being answered).
	Status int
}

// countS3 records a request before it is answered, so that a client that
// has its answer always finds it counted.
func (s3 *s3Service) countS3(op, bucket, key string) *S3Request {
	e := &S3Request{Op: op, Bucket: bucket, Key: key}
	s3.mu.Lock()
	defer s3.mu.Unlock()
	s3.requests = append(s3.requests, e)
	return e
}

// setStatus records the status of a counted request.
func (s3 *s3Service) setStatus(e *S3Request, status int) {
	if e == nil {
		return
	}
	s3.mu.Lock()
	defer s3.mu.Unlock()
	e.Status = status
}

// S3Requests returns how many S3 requests of an operation (an S3*
// constant such as [S3PutObject]; "" for every operation) the server
// received since it started or since the last [Server.ResetS3Counters]:
// refused, failed and retried requests included, each attempt once. A
// request is counted before it is answered.
func (s *Server) S3Requests(op string) int {
	return s.S3RequestsUnder(op, "")
}

// S3RequestsUnder is [Server.S3Requests] restricted to requests whose key
// starts with keyPrefix; for ListObjects and ListObjectsV2 the key is the
// list's prefix parameter.
func (s *Server) S3RequestsUnder(op, keyPrefix string) int {
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	n := 0
	for _, e := range s.s3.requests {
		if (op == "" || e.Op == op) && strings.HasPrefix(e.Key, keyPrefix) {
			n++
		}
	}
	return n
}

// S3RequestLog returns the requests counted since the start or the last
// [Server.ResetS3Counters], oldest first.
func (s *Server) S3RequestLog() []S3Request {
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	out := make([]S3Request, len(s.s3.requests))
	for i, e := range s.s3.requests {
		out[i] = *e
	}
	return out
}

// ResetS3Counters starts a new counting window for [Server.S3Requests],
// [Server.S3RequestsUnder] and [Server.S3RequestLog]. Refusals
// ([Server.S3Refusals]) are not reset: they cover the server's lifetime,
// so that a test can assert that none happened at all.
func (s *Server) ResetS3Counters() {
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	s.s3.requests = nil
}
