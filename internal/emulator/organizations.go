package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The AWS Organizations operations trailfill reads (awsJson1_1, X-Amz-Target
// AWSOrganizationsV20161128.<Op>), for organization trails: the
// organization's ID and its accounts, from the organization declared with
// [Server.SetOrganization]. Shapes and errors follow the API reference
// (https://docs.aws.amazon.com/organizations/latest/APIReference/):
//   - DescribeOrganization "can be called from any account in the
//     organization"; elsewhere AWSOrganizationsNotInUseException.
//   - ListAccounts "can be called only from the organization's management
//     account or by a member account that is a delegated administrator";
//     other members get AccessDeniedException. At most 20 accounts a page.
//
// [Server.DenyOrganizations] makes every Organizations call of an account
// AccessDeniedException (no organizations:* permission, or an SCP).

const (
	organizationsTargetPrefix = "AWSOrganizationsV20161128."
	listAccountsMaxResults    = 20
)

// orgJoined is the JoinedTimestamp the emulator reports for every account.
var orgJoined = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// DenyOrganizations makes every AWS Organizations request of the account
// answer AccessDeniedException.
func (s *Server) DenyOrganizations(account string) {
	s.trails.mu.Lock()
	defer s.trails.mu.Unlock()
	if s.trails.orgDenied == nil {
		s.trails.orgDenied = map[string]bool{}
	}
	s.trails.orgDenied[account] = true
}

// OrganizationsCalls returns how many requests of an Organizations operation
// ("" for all) the server answered from known callers, errors included.
func (s *Server) OrganizationsCalls(op string) int {
	s.trails.mu.Lock()
	defer s.trails.mu.Unlock()
	return countCalls(s.trails.orgCalls, op)
}

type wireOrganization struct {
	ID                   string `json:"Id"`
	Arn                  string `json:"Arn"`
	FeatureSet           string `json:"FeatureSet"`
	MasterAccountArn     string `json:"MasterAccountArn"`
	MasterAccountID      string `json:"MasterAccountId"`
	MasterAccountEmail   string `json:"MasterAccountEmail"`
	AvailablePolicyTypes []any  `json:"AvailablePolicyTypes"`
}

type wireAccount struct {
	ID              string      `json:"Id"`
	Arn             string      `json:"Arn"`
	Email           string      `json:"Email"`
	Name            string      `json:"Name"`
	Status          string      `json:"Status"`
	State           string      `json:"State"`
	JoinedMethod    string      `json:"JoinedMethod"`
	JoinedTimestamp json.Number `json:"JoinedTimestamp"`
}

// serveOrganizations answers an AWS Organizations request.
func (s *Server) serveOrganizations(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	switch c.state {
	case credUnknown:
		writeJSONError(w, http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	case credExpired:
		writeJSONError(w, http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired")
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), organizationsTargetPrefix)
	if r.Method != http.MethodPost || !ok || (op != "DescribeOrganization" && op != "ListAccounts") {
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("the emulator does not implement %q", r.Header.Get("X-Amz-Target")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot read the request body")
		return
	}
	var req struct {
		MaxResults *int    `json:"MaxResults"`
		NextToken  *string `json:"NextToken"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot decode the request: "+err.Error())
			return
		}
	}
	reg := &s.trails
	reg.mu.Lock()
	if reg.orgCalls == nil {
		reg.orgCalls = map[string]int{}
	}
	reg.orgCalls[op]++
	resp, aerr := reg.organizationsAnswer(op, c.id.Account, req.MaxResults, req.NextToken)
	reg.mu.Unlock()
	if aerr != nil {
		writeJSONError(w, aerr.status, aerr.code, aerr.message)
		return
	}
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	writeJSON(w, "application/x-amz-json-1.1", resp)
}

// organizationsAnswer computes one answer. reg.mu is held.
func (reg *trailRegistry) organizationsAnswer(op, caller string, maxResults *int, token *string) (any, *apiError) {
	if reg.orgDenied[caller] {
		return nil, invalid("AccessDeniedException", "You don't have permissions to access this resource.")
	}
	org := reg.org
	if org == nil || (caller != org.ManagementAccount && !slices.Contains(org.Members, caller) && !slices.Contains(org.DelegatedAdministrators, caller)) {
		return nil, invalid("AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")
	}
	orgARN := fmt.Sprintf("arn:aws:organizations::%s:organization/%s", org.ManagementAccount, org.ID)
	accountARN := func(a string) string {
		return fmt.Sprintf("arn:aws:organizations::%s:account/%s/%s", org.ManagementAccount, org.ID, a)
	}
	if op == "DescribeOrganization" {
		return struct {
			Organization wireOrganization `json:"Organization"`
		}{wireOrganization{
			ID: org.ID, Arn: orgARN, FeatureSet: "ALL",
			MasterAccountArn: accountARN(org.ManagementAccount), MasterAccountID: org.ManagementAccount,
			MasterAccountEmail: "management@example.com", AvailablePolicyTypes: []any{},
		}}, nil
	}
	if caller != org.ManagementAccount && !slices.Contains(org.DelegatedAdministrators, caller) {
		return nil, invalid("AccessDeniedException", "You don't have permissions to access this resource.")
	}
	limit := listAccountsMaxResults
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > listAccountsMaxResults {
			return nil, invalid("InvalidInputException", "MaxResults must be between 1 and %d.", listAccountsMaxResults)
		}
		limit = *maxResults
	}
	all := slices.Concat([]string{org.ManagementAccount}, org.Members, org.DelegatedAdministrators)
	slices.Sort(all)
	all = slices.Compact(all)
	offset := 0
	if token != nil {
		b, err := base64.RawURLEncoding.DecodeString(*token)
		n, perr := strconv.Atoi(strings.TrimPrefix(string(b), "accounts/"))
		if err != nil || perr != nil || !strings.HasPrefix(string(b), "accounts/") || n < 0 || n > len(all) {
			return nil, invalid("InvalidInputException", "The NextToken is not valid.")
		}
		offset = n
	}
	end := min(offset+limit, len(all))
	resp := struct {
		Accounts  []wireAccount `json:"Accounts"`
		NextToken string        `json:"NextToken,omitempty"`
	}{Accounts: []wireAccount{}}
	for _, a := range all[offset:end] {
		method := "INVITED"
		if a == org.ManagementAccount {
			method = "CREATED"
		}
		resp.Accounts = append(resp.Accounts, wireAccount{
			ID: a, Arn: accountARN(a), Email: "aws+" + a + "@example.com", Name: "account-" + a,
			Status: "ACTIVE", State: "ACTIVE", JoinedMethod: method,
			JoinedTimestamp: json.Number(strconv.FormatInt(orgJoined.Unix(), 10)),
		})
	}
	if end < len(all) {
		resp.NextToken = base64.RawURLEncoding.EncodeToString([]byte("accounts/" + strconv.Itoa(end)))
	}
	return resp, nil
}
