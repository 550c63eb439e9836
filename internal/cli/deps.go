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

	mu      sync.Mutex
	cfg     *aws.Config
	s3      *s3.Client
	clients *awsconf.Clients
	stores  map[storeKey]archive.Store
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
	cfg, err := d.AWS(ctx)
	if err != nil {
		return nil, err
	}
	if region != "" {
		cfg.Region = region
	}
	return &archive.S3Store{Client: awsconf.NewS3(cfg), Bucket: bucket}, nil
}

// CloudFormation is the CloudFormation client of region ("": the
// configured), and that region.
func (d *deps) CloudFormation(ctx context.Context, region string) (StackAPI, string, error) {
	cfg, err := d.AWS(ctx)
	if err != nil {
		return nil, "", err
	}
	if region == "" {
		region = cfg.Region
	}
	return cloudformation.NewFromConfig(cfg, func(o *cloudformation.Options) { o.Region = region }), region, nil
}

// StepFunctions is the Step Functions client of region ("": the configured).
func (d *deps) StepFunctions(ctx context.Context, region string) (StepFunctionsAPI, error) {
	cfg, err := d.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return sfn.NewFromConfig(cfg, func(o *sfn.Options) {
		if region != "" {
			o.Region = region
		}
	}), nil
}

// Lambda is the Lambda client of region ("": the configured).
func (d *deps) Lambda(ctx context.Context, region string) (LambdaAPI, error) {
	cfg, err := d.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		if region != "" {
			o.Region = region
		}
	}), nil
}
