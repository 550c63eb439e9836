// Package emulator serves in-process emulators of the AWS APIs trailfill calls,
// over real HTTP on 127.0.0.1, so that the real aws-sdk-go-v2 clients talk to
// them at the wire level. It is test equipment (tests and `trailfill demo`),
// never used against real AWS.
//
// One listener serves every service. A request is routed by the service name in
// the SigV4 credential scope of its Authorization header (or of the
// X-Amz-Credential query parameter of a presigned URL), for example
// `Credential=AKID/20250101/us-east-1/cloudtrail/aws4_request`. Signatures are
// not verified; only the access key, the region and the service are read. The
// access key must be one the server issued (see [Server.CallerCredentials] and
// sts:AssumeRole), otherwise the request is refused with the protocol's own
// error.
//
// Built-in services:
//
//   - cloudtrail: LookupEvents (awsJson1_1), with the per (account, region)
//     token bucket of 2 requests/s (HTTP 400 ThrottlingException over it),
//     50 events per page, inclusive time bounds, newest-first order, NextToken
//     bound to the request parameters, injectable latency and 500/503 faults.
//     The trail APIs GetTrail, DescribeTrails, GetEventSelectors,
//     GetTrailStatus and ListTrails (not throttled) answer for the trails of
//     [Server.AddTrail] with CloudTrail's field names and errors
//     (TrailNotFoundException, InvalidTrailNameException,
//     CloudTrailARNInvalidException): names resolve in the trail's home
//     region only, ARNs also where a multi-region trail has shadows, and
//     organization trails ([Server.SetOrganization]) are visible from member
//     accounts by ARN; [Server.SetTrailStatus] changes a status,
//     [Server.CloudTrailCalls] counts requests.
//   - sts: GetCallerIdentity and AssumeRole (awsQuery, XML).
//   - account: ListRegions (restJson1).
//   - lambda: GetAccountSettings (restJson1), AWS's default limits (1,000
//     concurrent executions, all unreserved) unless
//     [Server.SetLambdaAccountSettings] says otherwise.
//   - s3: github.com/johannesboyne/gofakes3 over an in-memory backend, wrapped
//     to decode aws-chunked bodies, verify x-amz-checksum-* values and inject
//     PutObject failures ([Server.FailS3Puts]), and to answer as S3 does
//     where gofakes3 differs: an overwrite replaces the object's metadata;
//     x-amz-meta-*, the SSE headers (x-amz-server-side-encryption, its
//     -aws-kms-key-id and -bucket-key-enabled) and the checksums come back on
//     GetObject and HeadObject, x-amz-acl and x-amz-grant-* are stored but
//     not returned ([Server.S3ObjectInfo] shows them); an upload without
//     encryption headers is stored as SSE-S3 (AES256), aws:kms without a
//     key gets a derived aws/s3 key ARN; PutObject and CopyObject answers
//     echo the encryption. PutObject honours If-None-Match: * and If-Match
//     (compare-and-swap on the ETag; 412 when it changed or is gone),
//     serialised; CompleteMultipartUpload honours If-None-Match: *.
//
// # S3 access policies
//
// [Server.SetS3Policy] gives a bucket what IAM and a bucket policy together
// make S3 answer ([S3Policy]): create-only prefixes (PutObject and
// CompleteMultipartUpload need If-None-Match; DeleteObject, DeleteObjects
// entries and CopyObject there are refused), list prefixes (ListObjects and
// ListObjectsV2 only under them, as StringLike on s3:prefix: no prefix is
// refused too), 403 instead of 404 for a missing key (no s3:ListBucket),
// a required canned ACL (x-amz-acl: bucket-owner-full-control) and a
// required SSE-KMS key. Refusals are 403 AccessDenied (501 NotImplemented
// for a conditional CopyObject onto a create-only key), store nothing and
// are kept in [Server.S3Refusals], so a test can assert that none happened.
// HeadObject answers have no body, as S3's; the SDK then names the error
// by its status ("Forbidden", or the typed NotFound for 404).
//
// Every S3 request is counted under its SDK operation name, before it is
// answered: [Server.S3Requests], [Server.S3RequestsUnder] (by key or list
// prefix), [Server.S3RequestLog]; [Server.ResetS3Counters] starts a new
// window (refusals are kept).
//
// Step Functions ([NewStepFunctions]: StartExecution, DescribeExecution,
// GetExecutionHistory, ListMapRuns, DescribeMapRun, backed by statemachine/local)
// and CloudFormation ([NewCloudFormation]: DescribeStacks) attach to a Server
// through [Server.Handle], as further services can; their handlers find the
// caller with [IdentityFromContext].
//
// # Client configuration
//
// Point clients at [Server.URL] with the SDK's BaseEndpoint option or the
// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables, and use the static
// credentials from [Server.CallerCredentials]. Wire facts a client must respect:
//
//   - S3 must use path-style addressing (s3.Options.UsePathStyle = true). The
//     SDK already falls back to path style when the endpoint host is an IP
//     address, as [Server.URL] is, but set it anyway so `localhost` URLs work.
//   - The endpoint is plain HTTP. Over HTTP the S3 client computes its
//     request checksum up front and sends it as an x-amz-checksum-* header
//     with a plain body (aws-chunked bodies with trailing checksums are used
//     only over TLS), and it refuses unseekable bodies ("unseekable stream is
//     not supported without TLS and trailing checksum", or "request stream is
//     not seekable" from the signer): give PutObject a bytes.Reader or another
//     io.Seeker. config.LoadDefaultConfig sets RequestChecksumCalculation and
//     ResponseChecksumValidation to WhenSupported (CRC32 on every PutObject);
//     a hand-built aws.Config leaves them unset and S3 then sends no checksum.
//     Both work here: the emulator decodes aws-chunked bodies anyway (signed
//     and unsigned, with trailers), verifies every x-amz-checksum-* value
//     (400 BadDigest on mismatch), stores it and returns it from GetObject
//     and HeadObject, where the SDK validates it. No
//     RequestChecksumCalculation setting is needed for gofakes3.
//   - Use awsconf.Build's configuration, or awsconf.NewHTTPClient as the
//     SDK's HTTP client of a hand-built aws.Config. Without it, a fast local server triggers a smithy-go/net/http
//     race that fails about one call in a few hundred with "use of closed
//     network connection" after a 200 answer, or, with retries on, silently
//     sends the request twice.
//   - A throttled LookupEvents is HTTP 400 with X-Amzn-ErrorType and __type
//     ThrottlingException; the SDK surfaces it as a smithy.APIError whose
//     ErrorCode() is "ThrottlingException" (there is no typed error for it in
//     the cloudtrail package). The SDK's standard retryer retries it, and its
//     client-wide retry quota runs out after a few dozen throttled calls;
//     tests of error paths should set RetryMaxAttempts = 1 or aws.NopRetryer.
//   - Faults are HTTP 500 InternalFailure and 503 ServiceUnavailable; the SDK
//     retries both by default.
//   - The lookback window of 90 days is not enforced: event history holds
//     whatever was added, however old (replays of old trail files).
package emulator
