package emulator

import (
	"io"
	"net/http"
)

// NewHTTPClient returns an HTTP client for aws-sdk-go-v2 clients (the
// HTTPClient field of aws.Config or of a service's Options) that works
// around a race between smithy-go and net/http, which a fast local server
// such as this emulator makes frequent.
//
// The race: smithy-go wraps a request body that implements io.WriterTo in a
// "safe" reader whose WriteTo returns io.EOF once the SDK has closed it, and
// the SDK closes it as soon as the response headers arrive. net/http writes
// the body and then, in its write loop, copies the body once more to check
// for extra bytes; when that copy reaches WriteTo after the close, the bare
// io.EOF is taken for a write error and the connection is torn down, often
// while the SDK is still reading the response body. The call then fails with
// "failed to decode response body, read tcp ...: use of closed network
// connection" although the server answered 200 (aws/aws-sdk-go-v2 issues
// 1825 and 2737). The SDK's standard retryer retries that error, which hides
// it but sends the request twice: a second LookupEvents token spent, a
// second S3 PutObject. Hiding io.WriterTo from net/http avoids the race.
//
// base may be nil for http.DefaultTransport. Real AWS clients are exposed
// to the same race (less often, as real answers take longer); product code
// may want the same transport wrapper.
func NewHTTPClient(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: BodyRaceTransport{Base: base}}
}

// BodyRaceTransport is the http.RoundTripper of [NewHTTPClient]: it hides
// io.WriterTo on request bodies before handing requests to Base.
type BodyRaceTransport struct {
	Base http.RoundTripper // nil: http.DefaultTransport
}

// readOnlyBody exposes only Read and Close of a request body.
type readOnlyBody struct{ io.ReadCloser }

// RoundTrip implements http.RoundTripper.
func (t BodyRaceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if r.Body != nil && r.Body != http.NoBody {
		if _, ok := r.Body.(io.WriterTo); ok {
			r2 := r.Clone(r.Context())
			r2.Body = readOnlyBody{r.Body}
			r = r2
		}
	}
	return base.RoundTrip(r)
}
