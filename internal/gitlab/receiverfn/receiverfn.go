// Package receiverfn builds the GitLab receiver Lambda (functions/gitlab-receiver)
// from its environment: configuration from the TRAILFILL_GITLAB_* variables,
// the verification tokens from an SSM SecureString parameter read once at cold
// start, the S3 archive, a JSON slog logger carrying the request id, and the
// Function URL handler whose writes end before the invocation's deadline.
package receiverfn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
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
	Layout      gitlab.Layout
	KMSKeyArn   string // SSE-KMS key of the archive, or ""
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
	layout, err := gitlab.ParseLayout(strings.TrimSpace(getenv(contract.EnvGitLabLayout)))
	if err != nil {
		return c, fmt.Errorf("%s: %w", contract.EnvGitLabLayout, err)
	}
	c.Layout = layout
	c.KMSKeyArn = strings.TrimSpace(getenv(contract.EnvKMSKeyArn))
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
	store := &archive.S3Store{Client: s3c, Bucket: cfg.Bucket, Prefix: cfg.Prefix, KMSKeyID: cfg.KMSKeyArn}
	r, err := gitlab.NewReceiverFromOptions(gitlab.ReceiverOptions{Store: store, Tokens: tokens, Source: cfg.Source, Layout: cfg.Layout, MaxBody: cfg.MaxBody, Logger: logger})
	if err != nil {
		return nil, err
	}
	logger.Info("gitlab receiver ready", "destination", store.String(), "layout", cfg.Layout.String(), "source", cfg.Source, "tokens", tokens.Len(), "max_body", cfg.MaxBody)
	return r, nil
}

// DefaultReserve is how long before the invocation's deadline the writes of a
// request are abandoned, so that the function still answers 500 (and logs the
// event IDs it could not store) instead of being stopped mid-write: the
// timeout "is the maximum amount of time in seconds that a Lambda function
// can run" (Lambda Developer Guide, "Configure Lambda function timeout"), and
// a stopped function sends no answer of its own (the invoker gets the
// runtime's Sandbox.Timedout error instead). Two seconds cover cancelling the
// S3 requests, the log line and the answer through the Runtime API on a small
// (256 MB, fractional vCPU) function.
const DefaultReserve = 2 * time.Second

// Function is the receiver Lambda's handler for Function URL invocations.
type Function struct {
	Receiver *gitlab.Receiver
	// Reserve is the time kept before the deadline to answer; DefaultReserve
	// if 0.
	Reserve time.Duration
}

// Handle serves one Function URL invocation. The writes of the request are
// bounded by the invocation's deadline less Reserve (and never by more than
// the receiver's own StoreTimeout), so a store that hangs gets a 500 answer
// before Lambda stops the function.
func (f Function) Handle(ctx context.Context, in events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	r := *f.Receiver // per invocation: the runtime may serve several at once
	if dl, ok := ctx.Deadline(); ok {
		r.StoreTimeout = StoreTimeout(time.Until(dl), f.Reserve, f.Receiver.StoreTimeout)
	}
	return r.HandleFunctionURL(ctx, in)
}

// StoreTimeout is the write budget of a request with remaining time left
// before the deadline: remaining less reserve (DefaultReserve if 0), at most
// limit (gitlab.DefaultStoreTimeout if 0), and at least a millisecond (a
// request that arrives too late fails its writes at once and answers 500).
func StoreTimeout(remaining, reserve, limit time.Duration) time.Duration {
	if reserve <= 0 {
		reserve = DefaultReserve
	}
	if limit <= 0 {
		limit = gitlab.DefaultStoreTimeout
	}
	return max(min(remaining-reserve, limit), time.Millisecond)
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
