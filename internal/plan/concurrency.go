package plan

import "fmt"

// Lambda concurrency. Every running partition of the Distributed Map has one
// backfill invocation in flight, so an execution needs up to its
// max_concurrency concurrent Lambda executions. A function without reserved
// concurrency draws them from the account's unreserved concurrency in its
// region (lambda:GetAccountSettings, AccountLimit.UnreservedConcurrentExecutions),
// which every other function without a reservation shares
// (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).
// When that pool runs out, Lambda throttles: invocations fail with
// TooManyRequestsException, the backfill's and the other functions' alike.
//
// The rule: a backfill may use the unreserved concurrency less a tenth of it
// (rounded up), the headroom left to the account's other functions. A
// requested concurrency above that is refused when it was asked for
// explicitly, and lowered to it when it is the default; an account whose
// headroom leaves nothing is refused.

// ConcurrencyLimit is the largest max_concurrency the rule allows for an
// account with unreserved concurrent executions.
func ConcurrencyLimit(unreserved int) int {
	headroom := (unreserved + 9) / 10
	return unreserved - headroom
}

// ConcurrencyError says why a concurrency is refused.
type ConcurrencyError struct {
	Requested, Unreserved, Limit int
}

func (e *ConcurrencyError) Error() string {
	if e.Limit < 1 {
		return fmt.Sprintf("the account's unreserved Lambda concurrency is %d, too little to run the backfill and leave a tenth to other functions: ask AWS Support for a higher Lambda concurrency quota", e.Unreserved)
	}
	return fmt.Sprintf("--max-concurrency %d would use the account's unreserved Lambda concurrency (%d) that other functions need: give --max-concurrency %d or less, or raise the account's Lambda concurrency quota", e.Requested, e.Unreserved, e.Limit)
}

// MapConcurrency returns the max_concurrency to start with: requested when
// it fits, the limit when requested is a default above it (lowered is then
// true), and a *ConcurrencyError when an explicit request does not fit or
// nothing does.
func MapConcurrency(requested int, explicit bool, unreserved int) (n int, lowered bool, err error) {
	limit := ConcurrencyLimit(unreserved)
	switch {
	case limit < 1:
		return 0, false, &ConcurrencyError{Requested: requested, Unreserved: unreserved, Limit: limit}
	case requested <= limit:
		return requested, false, nil
	case explicit:
		return 0, false, &ConcurrencyError{Requested: requested, Unreserved: unreserved, Limit: limit}
	}
	return limit, true, nil
}
