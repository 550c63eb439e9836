// Command gitlab-receiver is the GitLab audit event streaming destination,
// served by a Lambda Function URL. It verifies X-Gitlab-Event-Streaming-Token,
// stores every event once in S3 and answers 200 only after that; writes still
// running near the invocation's deadline are abandoned with a 500 answer
// (receiverfn.Function). Configuration:
// the TRAILFILL_GITLAB_* variables (see internal/gitlab). Build:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o build/gitlab-receiver/bootstrap ./functions/gitlab-receiver
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/gitlab/receiverfn"
)

func main() {
	logger := slog.New(receiverfn.NewLogHandler(os.Stdout, slog.LevelInfo))
	slog.SetDefault(logger)
	ctx := context.Background()
	cfg, err := receiverfn.ConfigFromEnv(os.Getenv)
	if err != nil {
		logger.Error("gitlab receiver: bad configuration", "err", err)
		os.Exit(1)
	}
	awsCfg, err := awsconf.Load(ctx, "")
	if err != nil {
		logger.Error("gitlab receiver: AWS configuration", "err", err)
		os.Exit(1)
	}
	r, err := receiverfn.New(ctx, cfg, awsconf.NewS3(awsCfg), ssm.NewFromConfig(awsCfg), logger)
	if err != nil {
		logger.Error("gitlab receiver: cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(receiverfn.Function{Receiver: r}.Handle)
}
