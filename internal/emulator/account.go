package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// DefaultRegions are the 17 commercial regions enabled by default in every
// AWS account.
var DefaultRegions = []string{
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
	"ap-southeast-1", "ap-southeast-2", "ca-central-1", "eu-central-1",
	"eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1",
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
}

// optInRegions are commercial regions an account must opt in to. ListRegions
// reports them DISABLED unless enabled with SetEnabledRegions.
var optInRegions = []string{
	"af-south-1", "ap-east-1", "ap-east-2", "ap-south-2", "ap-southeast-3",
	"ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ca-west-1",
	"eu-central-2", "eu-south-1", "eu-south-2", "il-central-1",
	"me-central-1", "me-south-1", "mx-central-1",
}

const (
	defaultListRegionsResults = 20
	maxListRegionsResults     = 50
)

var regionOptStatuses = []string{"ENABLED", "ENABLING", "DISABLING", "DISABLED", "ENABLED_BY_DEFAULT"}

type regionEntry struct {
	RegionName      string `json:"RegionName"`
	RegionOptStatus string `json:"RegionOptStatus"`
}

type listRegionsRequest struct {
	AccountID               *string  `json:"AccountId"`
	MaxResults              *int     `json:"MaxResults"`
	NextToken               *string  `json:"NextToken"`
	RegionOptStatusContains []string `json:"RegionOptStatusContains"`
}

type listRegionsToken struct {
	Offset int    `json:"o"`
	Params string `json:"p"`
}

// regionsOf returns every region of an account with its opt status, sorted
// by name.
func (s *Server) regionsOf(accountID string) []regionEntry {
	s.mu.Lock()
	var enabled []string
	if a, ok := s.accounts[accountID]; ok && a.regions != nil {
		enabled = slices.Clone(a.regions)
	} else {
		enabled = DefaultRegions
	}
	s.mu.Unlock()
	all := slices.Concat(DefaultRegions, optInRegions, enabled)
	slices.Sort(all)
	all = slices.Compact(all)
	out := make([]regionEntry, 0, len(all))
	for _, r := range all {
		status := "DISABLED"
		if slices.Contains(enabled, r) {
			status = "ENABLED"
			if slices.Contains(DefaultRegions, r) {
				status = "ENABLED_BY_DEFAULT"
			}
		}
		out = append(out, regionEntry{RegionName: r, RegionOptStatus: status})
	}
	return out
}

// serveAccount answers the account service (restJson1): ListRegions.
func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	switch c.state {
	case credUnknown:
		writeJSONError(w, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	case credExpired:
		writeJSONError(w, http.StatusForbidden, "ExpiredTokenException", "The security token included in the request is expired")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/listRegions" {
		writeJSONError(w, http.StatusNotFound, "UnknownOperationException",
			fmt.Sprintf("the emulator does not implement %s %s", r.Method, r.URL.Path))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "ValidationException", "cannot read the request body")
		return
	}
	var req listRegionsRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "ValidationException", "cannot decode the request: "+err.Error())
			return
		}
	}
	acct := c.id.Account
	if req.AccountID != nil && *req.AccountID != acct {
		s.mu.Lock()
		_, known := s.accounts[*req.AccountID]
		s.mu.Unlock()
		if !known {
			writeJSONError(w, http.StatusForbidden, "AccessDeniedException",
				fmt.Sprintf("%s is not authorized to list the regions of account %s", c.id.ARN, *req.AccountID))
			return
		}
		acct = *req.AccountID
	}
	limit := defaultListRegionsResults
	if req.MaxResults != nil {
		if *req.MaxResults < 1 || *req.MaxResults > maxListRegionsResults {
			writeJSONError(w, http.StatusBadRequest, "ValidationException",
				fmt.Sprintf("MaxResults must be between 1 and %d", maxListRegionsResults))
			return
		}
		limit = *req.MaxResults
	}
	for _, st := range req.RegionOptStatusContains {
		if !slices.Contains(regionOptStatuses, st) {
			writeJSONError(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("invalid RegionOptStatus %q", st))
			return
		}
	}
	filter := slices.Clone(req.RegionOptStatusContains)
	slices.Sort(filter)
	sum := sha256.Sum256([]byte(acct + "\x00" + strings.Join(filter, ",")))
	params := hex.EncodeToString(sum[:8])
	offset := 0
	if req.NextToken != nil {
		tok, ok := decodeRegionsToken(*req.NextToken)
		if !ok || tok.Params != params {
			writeJSONError(w, http.StatusBadRequest, "ValidationException", "The NextToken is not valid for this request.")
			return
		}
		offset = tok.Offset
	}

	var matched []regionEntry
	for _, e := range s.regionsOf(acct) {
		if len(filter) == 0 || slices.Contains(filter, e.RegionOptStatus) {
			matched = append(matched, e)
		}
	}
	offset = min(offset, len(matched))
	end := min(offset+limit, len(matched))
	resp := struct {
		NextToken string        `json:"NextToken,omitempty"`
		Regions   []regionEntry `json:"Regions"`
	}{Regions: matched[offset:end]}
	if end < len(matched) {
		b, err := json.Marshal(listRegionsToken{Offset: end, Params: params})
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "InternalServerException", "emulator: encode token: "+err.Error())
			return
		}
		resp.NextToken = base64.RawURLEncoding.EncodeToString(b)
	}
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	writeJSON(w, "application/json", resp)
}

func decodeRegionsToken(s string) (listRegionsToken, bool) {
	var t listRegionsToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Offset < 0 {
		return t, false
	}
	return t, true
}
