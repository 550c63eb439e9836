package awsconf

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/account"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// STSAPI is the part of the STS client used to find the caller and to assume
// the read role in other accounts.
type STSAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// RegionLister is the part of the Account client used to resolve --regions all.
type RegionLister interface {
	ListRegions(ctx context.Context, in *account.ListRegionsInput, optFns ...func(*account.Options)) (*account.ListRegionsOutput, error)
}
