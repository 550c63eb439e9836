// Package awsconf is trailfill's AWS plumbing, in one place for the product,
// the demo and the tests: the SDK configuration (one builder, one HTTP
// stack, retries configured deliberately), the S3 client, partition-aware
// ARNs, and the registry of per-account credentials and per-partition
// LookupEvents limiters that every command and the Lambda share.
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
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultRegion is the region used when the SDK configuration names none.
const DefaultRegion = "us-east-1"

// Options of Build. The zero value is the standard SDK configuration.
type Options struct {
	// Profile is the shared-config profile; empty: AWS_PROFILE or default.
	Profile string
	// Region overrides the configured region; empty: the SDK's (AWS_REGION,
	// the profile), else DefaultRegion.
	Region string
	// StaticCredentials, when set, are the only credentials, and no shared
	// config or credentials file is read: the emulators of the demo and the
	// tests.
	StaticCredentials *StaticCredentials
	// BaseEndpoint sends every service to one endpoint (an emulator); empty:
	// the SDK's own resolution, AWS_ENDPOINT_URL[_<SERVICE>] included.
	BaseEndpoint string
}

// StaticCredentials are an access key pair.
type StaticCredentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Build returns the SDK configuration. Only the SDK's own sources are used
// (environment, shared files, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>),
// unless Options say otherwise; every client built from it retries with
// StandardRetryer and sends through BodyRaceClient.
func Build(ctx context.Context, o Options) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return StandardRetryer() }),
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if c := o.StaticCredentials; c != nil {
		opts = append(opts,
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)),
			config.WithSharedConfigFiles([]string{}),
			config.WithSharedCredentialsFiles([]string{}),
		)
	}
	if o.BaseEndpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(o.BaseEndpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration (check AWS_PROFILE and ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	// Wrap the client the SDK built (it honours AWS_CA_BUNDLE, proxies and
	// timeouts) rather than replace it.
	cfg.HTTPClient = BodyRaceClient{Base: cfg.HTTPClient}
	return cfg, nil
}

// Load is Build with the standard configuration and an optional profile.
func Load(ctx context.Context, profile string) (aws.Config, error) {
	return Build(ctx, Options{Profile: profile})
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
