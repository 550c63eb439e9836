package engine

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
)

// LookupAPI is the part of the CloudTrail client the engine uses.
type LookupAPI interface {
	LookupEvents(ctx context.Context, in *cloudtrail.LookupEventsInput, optFns ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error)
}
