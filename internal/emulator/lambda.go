package emulator

import (
	"fmt"
	"net/http"
	"sync"
)

// Lambda GetAccountSettings (restJson1, GET /2016-08-19/account-settings/)
// (https://docs.aws.amazon.com/lambda/latest/api/API_GetAccountSettings.html).
// The SDK sends the path without the trailing slash; both are served.

// Lambda account defaults, from the Lambda quotas page
// (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
// 1,000 concurrent executions per region, 75 GB of function and layer
// storage, deployment packages of 50 MB zipped and 250 MB unzipped. With no
// reserved concurrency, all of it is unreserved.
const (
	DefaultLambdaConcurrentExecutions = 1000
	lambdaTotalCodeSize               = 75 << 30
	lambdaCodeSizeZipped              = 50 << 20
	lambdaCodeSizeUnzipped            = 250 << 20
)

// lambdaSettings holds the per-account Lambda limits. Its zero value
// answers AWS's defaults.
type lambdaSettings struct {
	mu       sync.Mutex
	accounts map[string]lambdaLimits
	calls    map[string]int
}

type lambdaLimits struct {
	concurrent, unreserved int
}

// SetLambdaAccountSettings sets what GetAccountSettings answers for an
// account in every region: AccountLimit.ConcurrentExecutions and
// AccountLimit.UnreservedConcurrentExecutions (the concurrency left after
// functions' reserved concurrency). Without a call both are 1,000, AWS's
// default.
func (s *Server) SetLambdaAccountSettings(accountID string, concurrentExecutions, unreservedConcurrentExecutions int) error {
	if concurrentExecutions < 0 || unreservedConcurrentExecutions < 0 || unreservedConcurrentExecutions > concurrentExecutions {
		return fmt.Errorf("emulator: set Lambda settings of %s: need 0 <= unreserved (%d) <= concurrent (%d)",
			accountID, unreservedConcurrentExecutions, concurrentExecutions)
	}
	s.AddAccount(accountID)
	s.lambda.mu.Lock()
	defer s.lambda.mu.Unlock()
	if s.lambda.accounts == nil {
		s.lambda.accounts = map[string]lambdaLimits{}
	}
	s.lambda.accounts[accountID] = lambdaLimits{concurrentExecutions, unreservedConcurrentExecutions}
	return nil
}

// LambdaAccountSettingsCalls returns how many GetAccountSettings requests
// an account made.
func (s *Server) LambdaAccountSettingsCalls(accountID string) int {
	s.lambda.mu.Lock()
	defer s.lambda.mu.Unlock()
	return s.lambda.calls[accountID]
}

type lambdaAccountLimit struct {
	TotalCodeSize                  int64 `json:"TotalCodeSize"`
	CodeSizeUnzipped               int64 `json:"CodeSizeUnzipped"`
	CodeSizeZipped                 int64 `json:"CodeSizeZipped"`
	ConcurrentExecutions           int   `json:"ConcurrentExecutions"`
	UnreservedConcurrentExecutions int   `json:"UnreservedConcurrentExecutions"`
}

type lambdaAccountUsage struct {
	TotalCodeSize int64 `json:"TotalCodeSize"`
	FunctionCount int64 `json:"FunctionCount"`
}

// serveLambda answers the lambda service (restJson1): GetAccountSettings.
func (s *Server) serveLambda(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	switch c.state {
	case credUnknown:
		writeJSONError(w, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	case credExpired:
		writeJSONError(w, http.StatusForbidden, "ExpiredTokenException", "The security token included in the request is expired")
		return
	}
	if r.Method != http.MethodGet || (r.URL.Path != "/2016-08-19/account-settings" && r.URL.Path != "/2016-08-19/account-settings/") {
		writeJSONError(w, http.StatusNotFound, "UnknownOperationException",
			fmt.Sprintf("the emulator does not implement %s %s", r.Method, r.URL.Path))
		return
	}
	s.lambda.mu.Lock()
	if s.lambda.calls == nil {
		s.lambda.calls = map[string]int{}
	}
	s.lambda.calls[c.id.Account]++
	lim, ok := s.lambda.accounts[c.id.Account]
	s.lambda.mu.Unlock()
	if !ok {
		lim = lambdaLimits{DefaultLambdaConcurrentExecutions, DefaultLambdaConcurrentExecutions}
	}
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	writeJSON(w, "application/json", struct {
		AccountLimit lambdaAccountLimit `json:"AccountLimit"`
		AccountUsage lambdaAccountUsage `json:"AccountUsage"`
	}{
		AccountLimit: lambdaAccountLimit{
			TotalCodeSize:                  lambdaTotalCodeSize,
			CodeSizeUnzipped:               lambdaCodeSizeUnzipped,
			CodeSizeZipped:                 lambdaCodeSizeZipped,
			ConcurrentExecutions:           lim.concurrent,
			UnreservedConcurrentExecutions: lim.unreserved,
		},
	})
}
