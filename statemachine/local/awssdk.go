package local

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// AWS SDK service integrations ("AWS SDK service integrations", AWS Step
// Functions Developer Guide,
// docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html):
// the Arguments are the API request with its members in PascalCase, and the
// result is the API response, members in PascalCase too, without
// ResponseMetadata. A service error fails the task with
// <Service>.<Exception> ("S3.NoSuchKeyException") and the cause "<message>
// (Service: <Service>, Status Code: <status>, Request ID: <id>)", as
// recorded from AWS in LocalStack's validated snapshot tests.

// mapRunRecord is a Map Run as DescribeMapRun describes it.
type mapRunRecord struct {
	mu                   sync.Mutex
	arn, execArn, status string
	start, stop          time.Time
	counts               MapRunCounts
	maxConcurrency       int
	toleratedPct         float64
	toleratedCount       int
}

// mapRuns holds the Map Runs of one execution tree by ARN.
type mapRuns struct {
	mu   sync.Mutex
	runs map[string]*mapRunRecord
}

func (m *mapRuns) add(r *mapRunRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		m.runs = map[string]*mapRunRecord{}
	}
	m.runs[r.arn] = r
}

func (m *mapRuns) get(arn string) *mapRunRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[arn]
}

func (r *mapRunRecord) update(f func(*mapRunRecord)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// sdkFailure is an AWS service error of an aws-sdk Task.
type sdkFailure struct{ name, cause string }

// serviceError builds the error of a failed AWS SDK call.
func serviceError(service, exception string, status int, message string) *sdkFailure {
	return &sdkFailure{
		name:  service + "." + exception,
		cause: fmt.Sprintf("%s (Service: %s, Status Code: %d, Request ID: %s)", message, service, status, newUUID()),
	}
}

// callSDK runs an aws-sdk Task integration with its evaluated Arguments.
func (r *stateRun) callSDK(ctx context.Context, args any) (any, *sdkFailure) {
	obj, ok := args.(map[string]any)
	if !ok {
		return nil, &sdkFailure{name: ErrorRuntime, cause: fmt.Sprintf(
			"the Arguments of state '%s' must be an object for %s, got %s", r.st.name, integrationName(r.st.integration), typeName(args))}
	}
	switch r.st.integration {
	case integrationDescribeMapRun:
		return r.describeMapRun(obj)
	default:
		return r.s3GetObject(ctx, obj)
	}
}

// describeMapRun answers sfn:DescribeMapRun from the Map Runs of this
// execution tree, in the shape of the DescribeMapRun response (API
// reference): MapRunArn, ExecutionArn, Status, StartDate, StopDate (once
// ended), MaxConcurrency, ToleratedFailurePercentage,
// ToleratedFailureCount, ItemCounts and ExecutionCounts (equal: one item
// per child, no ItemBatcher), RedriveCount.
func (r *stateRun) describeMapRun(args map[string]any) (any, *sdkFailure) {
	for k := range args {
		if k != "MapRunArn" {
			return nil, serviceError("Sfn", "SfnException", 400, fmt.Sprintf("Unknown parameter %s of DescribeMapRun", k))
		}
	}
	arn, ok := args["MapRunArn"].(string)
	if !ok || arn == "" {
		return nil, serviceError("Sfn", "InvalidArnException", 400, fmt.Sprintf("Invalid Arn: '%s'", encodeString(args["MapRunArn"])))
	}
	if p := strings.Split(arn, ":"); len(p) != 8 || p[0] != "arn" || p[2] != "states" || p[5] != "mapRun" {
		return nil, serviceError("Sfn", "InvalidArnException", 400, fmt.Sprintf("Invalid Arn: 'Resource type not valid in this context: %s'", arn))
	}
	rec := r.t.ex.s.mapRuns.get(arn)
	if rec == nil {
		return nil, serviceError("Sfn", "ResourceNotFoundException", 400, fmt.Sprintf("Resource not found: '%s'", arn))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	c := rec.counts
	counts := map[string]any{
		"Aborted": float64(c.Aborted), "Failed": float64(c.Failed), "Pending": float64(c.Pending),
		"ResultsWritten": float64(c.ResultsWritten), "Running": float64(c.Running), "Succeeded": float64(c.Succeeded),
		"TimedOut": float64(0), "Total": float64(c.Total), "FailuresNotRedrivable": float64(0), "PendingRedrive": float64(0),
	}
	out := map[string]any{
		"MapRunArn":                  rec.arn,
		"ExecutionArn":               rec.execArn,
		"Status":                     rec.status,
		"StartDate":                  timestamp(rec.start),
		"MaxConcurrency":             float64(rec.maxConcurrency),
		"ToleratedFailurePercentage": rec.toleratedPct,
		"ToleratedFailureCount":      float64(rec.toleratedCount),
		"ItemCounts":                 counts,
		"ExecutionCounts":            counts,
		"RedriveCount":               float64(0),
	}
	if !rec.stop.IsZero() {
		out["StopDate"] = timestamp(rec.stop)
	}
	return out, nil
}

// s3GetObject answers s3:GetObject through Options.S3 with the members of
// the GetObject response Step Functions returns (AcceptRanges, Body as a
// string, ContentLength, ContentType, ETag, LastModified, Metadata).
func (r *stateRun) s3GetObject(ctx context.Context, args map[string]any) (any, *sdkFailure) {
	for k := range args {
		if k != "Bucket" && k != "Key" {
			return nil, serviceError("S3", "S3Exception", 400, fmt.Sprintf("Unsupported parameter %s of GetObject", k))
		}
	}
	bucket, _ := args["Bucket"].(string)
	key, _ := args["Key"].(string)
	if bucket == "" || key == "" {
		return nil, serviceError("S3", "S3Exception", 400, "GetObject needs a Bucket and a Key string")
	}
	s3 := r.t.ex.s.s3
	var (
		obj *S3Object
		err error
	)
	if g, ok := s3.(S3ObjectGetter); ok {
		obj, err = g.GetObjectInfo(ctx, bucket, key)
	} else {
		var body []byte
		if body, err = s3.GetObject(ctx, bucket, key); err == nil {
			obj = &S3Object{Body: body}
		}
	}
	switch {
	case errors.Is(err, ErrNoSuchKey):
		return nil, serviceError("S3", "NoSuchKeyException", 404, "The specified key does not exist.")
	case errors.Is(err, ErrNoSuchBucket):
		return nil, serviceError("S3", "NoSuchBucketException", 404, "The specified bucket does not exist")
	case err != nil:
		var named interface{ ErrorName() string }
		if errors.As(err, &named) {
			name, cause := taskErrorNames(err)
			return nil, &sdkFailure{name: name, cause: cause}
		}
		return nil, serviceError("S3", "S3Exception", 500, err.Error())
	}
	etag := obj.ETag
	if etag == "" {
		sum := md5.Sum(obj.Body)
		etag = `"` + hex.EncodeToString(sum[:]) + `"`
	}
	contentType := obj.ContentType
	if contentType == "" {
		contentType = "binary/octet-stream"
	}
	out := map[string]any{
		"AcceptRanges":  "bytes",
		"Body":          string(obj.Body),
		"ContentLength": float64(len(obj.Body)),
		"ContentType":   contentType,
		"ETag":          etag,
		"Metadata":      map[string]any{},
	}
	if !obj.LastModified.IsZero() {
		out["LastModified"] = timestamp(obj.LastModified)
	}
	return out, nil
}
