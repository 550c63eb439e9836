//go:build lambdae2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/trailfill/trailfill/internal/emulator"
)

// fakeSSM serves SSM GetParameter (awsJson1_1, X-Amz-Target
// AmazonSSM.GetParameter) on the emulator's listener, for the receiver's
// cold start: String and SecureString parameters of one account.
type fakeSSM struct {
	account string

	mu     sync.Mutex
	params map[string]string
	calls  int
}

// attachSSM registers an SSM service for account's callers on emu.
func attachSSM(emu *emulator.Server, account string, params map[string]string) *fakeSSM {
	f := &fakeSSM{account: account, params: params}
	emu.Handle("ssm", f)
	return f
}

func (f *fakeSSM) writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

func (f *fakeSSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := emulator.IdentityFromContext(r.Context())
	if !ok {
		f.writeError(w, http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "AmazonSSM.GetParameter" {
		f.writeError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the emulator serves only GetParameter, not %q", target))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &in); err != nil {
		f.writeError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	f.mu.Lock()
	f.calls++
	value, found := f.params[in.Name]
	f.mu.Unlock()
	if !found || id.Account != f.account {
		f.writeError(w, http.StatusBadRequest, "ParameterNotFound", "")
		return
	}
	if !in.WithDecryption {
		value = "AQICAHh-encrypted-value" // SecureString without decryption
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
		"Name": in.Name, "Type": "SecureString", "Value": value, "Version": 1, "DataType": "text",
		"ARN": fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", id.Region, f.account, in.Name),
	}})
}

// Calls is the number of GetParameter requests served.
func (f *fakeSSM) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
