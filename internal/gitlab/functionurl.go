package gitlab

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// HandleFunctionURL adapts a Lambda Function URL invocation to Handle. It
// always returns a nil error: a failure is an HTTP status (an error would make
// the Function URL answer 502 and lose the reason).
func (r *Receiver) HandleFunctionURL(ctx context.Context, in events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	h := make(http.Header, len(in.Headers))
	for k, v := range in.Headers {
		h.Set(k, v)
	}
	req := Request{
		Method:        in.RequestContext.HTTP.Method,
		Path:          in.RawPath,
		Header:        h,
		ContentLength: -1,
		Remote:        in.RequestContext.HTTP.SourceIP,
	}
	limit := r.maxBody()
	if in.IsBase64Encoded {
		// Refuse an oversized body before decoding it.
		if int64(len(in.Body)) > int64(base64.StdEncoding.EncodedLen(int(min(limit, 1<<40)))) {
			req.ContentLength = limit + 1
		} else if b, err := base64.StdEncoding.DecodeString(in.Body); err == nil {
			req.Body = bytes.NewReader(b)
			req.ContentLength = int64(len(b))
		} else {
			req.Body = strings.NewReader("\x00") // undecodable: rejected as malformed
		}
	} else {
		req.Body = strings.NewReader(in.Body)
		req.ContentLength = int64(len(in.Body))
	}
	resp := r.Handle(ctx, req)
	out := events.LambdaFunctionURLResponse{
		StatusCode: resp.Status,
		Headers:    make(map[string]string, len(resp.Header)),
		Body:       string(resp.Body),
	}
	for k, v := range resp.Header {
		out.Headers[k] = strings.Join(v, ", ")
	}
	return out, nil
}
