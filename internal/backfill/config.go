package backfill

import (
	"fmt"
	"strconv"
	"time"

	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/validate"
)

// Environment variables of the backfill Lambda (set by the CDK stack).
const (
	EnvBucket     = "TRAILFILL_BUCKET"      // archive bucket (required)
	EnvPrefix     = "TRAILFILL_PREFIX"      // key prefix inside the bucket, may be empty
	EnvOrgID      = "TRAILFILL_ORG_ID"      // o-... for the organization-trail layout, may be empty
	EnvRoleName   = "TRAILFILL_ROLE_NAME"   // read role name in target accounts
	EnvRate       = "TRAILFILL_RATE"        // LookupEvents requests/s per partition (<= 2)
	EnvStopMargin = "TRAILFILL_STOP_MARGIN" // seconds before the Lambda deadline to stop reading
	EnvKMSKeyArn  = "TRAILFILL_KMS_KEY_ARN" // KMS key of the archive (SSE-KMS), may be empty
)

// FunctionConfig is the backfill Lambda's configuration.
type FunctionConfig struct {
	Bucket, Prefix, OrgID, RoleName string
	Rate                            float64
	StopMargin                      time.Duration
}

// ConfigFromEnv reads and checks the Lambda's environment.
func ConfigFromEnv(getenv func(string) string) (FunctionConfig, error) {
	c := FunctionConfig{
		Bucket:     getenv(EnvBucket),
		Prefix:     getenv(EnvPrefix),
		OrgID:      getenv(EnvOrgID),
		RoleName:   getenv(EnvRoleName),
		Rate:       pace.MaxRate,
		StopMargin: 90 * time.Second,
	}
	if c.Bucket == "" {
		return c, fmt.Errorf("%s is not set: deploy the function with the trailfill stack", EnvBucket)
	}
	if c.RoleName == "" {
		c.RoleName = DefaultRoleName
	}
	if err := validate.RoleName(c.RoleName); err != nil {
		return c, fmt.Errorf("%s: %w", EnvRoleName, err)
	}
	if c.OrgID != "" {
		if err := validate.OrgID(c.OrgID); err != nil {
			return c, fmt.Errorf("%s: %w", EnvOrgID, err)
		}
	}
	if v := getenv(EnvRate); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r > pace.MaxRate {
			return c, fmt.Errorf("%s=%q: give requests per second above 0 and at most 2", EnvRate, v)
		}
		c.Rate = r
	}
	if v := getenv(EnvStopMargin); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s < 10 {
			return c, fmt.Errorf("%s=%q: give whole seconds, at least 10", EnvStopMargin, v)
		}
		c.StopMargin = time.Duration(s) * time.Second
	}
	return c, nil
}
