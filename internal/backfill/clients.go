package backfill

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
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/pace"
)

// Clients builds one LookupEvents client per partition: credentials of the target
// account (the caller's own, or the read role assumed through STS, cached per
// account), the partition's region, its limiter installed as pacing middleware,
// and a retryer without the SDK's client-wide retry quota.
type Clients struct {
	Base     aws.Config
	STS      STSAPI
	RoleName string
	Rate     float64 // requests/s per partition, at most pace.MaxRate

	mu       sync.Mutex
	caller   string
	creds    map[string]aws.CredentialsProvider
	limiters map[string]*pace.Limiter
}

// NewClients returns a factory over base.
func NewClients(base aws.Config, stsClient STSAPI, roleName string, rate float64) *Clients {
	if roleName == "" {
		roleName = contract.DefaultRoleName
	}
	return &Clients{Base: base, STS: stsClient, RoleName: roleName, Rate: rate,
		creds: make(map[string]aws.CredentialsProvider), limiters: make(map[string]*pace.Limiter)}
}

// CallerAccount is the account of the configured credentials (sts:GetCallerIdentity).
func (c *Clients) CallerAccount(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.caller != "" {
		return c.caller, nil
	}
	out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("find the caller's account with sts:GetCallerIdentity (check AWS credentials): %w", err)
	}
	c.caller = aws.ToString(out.Account)
	return c.caller, nil
}

// Credentials returns credentials for account: the caller's own when it is the
// caller's account, otherwise the read role assumed in it.
func (c *Clients) Credentials(ctx context.Context, account string) (aws.CredentialsProvider, error) {
	caller, err := c.CallerAccount(ctx)
	if err != nil {
		return nil, err
	}
	if account == caller {
		return c.Base.Credentials, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.creds[account]; ok {
		return p, nil
	}
	arn := fmt.Sprintf("arn:aws:iam::%s:role/%s", account, c.RoleName)
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
// of the factory, so every reader of a partition shares it.
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
func (c *Clients) LookupClient(ctx context.Context, account, region string) (engine.LookupAPI, *pace.Limiter, error) {
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

// LookupRetryer retries throttling and transient errors with no client-wide retry
// quota (the default quota turns ~50 throttles into hard "retry quota exceeded"
// errors). Every attempt waits on the partition's limiter (pace.Middleware), which
// slows down on throttling, so a throttled attempt needs only a short jitter to
// desynchronise pagers, not exponential backoff on top of the pacing. Other
// errors back off exponentially. Throttling that outlasts these attempts is
// retried by the engine without limit.
func LookupRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 10
		o.RateLimiter = ratelimit.None
		o.Backoff = pacedBackoff{exp: retry.NewExponentialJitterBackoff(10 * time.Second)}
	})
}

type pacedBackoff struct {
	exp *retry.ExponentialJitterBackoff
}

func (b pacedBackoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	if pace.IsThrottle(err) {
		return time.Duration(rand.Int64N(int64(250 * time.Millisecond))), nil
	}
	return b.exp.BackoffDelay(attempt, err)
}
