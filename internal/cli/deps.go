package cli

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
)

// deps are the dependencies commands share, each created on first use and
// then reused for the rest of the command (aws-vault's cli/global.go is the
// model): the AWS configuration, the S3 client and archive stores, the STS,
// CloudFormation, Step Functions and Lambda clients, and the credential and
// limiter registry. A command that never touches AWS (plan, a local run of
// `verify --out DIR --accounts ... --regions ...`) loads no configuration.
type deps struct {
	env *Env
	// profile is --profile; set by the command before first use.
	profile string

	mu       sync.Mutex
	cfg      *aws.Config
	s3       *s3.Client
	clients  *awsconf.Clients
	stores   map[storeKey]archive.Store
	regional map[string]any // service clients by service and region
}

// regionalClient is the client of a service in a region, made by mk on
// first use and reused after.
func regionalClient[T any](ctx context.Context, d *deps, service, region string, mk func(aws.Config) T) (T, error) {
	cfg, err := d.AWS(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	if region == "" {
		region = cfg.Region
	}
	cfg.Region = region
	d.mu.Lock()
	defer d.mu.Unlock()
	key := service + "/" + region
	if c, ok := d.regional[key]; ok {
		return c.(T), nil
	}
	if d.regional == nil {
		d.regional = map[string]any{}
	}
	c := mk(cfg)
	d.regional[key] = c
	return c, nil
}

// useConfig installs cfg as the AWS configuration (the demo's emulators).
func (d *deps) useConfig(cfg aws.Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = &cfg
}

// AWS is the SDK configuration (awsconf.Load with --profile).
func (d *deps) AWS(ctx context.Context) (aws.Config, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.awsLocked(ctx)
}

func (d *deps) awsLocked(ctx context.Context) (aws.Config, error) {
	if d.cfg == nil {
		cfg, err := awsconf.Load(ctx, d.profile)
		if err != nil {
			return aws.Config{}, err
		}
		d.cfg = &cfg
	}
	return *d.cfg, nil
}

// storeKey names an opened store.
type storeKey struct {
	dest archive.Destination
	o    archive.S3Options
}

// Clients is the credential and limiter registry. It is created once per
// command with the read role and rate of its first use.
func (d *deps) Clients(ctx context.Context, roleName string, rate float64) (*awsconf.Clients, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.clients == nil {
		cfg, err := d.awsLocked(ctx)
		if err != nil {
			return nil, err
		}
		d.clients = awsconf.NewClients(cfg, sts.NewFromConfig(cfg), roleName, rate)
	}
	return d.clients, nil
}

// Store opens an archive destination (an S3 client only for s3://), with
// the write settings o (SSE-KMS) for S3.
func (d *deps) Store(ctx context.Context, dest archive.Destination, o archive.S3Options) (archive.Store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := storeKey{dest, o}
	if s, ok := d.stores[key]; ok {
		return s, nil
	}
	var client archive.S3API
	if dest.IsS3() {
		if d.s3 == nil {
			cfg, err := d.awsLocked(ctx)
			if err != nil {
				return nil, err
			}
			d.s3 = awsconf.NewS3(cfg)
		}
		client = d.s3
	}
	s, err := archive.Open(dest, client, o)
	if err != nil {
		return nil, err
	}
	if d.stores == nil {
		d.stores = map[storeKey]archive.Store{}
	}
	d.stores[key] = s
	return s, nil
}

// Staging is the state machine's staging bucket, read and written through
// an S3 client of its region (the stack's, which may differ from the
// configured one).
func (d *deps) Staging(ctx context.Context, bucket, region string) (*archive.S3Store, error) {
	client, err := regionalClient(ctx, d, "s3", region, awsconf.NewS3)
	if err != nil {
		return nil, err
	}
	return &archive.S3Store{Client: client, Bucket: bucket}, nil
}

// CloudFormation is the CloudFormation client of region ("": the
// configured), and that region.
func (d *deps) CloudFormation(ctx context.Context, region string) (StackAPI, string, error) {
	c, err := regionalClient(ctx, d, "cloudformation", region, func(cfg aws.Config) *cloudformation.Client { return cloudformation.NewFromConfig(cfg) })
	if err != nil {
		return nil, "", err
	}
	return c, c.Options().Region, nil
}

// StepFunctions is the Step Functions client of region ("": the configured).
func (d *deps) StepFunctions(ctx context.Context, region string) (StepFunctionsAPI, error) {
	return regionalClient(ctx, d, "states", region, func(cfg aws.Config) StepFunctionsAPI { return sfn.NewFromConfig(cfg) })
}

// Lambda is the Lambda client of region ("": the configured).
func (d *deps) Lambda(ctx context.Context, region string) (LambdaAPI, error) {
	return regionalClient(ctx, d, "lambda", region, func(cfg aws.Config) LambdaAPI { return lambda.NewFromConfig(cfg) })
}
