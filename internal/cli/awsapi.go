package cli

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/account"
)

// RegionLister is the part of the Account client used to resolve --regions all.
type RegionLister interface {
	ListRegions(ctx context.Context, in *account.ListRegionsInput, optFns ...func(*account.Options)) (*account.ListRegionsOutput, error)
}
