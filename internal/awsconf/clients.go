package awsconf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/account"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/clock"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/pace"
)

// Clients is the registry every reader of CloudTrail shares, in the Lambda
// and in the launcher: the caller's identity (found once), credentials per
// target account (the caller's own, or the read role assumed through STS,
// cached per account), and one limiter per partition (account, region) for
// the life of the registry, installed as pacing middleware on that
// partition's LookupEvents client.
type Clients struct {
	Base     aws.Config
	STS      STSAPI
	RoleName string
	Rate     float64 // requests/s per partition, at most pace.MaxRate

	mu       sync.Mutex
	caller   *Caller
	creds    map[string]aws.CredentialsProvider
	limiters map[string]*pace.Limiter
}

// Caller is who the configured credentials are (sts:GetCallerIdentity).
type Caller struct {
	Account   string
	ARN       string
	Partition string // of ARN: aws, aws-cn, aws-us-gov
}

// NewClients returns a registry over base.
func NewClients(base aws.Config, stsClient STSAPI, roleName string, rate float64) *Clients {
	if roleName == "" {
		roleName = contract.DefaultRoleName
	}
	return &Clients{Base: base, STS: stsClient, RoleName: roleName, Rate: rate,
		creds: make(map[string]aws.CredentialsProvider), limiters: make(map[string]*pace.Limiter)}
}

// Caller returns the identity of the configured credentials, asking STS once.
func (c *Clients) Caller(ctx context.Context) (Caller, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.caller != nil {
		return *c.caller, nil
	}
	out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Caller{}, fmt.Errorf("find the caller's account with sts:GetCallerIdentity (check AWS credentials): %w", err)
	}
	id := Caller{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn)}
	if id.Partition, err = PartitionOf(id.ARN); err != nil {
		return Caller{}, fmt.Errorf("sts:GetCallerIdentity answered an unreadable ARN: %w", err)
	}
	c.caller = &id
	return id, nil
}

// CallerAccount is the account of the configured credentials.
func (c *Clients) CallerAccount(ctx context.Context) (string, error) {
	id, err := c.Caller(ctx)
	return id.Account, err
}

// RoleARN is the ARN of the read role in account, in the caller's partition.
func (c *Clients) RoleARN(ctx context.Context, account string) (string, error) {
	id, err := c.Caller(ctx)
	if err != nil {
		return "", err
	}
	return RoleARN(id.Partition, account, c.RoleName), nil
}

// Credentials returns credentials for account: the caller's own when it is the
// caller's account, otherwise the read role assumed in it.
func (c *Clients) Credentials(ctx context.Context, account string) (aws.CredentialsProvider, error) {
	id, err := c.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if account == id.Account {
		return c.Base.Credentials, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.creds[account]; ok {
		return p, nil
	}
	arn := RoleARN(id.Partition, account, c.RoleName)
	p := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(c.STS, arn, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "trailfill-" + account
		o.Duration = time.Hour
	}))
	// Fail early and clearly when the role cannot be assumed.
	if _, err := p.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("assume %s (deploy the read role StackSet to account %s, or pass --role-name): %w", arn, account, err)
	}
	c.creds[account] = p
	return p, nil
}

// Limiter returns the partition's limiter; one per (account, region) for the life
// of the registry, so every reader of a partition shares it.
func (c *Clients) Limiter(account, region string) *pace.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := account + "/" + region
	l, ok := c.limiters[k]
	if !ok {
		l = pace.NewLimiter(c.Rate)
		c.limiters[k] = l
	}
	return l
}

// LookupClient returns the paced LookupEvents client of one partition.
func (c *Clients) LookupClient(ctx context.Context, account, region string) (*cloudtrail.Client, *pace.Limiter, error) {
	creds, err := c.Credentials(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	lim := c.Limiter(account, region)
	client := cloudtrail.NewFromConfig(c.Base, func(o *cloudtrail.Options) {
		o.Region = region
		o.Credentials = creds
		o.Retryer = LookupRetryer()
		o.APIOptions = append(o.APIOptions, pace.Middleware(lim))
	})
	return client, lim, nil
}

// RegionLister returns the Account client that lists account's regions,
// with that account's credentials.
func (c *Clients) RegionLister(ctx context.Context, acct string) (RegionLister, error) {
	creds, err := c.Credentials(ctx, acct)
	if err != nil {
		return nil, err
	}
	return account.NewFromConfig(c.Base, func(o *account.Options) { o.Credentials = creds }), nil
}

// LookupRetryer retries throttling and transient errors with no client-wide retry
// quota (the default quota turns ~50 throttles into hard "retry quota exceeded"
// errors). Every attempt waits on the partition's limiter (pace.Middleware), which
// slows down on throttling, so a throttled attempt needs only a short jitter to
// desynchronise pagers, not exponential backoff on top of the pacing. Other
// errors back off exponentially (clock.Backoff, as the SDK's own
// ExponentialJitterBackoff: full jitter, ceiling 2^attempt s, at most 10 s).
// Throttling that outlasts these attempts is retried by the engine without
// limit.
func LookupRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 10
		o.RateLimiter = ratelimit.None
		o.Backoff = pacedBackoff{exp: clock.Backoff{Base: 2 * time.Second, Max: 10 * time.Second}}
	})
}

// throttleJitter is the largest wait before retrying a throttled attempt.
const throttleJitter = 250 * time.Millisecond

type pacedBackoff struct {
	exp clock.Backoff
}

func (b pacedBackoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	if pace.IsThrottle(err) {
		return time.Duration(rand.Int64N(int64(throttleJitter))), nil
	}
	return b.exp.Delay(attempt), nil
}
