package gitlab

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// TokenHeader carries a streaming destination's verification token.
const TokenHeader = "X-Gitlab-Event-Streaming-Token"

// EventTypeHeader names the event type of a per-event delivery (GitLab's
// EVENT_TYPE_HEADER_KEY); batched deliveries have none.
const EventTypeHeader = "X-Gitlab-Audit-Event-Type"

// MinTokenLength is the shortest accepted verification token. GitLab generates
// 24-character tokens and accepts user-chosen ones of 16 to 24 characters.
const MinTokenLength = 16

// Tokens holds the accepted verification tokens (one per streaming
// destination) as SHA-256 digests, so that comparing them takes the same time
// whatever their lengths and whichever of them matches.
type Tokens struct {
	sums [][sha256.Size]byte
}

// ParseTokens reads tokens, one per line. Surrounding whitespace is removed
// (HTTP removes it from header values too), blank lines and lines starting with
// '#' are ignored. It fails when there is no token or one is shorter than
// MinTokenLength. Errors never contain a token.
func ParseTokens(text string) (*Tokens, error) {
	t := &Tokens{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if len(s) < MinTokenLength {
			return nil, fmt.Errorf("token on line %d is %d characters long, the minimum is %d: use the destination's verification token from GitLab", line, len(s), MinTokenLength)
		}
		t.sums = append(t.sums, sha256.Sum256([]byte(s)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	if len(t.sums) == 0 {
		return nil, errors.New("no verification token found: put each streaming destination's token on its own line")
	}
	return t, nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.sums) }

// Match reports whether presented equals one of the tokens and, if so, the
// 1-based position of that token (useful in logs: it names the destination
// without revealing its token). Every token is compared, in constant time, on
// every call.
func (t *Tokens) Match(presented string) (int, bool) {
	sum := sha256.Sum256([]byte(presented))
	found := 0
	for i := range t.sums {
		eq := subtle.ConstantTimeCompare(sum[:], t.sums[i][:])
		found = subtle.ConstantTimeSelect(eq, i+1, found)
	}
	return found, found != 0
}
