// Package receiverfn builds the GitLab receiver Lambda (functions/gitlab-receiver)
// from its environment: configuration from the TRAILFILL_GITLAB_* variables,
// the verification tokens from an SSM SecureString parameter read once at cold
// start, the S3 archive, and a JSON slog logger carrying the request id.
package receiverfn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/gitlab"
)

// Config is the receiver Lambda's configuration.
type Config struct {
	Bucket      string
	Prefix      string
	Source      string
	TokensParam string
	MaxBody     int64
}

// ConfigFromEnv reads the configuration with getenv (os.Getenv) and checks it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Bucket:      strings.TrimSpace(getenv(contract.EnvGitLabBucket)),
		Prefix:      strings.Trim(strings.TrimSpace(getenv(contract.EnvGitLabPrefix)), "/"),
		Source:      strings.TrimSpace(getenv(contract.EnvGitLabSource)),
		TokensParam: strings.TrimSpace(getenv(contract.EnvGitLabTokensParam)),
		MaxBody:     gitlab.DefaultMaxBody,
	}
	if c.Source == "" {
		c.Source = gitlab.DefaultSource
	}
	if c.Bucket == "" {
		return c, fmt.Errorf("%s is not set: set it to the archive bucket name", contract.EnvGitLabBucket)
	}
	if c.TokensParam == "" {
		return c, fmt.Errorf("%s is not set: set it to the SSM SecureString parameter holding the tokens", contract.EnvGitLabTokensParam)
	}
	if v := strings.TrimSpace(getenv(contract.EnvGitLabMaxBody)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("%s=%q is not a positive number of bytes", contract.EnvGitLabMaxBody, v)
		}
		c.MaxBody = n
	}
	if err := gitlab.ValidateSource(c.Source); err != nil {
		return c, fmt.Errorf("%s: %w", contract.EnvGitLabSource, err)
	}
	dest := "s3://" + c.Bucket
	if c.Prefix != "" {
		dest += "/" + c.Prefix
	}
	if _, err := archive.ParseDestination(dest); err != nil {
		return c, fmt.Errorf("%s/%s: %w", contract.EnvGitLabBucket, contract.EnvGitLabPrefix, err)
	}
	return c, nil
}

// SSMAPI is the part of the SSM client the receiver uses.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// LoadTokens reads the tokens parameter with decryption. Errors name the
// parameter, never its value.
func LoadTokens(ctx context.Context, client SSMAPI, name string) (*gitlab.Tokens, error) {
	out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read SSM parameter %s (check it exists and the function may ssm:GetParameter and kms:Decrypt it): %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return nil, fmt.Errorf("SSM parameter %s has no value", name)
	}
	t, err := gitlab.ParseTokens(aws.ToString(out.Parameter.Value))
	if err != nil {
		return nil, fmt.Errorf("SSM parameter %s: %w", name, err)
	}
	return t, nil
}

// New builds the receiver: tokens from SSM, archive in S3.
func New(ctx context.Context, cfg Config, s3c archive.S3API, ssmc SSMAPI, logger *slog.Logger) (*gitlab.Receiver, error) {
	if s3c == nil || ssmc == nil {
		return nil, errors.New("receiver needs S3 and SSM clients")
	}
	tokens, err := LoadTokens(ctx, ssmc, cfg.TokensParam)
	if err != nil {
		return nil, err
	}
	store := &archive.S3Store{Client: s3c, Bucket: cfg.Bucket, Prefix: cfg.Prefix}
	r, err := gitlab.NewReceiver(store, tokens, cfg.Source, cfg.MaxBody, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("gitlab receiver ready", "destination", store.String(), "source", cfg.Source, "tokens", tokens.Len(), "max_body", cfg.MaxBody)
	return r, nil
}

// NewLogHandler is a JSON slog handler writing to w that adds the Lambda
// request id (from the invocation context) to every record, whatever the
// function's log format setting.
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: lambdacontext.ReplaceAttr})}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(a)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
