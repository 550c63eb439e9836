package awsconf

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// The HTTP stack of every SDK client trailfill builds, in the product, the
// demo and the tests alike, works around a race between smithy-go and
// net/http (aws/aws-sdk-go-v2 issues 1825 and 2737).
//
// The race: smithy-go wraps a request body that implements io.WriterTo in a
// "safe" reader whose WriteTo returns io.EOF once the SDK has closed it, and
// the SDK closes it as soon as the response headers arrive. net/http writes
// the body and then, in its write loop, copies the body once more to check
// for extra bytes; when that copy reaches WriteTo after the close, the bare
// io.EOF is taken for a write error and the connection is torn down, often
// while the SDK is still reading the response body. The call then fails with
// "failed to decode response body, read tcp ...: use of closed network
// connection" although the server answered 200. The SDK's standard retryer
// retries that error, which hides it but sends the request twice: a second
// LookupEvents request spent from the 2 requests/s quota, a second S3
// PutObject. A fast server (the emulators) makes it frequent; real AWS
// answers more slowly, which makes it rarer, not impossible. Hiding
// io.WriterTo from net/http avoids it.

// BodyRaceClient is an aws.HTTPClient that hides io.WriterTo on request
// bodies before handing requests to Base.
type BodyRaceClient struct {
	Base aws.HTTPClient // nil: a new awshttp.BuildableClient
}

// Do implements aws.HTTPClient.
func (c BodyRaceClient) Do(r *http.Request) (*http.Response, error) {
	base := c.Base
	if base == nil {
		base = awshttp.NewBuildableClient()
	}
	return base.Do(hideWriterTo(r))
}

// NewHTTPClient returns the HTTP client trailfill gives the SDK: the SDK's
// own buildable client (its timeouts, proxy settings and TLS configuration)
// behind BodyRaceClient. Build installs it; hand-built aws.Configs (tests of
// the emulators) use it directly.
func NewHTTPClient() aws.HTTPClient {
	return BodyRaceClient{Base: awshttp.NewBuildableClient()}
}

// readOnlyBody exposes only Read and Close of a request body.
type readOnlyBody struct{ io.ReadCloser }

func hideWriterTo(r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	if _, ok := r.Body.(io.WriterTo); !ok {
		return r
	}
	r2 := r.Clone(r.Context())
	r2.Body = readOnlyBody{r.Body}
	return r2
}
