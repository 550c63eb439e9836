package emulator

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// S3Policy is what IAM and a bucket policy together make S3 answer for one
// bucket. The zero value allows everything. Each field is one restriction
// found in real deployments; a refused request is answered as S3 answers
// it (403 AccessDenied unless said otherwise), stores and deletes nothing,
// and is recorded in [Server.S3Refusals].
type S3Policy struct {
	// CreateOnlyPrefixes makes keys under these prefixes create-only, as an
	// s3:PutObject grant conditioned on s3:if-none-match does, with no
	// s3:DeleteObject grant there
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html):
	//   - PutObject and CompleteMultipartUpload without an If-None-Match
	//     header are refused (the Null condition on s3:if-none-match; the
	//     header's value is then checked by the write itself: "*" on an
	//     existing key answers 412 PreconditionFailed);
	//   - CreateMultipartUpload and UploadPart are allowed, as the
	//     s3:ObjectCreationOperation exemption of the documented policy does
	//     (these APIs take no conditional header);
	//   - CopyObject onto such a key is refused: 403 without a conditional
	//     header, 501 NotImplemented with one, as the page above says;
	//   - DeleteObject is refused, and so is each such key of a
	//     DeleteObjects request (an Error entry with Code AccessDenied,
	//     while the other keys are deleted).
	CreateOnlyPrefixes []string
	// ListPrefixes restricts ListObjects and ListObjectsV2 to prefixes
	// under these, as an s3:ListBucket grant with a StringLike condition on
	// s3:prefix ("<entry>*") does: a request whose prefix parameter is
	// absent, empty or not under an entry is refused. Entries may hold the
	// StringLike wildcards * and ?. nil: no restriction.
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html)
	ListPrefixes []string
	// MissingKeyForbidden answers GetObject and HeadObject of a missing key
	// with 403 AccessDenied instead of 404: "If you don't have the
	// s3:ListBucket permission, Amazon S3 returns an HTTP status code 403"
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html,
	// API_HeadObject.html). A ListBucket grant conditioned on s3:prefix
	// does not count: the GET carries no s3:prefix. HeadObject answers
	// without a body, as S3 does; the SDK then reports the code
	// "Forbidden".
	MissingKeyForbidden bool
	// RequireACL refuses PutObject, CopyObject and CreateMultipartUpload
	// whose x-amz-acl header is not this canned ACL, as CloudTrail's own
	// bucket policy statement does with
	// "StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}
	// (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html).
	RequireACL string
	// RequireSSEKMSKey refuses PutObject, CopyObject and
	// CreateMultipartUpload unless they send
	// x-amz-server-side-encryption: aws:kms and
	// x-amz-server-side-encryption-aws-kms-key-id equal to this key ARN, as
	// a bucket policy denying with StringNotEquals on
	// s3:x-amz-server-side-encryption and
	// s3:x-amz-server-side-encryption-aws-kms-key-id does (an explicit deny:
	// a key ID or alias instead of the ARN does not match)
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-kms-encryption.html).
	// Multipart uploads are checked at CreateMultipartUpload, where S3
	// takes their encryption.
	RequireSSEKMSKey string
	// AppliesTo selects the callers the policy restricts (nil: every
	// caller), for instance the deployed role but not an operator who runs
	// a cleanup with broader rights.
	AppliesTo func(Identity) bool
}

// Reasons of an [S3Refusal].
const (
	RefusedCreateOnly = "create-only" // write or delete under CreateOnlyPrefixes
	RefusedListPrefix = "list-prefix" // list outside ListPrefixes
	RefusedMissingKey = "missing-key" // GET/HEAD of a missing key with MissingKeyForbidden
	RefusedACL        = "acl"         // x-amz-acl not RequireACL
	RefusedSSEKMS     = "sse-kms"     // encryption headers not RequireSSEKMSKey
)

// S3Refusal is one request (or one key of a DeleteObjects request) that an
// [S3Policy] refused.
type S3Refusal struct {
	Op     string // S3 operation name, such as "PutObject"
	Bucket string
	Key    string // object key, or the prefix of a list
	Reason string // one of the Refused* constants
	Caller string // ARN of the caller
}

func (r S3Refusal) String() string {
	return fmt.Sprintf("%s s3://%s/%s refused (%s) for %s", r.Op, r.Bucket, r.Key, r.Reason, r.Caller)
}

// SetS3Policy sets (replaces) the policy of a bucket; the zero S3Policy
// removes every restriction. The bucket need not exist yet.
func (s *Server) SetS3Policy(bucket string, p S3Policy) {
	p.CreateOnlyPrefixes = slices.Clone(p.CreateOnlyPrefixes)
	if p.ListPrefixes != nil {
		p.ListPrefixes = slices.Clone(p.ListPrefixes)
	}
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	if s.s3.policies == nil {
		s.s3.policies = map[string]*S3Policy{}
	}
	s.s3.policies[bucket] = &p
}

// S3Refusals returns every refusal of the server's lifetime, oldest first
// ([Server.ResetS3Counters] does not clear them).
func (s *Server) S3Refusals() []S3Refusal {
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	return slices.Clone(s.s3.refusals)
}

// policyFor returns the policy restricting a caller in a bucket, or nil.
func (s3 *s3Service) policyFor(bucket string, id Identity) *S3Policy {
	s3.mu.Lock()
	p := s3.policies[bucket]
	s3.mu.Unlock()
	if p == nil || (p.AppliesTo != nil && !p.AppliesTo(id)) {
		return nil
	}
	return p
}

func (s3 *s3Service) refuse(op, bucket, key, reason string, id Identity) {
	s3.mu.Lock()
	defer s3.mu.Unlock()
	s3.refusals = append(s3.refusals, S3Refusal{Op: op, Bucket: bucket, Key: key, Reason: reason, Caller: id.ARN})
}

// underAny reports whether key starts with one of the prefixes.
func underAny(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// stringLike matches s against an IAM StringLike pattern: * is any run of
// characters (slashes included), ? is one character
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String).
func stringLike(pattern, s string) bool {
	// Iterative glob match with one backtrack point per star.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// denial is a refusal to answer: the reason recorded and the answer.
type denial struct {
	reason  string
	status  int
	code    string
	message string
}

// accessDenied builds the enhanced access-denied message S3 gives
// same-account callers: "User: <arn> is not authorized to perform: <action>
// on resource: "<arn>" because <context>"
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/troubleshoot-403-errors.html).
func accessDenied(reason string, id Identity, action, resource string, explicit bool) *denial {
	because := "because no identity-based policy allows the " + action + " action"
	if explicit {
		because = "with an explicit deny in a resource-based policy"
	}
	return &denial{reason, http.StatusForbidden, "AccessDenied",
		fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %q %s", id.ARN, action, resource, because)}
}

// check applies a policy to one request (DeleteObjects is checked per key
// by deleteObjects). It returns nil when the request may proceed.
func (p *S3Policy) check(s3 *s3Service, op string, r *http.Request, bucket, key string, id Identity) *denial {
	objectARN := "arn:aws:s3:::" + bucket + "/" + key
	switch op {
	case S3PutObject, S3CopyObject, S3CreateMultipartUpload:
		if p.RequireSSEKMSKey != "" &&
			(r.Header.Get("X-Amz-Server-Side-Encryption") != "aws:kms" ||
				r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != p.RequireSSEKMSKey) {
			return accessDenied(RefusedSSEKMS, id, "s3:PutObject", objectARN, true)
		}
		if p.RequireACL != "" && r.Header.Get("X-Amz-Acl") != p.RequireACL {
			return accessDenied(RefusedACL, id, "s3:PutObject", objectARN, false)
		}
		if op == S3CreateMultipartUpload || !underAny(key, p.CreateOnlyPrefixes) {
			return nil
		}
		conditional := r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != ""
		if op == S3CopyObject && conditional {
			return &denial{RefusedCreateOnly, http.StatusNotImplemented, "NotImplemented",
				"A header you provided implies functionality that is not implemented"}
		}
		if r.Header.Get("If-None-Match") == "" {
			return accessDenied(RefusedCreateOnly, id, "s3:PutObject", objectARN, false)
		}
	case S3CompleteMultipartUpload:
		if underAny(key, p.CreateOnlyPrefixes) && r.Header.Get("If-None-Match") == "" {
			return accessDenied(RefusedCreateOnly, id, "s3:PutObject", objectARN, false)
		}
	case S3DeleteObject:
		if underAny(key, p.CreateOnlyPrefixes) {
			return accessDenied(RefusedCreateOnly, id, "s3:DeleteObject", objectARN, false)
		}
	case S3ListObjects, S3ListObjectsV2:
		if p.ListPrefixes == nil {
			return nil
		}
		prefix := r.URL.Query().Get("prefix")
		for _, lp := range p.ListPrefixes {
			if stringLike(lp+"*", prefix) && prefix != "" {
				return nil
			}
		}
		return accessDenied(RefusedListPrefix, id, "s3:ListBucket", "arn:aws:s3:::"+bucket, false)
	case S3GetObject, S3HeadObject:
		if !p.MissingKeyForbidden || r.URL.Query().Get("versionId") != "" {
			return nil
		}
		obj, err := s3.backend.HeadObject(bucket, key)
		if err == nil {
			obj.Contents.Close()
		}
		if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
			// S3 says no more than this: the caller may not learn whether
			// the key exists.
			return &denial{RefusedMissingKey, http.StatusForbidden, "AccessDenied", "Access Denied"}
		}
	}
	return nil
}

// deleteObjects answers a DeleteObjects request under a policy with
// create-only prefixes: the refused keys become Error entries (Code
// AccessDenied), the others are deleted, as S3 answers a multi-object
// delete whose keys are partly denied
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html).
// It reports false, with the body restored, when no key is refused and
// gofakes3 may answer.
func (s *Server) deleteObjects(w http.ResponseWriter, r *http.Request, p *S3Policy, bucket string, id Identity) bool {
	if len(p.CreateOnlyPrefixes) == 0 {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil || len(body) > maxAPIBody {
		s.writeS3Error(w, r, http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.")
		return true
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in gofakes3.DeleteRequest
	if err := xml.Unmarshal(body, &in); err != nil {
		return false // gofakes3 answers MalformedXML
	}
	var allowed []gofakes3.ObjectID
	var result gofakes3.MultiDeleteResult
	for _, o := range in.Objects {
		if underAny(o.Key, p.CreateOnlyPrefixes) {
			s.s3.refuse(S3DeleteObjects, bucket, o.Key, RefusedCreateOnly, id)
			result.Error = append(result.Error, gofakes3.ErrorResult{Key: o.Key, Code: "AccessDenied", Message: "Access Denied"})
			continue
		}
		allowed = append(allowed, o)
	}
	if len(result.Error) == 0 {
		return false
	}
	if len(allowed) > 0 {
		done, err := s.s3.backend.DeleteMultiVersions(bucket, allowed...)
		if err != nil {
			var code gofakes3.ErrorCode = gofakes3.ErrInternal
			if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
				code = gofakes3.ErrNoSuchBucket
			}
			s.writeS3Error(w, r, code.Status(), string(code), err.Error())
			return true
		}
		result.Deleted = done.Deleted
		result.Error = append(done.Error, result.Error...)
	}
	if in.Quiet {
		result.Deleted = nil
	}
	writeXML(w, http.StatusOK, result)
	return true
}
