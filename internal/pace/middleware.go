package pace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// IsThrottle reports whether err is a CloudTrail ThrottlingException. The SDK
// surfaces it as a generic smithy.APIError, not the typed exception.
func IsThrottle(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded":
			return true
		}
	}
	return false
}

// Middleware returns an SDK API option that waits on l before every attempt. It
// sits in the Finalize step right after the SDK's retry middleware, so each retry
// is paced too and retries cannot overdraw the partition's quota, and it reports
// each attempt's throttling or success back to l, with the round trip of each
// answered attempt (the time after the wait: the API's latency, which sizes
// the pagers' concurrency).
func Middleware(l *Limiter) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Finalize.Insert(pacer{l}, "Retry", middleware.After)
	}
}

type pacer struct{ l *Limiter }

func (pacer) ID() string { return "TrailfillPace" }

func (p pacer) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	if err := p.l.Wait(ctx); err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("wait for LookupEvents quota: %w", err)
	}
	sent := time.Now()
	out, md, err := next.HandleFinalize(ctx, in)
	switch {
	case err == nil:
		p.l.Observe(time.Since(sent))
		p.l.Succeeded()
	case IsThrottle(err):
		p.l.Throttled()
	}
	return out, md, err
}
