package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// gofakes3 stores every X-Amz-* request header of an upload (and
// Content-Type, Content-Disposition, Content-Encoding) as the object's
// metadata and returns all of it on GetObject and HeadObject. So
// x-amz-meta-*, x-amz-server-side-encryption* and the checksums round-trip
// already. This file corrects where that differs from S3:
//   - an overwrite replaces the metadata (s3mem merges the old object's
//     metadata into the new one: s3Backend below);
//   - x-amz-acl and x-amz-grant-* are stored (see [Server.S3ObjectInfo])
//     but never returned: S3 reports ACLs only through GetObjectAcl;
//   - an upload without x-amz-server-side-encryption is stored with SSE-S3
//     (AES256), the base encryption of every bucket since January 2023
//     (https://docs.aws.amazon.com/AmazonS3/latest/userguide/default-encryption-faq.html),
//     aws:kms without a key ID gets the account's AWS managed key aws/s3,
//     and PutObject, CopyObject and CreateMultipartUpload echo the
//     encryption headers, as their responses do;
//   - invalid canned ACLs and encryption headers are refused with 400
//     InvalidArgument;
//   - the SSE-C key itself is never stored.

// s3Backend is the in-memory backend with S3's overwrite semantics: a PUT
// replaces the object's metadata. s3mem.Backend.PutObject merges the
// existing object's metadata into the new upload's (gofakes3.MergeMetadata);
// every key of the old object missing from the new upload is given an
// empty value here, which s3Response drops from answers and S3ObjectInfo
// ignores.
type s3Backend struct {
	*s3mem.Backend
}

// PutObject implements gofakes3.Backend.
func (b *s3Backend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if old, err := b.Backend.HeadObject(bucket, key); err == nil {
		old.Contents.Close()
		for k := range old.Metadata {
			if _, ok := meta[k]; !ok {
				meta[k] = ""
			}
		}
	}
	return b.Backend.PutObject(bucket, key, meta, input, size, cond)
}

// CopyObject implements gofakes3.Backend, writing through s3Backend.PutObject.
func (b *s3Backend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
}

// cannedACLs are the canned ACLs S3 accepts in x-amz-acl
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html#canned-acl).
var cannedACLs = []string{
	"private", "public-read", "public-read-write", "aws-exec-read",
	"authenticated-read", "bucket-owner-read", "bucket-owner-full-control",
	"log-delivery-write",
}

// sseAlgorithms are the values of x-amz-server-side-encryption
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
var sseAlgorithms = []string{"AES256", "aws:kms", "aws:kms:dsse"}

const (
	hdrSSE            = "X-Amz-Server-Side-Encryption"
	hdrSSEKey         = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
	hdrSSEBucketKey   = "X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"
	hdrSSECustomer    = "X-Amz-Server-Side-Encryption-Customer-Key"
	hdrACL            = "X-Amz-Acl"
	hdrGrantPrefix    = "X-Amz-Grant-"
	hdrUserMetaPrefix = "X-Amz-Meta-"
)

// awsManagedS3Key is the ARN of an account's AWS managed key aws/s3 in a
// region, which S3 uses for aws:kms without a key ID
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html).
// The key ID is derived from the account and region.
func awsManagedS3Key(account, region string) string {
	sum := sha256.Sum256([]byte("aws/s3/" + account + "/" + region))
	h := hex.EncodeToString(sum[:16])
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s-%s-%s-%s-%s", region, account, h[:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// prepareS3Metadata validates and completes the ACL and encryption headers
// of PutObject, CopyObject and CreateMultipartUpload before gofakes3 stores
// them, and returns the headers their answer echoes. A non-zero status is
// an S3 error to answer instead.
func prepareS3Metadata(r *http.Request, op string, id Identity) (echo http.Header, status int, code, message string) {
	h := r.Header
	if acl := h.Get(hdrACL); acl != "" && !slices.Contains(cannedACLs, acl) {
		return nil, http.StatusBadRequest, "InvalidArgument", fmt.Sprintf("Invalid canned ACL %q", acl)
	}
	sse := h.Get(hdrSSE)
	if sse != "" && !slices.Contains(sseAlgorithms, sse) {
		return nil, http.StatusBadRequest, "InvalidArgument", "The encryption method specified is not supported"
	}
	if h.Get(hdrSSEKey) != "" && !strings.HasPrefix(sse, "aws:kms") {
		return nil, http.StatusBadRequest, "InvalidArgument",
			"Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
	}
	h.Del(hdrSSECustomer)
	switch {
	case sse == "" && h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "":
		// SSE-C: the algorithm and key MD5 are stored and returned.
	case sse == "":
		h.Set(hdrSSE, "AES256")
		if op == S3CopyObject {
			// A copy takes the destination's default encryption, not the
			// source's: blank what gofakes3 would carry over.
			h.Set(hdrSSEKey, "")
			h.Set(hdrSSEBucketKey, "")
		}
	case h.Get(hdrSSEKey) == "":
		h.Set(hdrSSEKey, awsManagedS3Key(id.Account, id.Region))
	}
	echo = http.Header{}
	for _, k := range []string{hdrSSE, hdrSSEKey, hdrSSEBucketKey} {
		if v := h.Get(k); v != "" {
			echo.Set(k, v)
		}
	}
	return echo, 0, "", ""
}

// storedOnlyHeaders are request headers gofakes3 stores with an object
// that S3 never returns on GetObject or HeadObject.
var storedOnlyHeaders = []string{
	hdrACL, "X-Amz-Copy-Source", "X-Amz-Metadata-Directive", "X-Amz-Tagging-Directive",
	"X-Amz-Expected-Bucket-Owner", "X-Amz-Request-Payer",
}

// storedOnly reports whether a stored metadata header is kept from
// answers.
func storedOnly(name string) bool {
	return slices.Contains(storedOnlyHeaders, name) || strings.HasPrefix(name, hdrGrantPrefix)
}

// s3Response wraps the answer of an S3 request: it records the status,
// drops stored-only and blanked metadata headers, and adds the headers a
// successful write echoes.
type s3Response struct {
	http.ResponseWriter
	s3    *s3Service
	entry *S3Request
	echo  http.Header
	wrote bool
}

// WriteHeader implements http.ResponseWriter.
func (w *s3Response) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.Header()
	for k, v := range h {
		if storedOnly(k) || (len(v) > 0 && v[0] == "") {
			h.Del(k)
		}
	}
	if status < 300 {
		for k, v := range w.echo {
			h[k] = v
		}
	}
	w.s3.setStatus(w.entry, status)
	w.ResponseWriter.WriteHeader(status)
}

// finish sends the status line when the handler set only headers (net/http
// would send 200 itself, past this wrapper).
func (w *s3Response) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
}

// Write implements http.ResponseWriter.
func (w *s3Response) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// S3ObjectInfo is what S3 keeps about an object besides its bytes, as
// given on upload and completed by S3 (see [Server.S3ObjectInfo]).
type S3ObjectInfo struct {
	Size        int64
	ETag        string // quoted, as S3 returns it
	ContentType string
	// Metadata is the user metadata (x-amz-meta-*), keyed by the lower-case
	// name after the prefix, as the SDK's Metadata maps are.
	Metadata map[string]string
	// ACL is the canned ACL given with x-amz-acl ("" when none was given:
	// S3 then applies "private"). S3 does not return it on GetObject or
	// HeadObject.
	ACL string
	// Grants are the x-amz-grant-* headers given, keyed by lower-case
	// header name ("x-amz-grant-read", ...).
	Grants map[string]string
	// SSE is the server-side encryption: "AES256" (also when the upload
	// named none), "aws:kms" or "aws:kms:dsse".
	SSE              string
	SSEKMSKeyID      string // the KMS key ARN for aws:kms
	BucketKeyEnabled bool
}

// S3ObjectInfo returns what is stored about an object besides its bytes,
// read directly from the backend, and whether the object exists.
func (s *Server) S3ObjectInfo(bucket, key string) (S3ObjectInfo, bool) {
	obj, err := s.s3.backend.HeadObject(bucket, key)
	if err != nil {
		return S3ObjectInfo{}, false
	}
	obj.Contents.Close()
	info := S3ObjectInfo{
		Size:     obj.Size,
		ETag:     `"` + hex.EncodeToString(obj.Hash) + `"`,
		Metadata: map[string]string{},
		Grants:   map[string]string{},
	}
	for k, v := range obj.Metadata {
		if v == "" {
			continue
		}
		switch {
		case k == "Content-Type":
			info.ContentType = v
		case k == hdrACL:
			info.ACL = v
		case k == hdrSSE:
			info.SSE = v
		case k == hdrSSEKey:
			info.SSEKMSKeyID = v
		case k == hdrSSEBucketKey:
			info.BucketKeyEnabled = strings.EqualFold(v, "true")
		case strings.HasPrefix(k, hdrGrantPrefix):
			info.Grants[strings.ToLower(k)] = v
		case strings.HasPrefix(k, hdrUserMetaPrefix):
			info.Metadata[strings.ToLower(k[len(hdrUserMetaPrefix):])] = v
		}
	}
	return info, true
}
