// Command backfill is the trailfill backfill Lambda (provided.al2023, arm64):
// one invocation archives as much of one (account, region) partition as fits
// before its deadline and returns the cursor for the next invocation.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/backfill"
)

func main() {
	logger := lambdacontext.NewLogger()
	slog.SetDefault(logger)
	h, err := newHandler(context.Background(), logger)
	if err != nil {
		logger.Error("backfill function cannot start", "error", err)
		os.Exit(1)
	}
	// Function names every error on purpose (contract.ErrorPartition, ...).
	lambda.Start(backfill.Function(h))
}

// newHandler builds the clients once per execution environment.
func newHandler(ctx context.Context, logger *slog.Logger) (*backfill.Handler, error) {
	fc, err := backfill.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := awsconf.Load(ctx, "")
	if err != nil {
		return nil, err
	}
	store, err := archive.Open(archive.Destination{Bucket: fc.Bucket, Prefix: fc.Prefix}, awsconf.NewS3(cfg), archive.S3Options{KMSKeyID: fc.KMSKeyArn})
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	return &backfill.Handler{
		Store:   store,
		OrgID:   fc.OrgID,
		Clients: awsconf.NewClients(cfg, sts.NewFromConfig(cfg), fc.RoleName, fc.Rate),
		Margin:  fc.StopMargin,
		Logger:  logger,
	}, nil
}
