// Package awsconf loads the standard AWS SDK configuration (profile, region,
// AWS_ENDPOINT_URL_<SERVICE>) once and builds the clients trailfill uses, with
// retries configured deliberately.
package awsconf

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Load reads the shared AWS configuration. Only the SDK's own sources are used:
// environment, shared config/credentials files (AWS_PROFILE or profile), and
// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> for emulators. profile may be empty.
func Load(ctx context.Context, profile string) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return StandardRetryer() }),
	}
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration (check AWS_PROFILE and ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, nil
}

// StandardRetryer is the retryer for everything but LookupEvents: the SDK's standard
// retryer without its client-wide retry quota (the quota turns a burst of
// throttling into hard "retry quota exceeded" failures), with more attempts.
func StandardRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 8
		o.MaxBackoff = 20 * time.Second
		o.RateLimiter = ratelimit.None
	})
}

// endpointOverridden reports whether the SDK will send S3 requests to a custom
// endpoint (an emulator or an S3-compatible store).
func endpointOverridden(cfg aws.Config) bool {
	return cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
}

// NewS3 returns the S3 client. A custom endpoint (AWS_ENDPOINT_URL[_S3]) gets
// path-style addressing, which S3-compatible stores and emulators on an IP address
// need. Checksums are sent only where S3 requires them; archive writes carry
// Content-MD5 themselves.
func NewS3(cfg aws.Config) *s3.Client {
	path := endpointOverridden(cfg)
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = o.UsePathStyle || path
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}
