package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/account"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/awsconf"
)

const (
	acctA = "111111111111"
	acctB = "222222222222"
)

// start starts a server closed at the end of the test.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// fast is a config for tests that are not about rate or latency.
func fast() Config { return Config{Rate: math.Inf(1)} }

// awsConfig is a client config with the caller credentials of an account and
// no retries. The checksum settings are those config.LoadDefaultConfig
// applies (a bare aws.Config leaves them unset, and S3 then sends no
// checksum at all).
func awsConfig(s *Server, acct, region string) aws.Config {
	ak, sk := s.CallerCredentials(acct)
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, ""),
		BaseEndpoint: aws.String(s.URL()),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
		HTTPClient:   awsconf.NewHTTPClient(),

		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
	}
}

func ctClient(s *Server, acct, region string) *cloudtrail.Client {
	return cloudtrail.NewFromConfig(awsConfig(s, acct, region))
}

func stsClient(cfg aws.Config) *sts.Client { return sts.NewFromConfig(cfg) }

func accountClient(cfg aws.Config) *account.Client { return account.NewFromConfig(cfg) }

func s3Client(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// record builds a minimal CloudTrail record.
func record(id string, at time.Time) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(
		`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111111111111:user/alice","accountId":"111111111111","accessKeyId":"AKIAEXAMPLE","userName":"alice"},"eventTime":%q,"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"us-east-1","eventID":%q,"readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`,
		at.UTC().Format(time.RFC3339), id))
}

// apiCode returns the smithy error code and HTTP status of an error.
func apiCode(t *testing.T, err error) (string, int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not a smithy.APIError", err)
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return ae.ErrorCode(), status
}

// isA reports whether err is (or wraps) an error of type T.
func isA[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// noBackoff retries at once.
type noBackoff struct{}

func (noBackoff) BackoffDelay(int, error) (time.Duration, error) { return 0, nil }

// retryNoBackoff is the standard retryer with n attempts, no backoff and no
// client-side retry quota.
func retryNoBackoff(n int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = n
		o.Backoff = noBackoff{}
		o.RateLimiter = ratelimit.None
	})
}

// dataset reads the records of the shared CloudTrail sample files, keeping
// each record's bytes exactly as in the file.
func dataset(t *testing.T) []json.RawMessage {
	t.Helper()
	files, err := filepath.Glob("../../../shared/testdata/cloudtrail/invictus-aws-dataset/*.json")
	if err != nil || len(files) == 0 {
		t.Skipf("sample data not found: %v", err)
	}
	var all []json.RawMessage
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		var doc struct{ Records []json.RawMessage }
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("decode %s: %v", f, err)
		}
		all = append(all, doc.Records...)
	}
	return all
}
