package backfill

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// STSAPI is the part of the STS client used to find the caller's account and to
// assume the read role in other accounts.
type STSAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}
