package trail

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
)

// API is the part of the CloudTrail client that reads a trail's
// configuration and status.
type API interface {
	GetTrail(ctx context.Context, in *cloudtrail.GetTrailInput, optFns ...func(*cloudtrail.Options)) (*cloudtrail.GetTrailOutput, error)
	GetEventSelectors(ctx context.Context, in *cloudtrail.GetEventSelectorsInput, optFns ...func(*cloudtrail.Options)) (*cloudtrail.GetEventSelectorsOutput, error)
	GetTrailStatus(ctx context.Context, in *cloudtrail.GetTrailStatusInput, optFns ...func(*cloudtrail.Options)) (*cloudtrail.GetTrailStatusOutput, error)
}

// OrganizationsAPI is the part of the AWS Organizations client that finds
// an organization trail's organization ID and accounts.
type OrganizationsAPI interface {
	DescribeOrganization(ctx context.Context, in *organizations.DescribeOrganizationInput, optFns ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error)
	ListAccounts(ctx context.Context, in *organizations.ListAccountsInput, optFns ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error)
}

// Access hands out the clients a trail is read with.
type Access interface {
	// CallerAccount is the account of the configured credentials.
	CallerAccount(ctx context.Context) (string, error)
	// CloudTrail is a client of region with the credentials of account: the
	// caller's own for the caller's account, else the read role assumed in
	// it.
	CloudTrail(ctx context.Context, account, region string) (API, error)
	// Organizations is a client with the credentials of account, chosen as
	// for CloudTrail.
	Organizations(ctx context.Context, account string) (OrganizationsAPI, error)
}
