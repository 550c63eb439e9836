package backfill

import (
	"fmt"
	"strconv"
	"time"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/validate"
)

// FunctionConfig is the backfill Lambda's configuration.
type FunctionConfig struct {
	Bucket, Prefix, OrgID, RoleName string
	KMSKeyArn                       string // SSE-KMS key of the archive, or ""
	Rate                            float64
	StopMargin                      time.Duration
}

// ConfigFromEnv reads and checks the Lambda's environment.
func ConfigFromEnv(getenv func(string) string) (FunctionConfig, error) {
	c := FunctionConfig{
		Bucket:     getenv(contract.EnvBucket),
		Prefix:     getenv(contract.EnvPrefix),
		OrgID:      getenv(contract.EnvOrgID),
		RoleName:   getenv(contract.EnvRoleName),
		KMSKeyArn:  getenv(contract.EnvKMSKeyArn),
		Rate:       pace.MaxRate,
		StopMargin: contract.DefaultStopMarginSeconds * time.Second,
	}
	if c.Bucket == "" {
		return c, fmt.Errorf("%s is not set: deploy the function with the trailfill stack", contract.EnvBucket)
	}
	if c.RoleName == "" {
		c.RoleName = contract.DefaultRoleName
	}
	if err := validate.RoleName(c.RoleName); err != nil {
		return c, fmt.Errorf("%s: %w", contract.EnvRoleName, err)
	}
	if c.OrgID != "" {
		if err := validate.OrgID(c.OrgID); err != nil {
			return c, fmt.Errorf("%s: %w", contract.EnvOrgID, err)
		}
	}
	if v := getenv(contract.EnvRate); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r > pace.MaxRate {
			return c, fmt.Errorf("%s=%q: give requests per second above 0 and at most 2", contract.EnvRate, v)
		}
		c.Rate = r
	}
	if v := getenv(contract.EnvStopMargin); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s < 10 {
			return c, fmt.Errorf("%s=%q: give whole seconds, at least 10", contract.EnvStopMargin, v)
		}
		c.StopMargin = time.Duration(s) * time.Second
	}
	return c, nil
}
