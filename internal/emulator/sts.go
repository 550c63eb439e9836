package emulator

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

var (
	roleARNPattern     = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]+/)?([\w+=,.@-]{1,64})$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

type stsError struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

type stsMetadata struct {
	RequestID string `xml:"RequestId"`
}

type getCallerIdentityResponse struct {
	XMLName  xml.Name    `xml:"GetCallerIdentityResponse"`
	Xmlns    string      `xml:"xmlns,attr"`
	Arn      string      `xml:"GetCallerIdentityResult>Arn"`
	UserID   string      `xml:"GetCallerIdentityResult>UserId"`
	Account  string      `xml:"GetCallerIdentityResult>Account"`
	Metadata stsMetadata `xml:"ResponseMetadata"`
}

type assumeRoleResponse struct {
	XMLName       xml.Name    `xml:"AssumeRoleResponse"`
	Xmlns         string      `xml:"xmlns,attr"`
	AccessKeyID   string      `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
	Secret        string      `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
	SessionToken  string      `xml:"AssumeRoleResult>Credentials>SessionToken"`
	Expiration    string      `xml:"AssumeRoleResult>Credentials>Expiration"`
	AssumedRoleID string      `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
	Arn           string      `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
	Metadata      stsMetadata `xml:"ResponseMetadata"`
}

// writeSTSError answers an awsQuery error document.
func (s *Server) writeSTSError(w http.ResponseWriter, status int, code, message string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, status, stsError{Xmlns: stsNamespace, Type: typ, Code: code, Message: message, RequestID: s.requestID()})
}

// serveSTS answers the sts service (awsQuery): GetCallerIdentity and
// AssumeRole.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	switch c.state {
	case credUnknown:
		s.writeSTSError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	case credExpired:
		s.writeSTSError(w, http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
	if err := r.ParseForm(); err != nil {
		s.writeSTSError(w, http.StatusBadRequest, "MalformedQueryString", "cannot parse the request: "+err.Error())
		return
	}
	switch action := r.Form.Get("Action"); action {
	case "GetCallerIdentity":
		writeXML(w, http.StatusOK, getCallerIdentityResponse{
			Xmlns:    stsNamespace,
			Arn:      c.id.ARN,
			UserID:   c.id.UserID,
			Account:  c.id.Account,
			Metadata: stsMetadata{RequestID: s.requestID()},
		})
	case "AssumeRole":
		s.assumeRole(w, r, c.id)
	default:
		s.writeSTSError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", action))
	}
}

// assumeRole issues temporary credentials for a role declared with
// AddAccount.
func (s *Server) assumeRole(w http.ResponseWriter, r *http.Request, id Identity) {
	roleARN := r.Form.Get("RoleArn")
	session := r.Form.Get("RoleSessionName")
	m := roleARNPattern.FindStringSubmatch(roleARN)
	if m == nil {
		s.writeSTSError(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("%s is invalid", roleARN))
		return
	}
	acct, role := m[1], m[2]
	if !sessionNamePattern.MatchString(session) {
		s.writeSTSError(w, http.StatusBadRequest, "ValidationError",
			"1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}")
		return
	}
	duration := time.Hour
	if d := r.Form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			s.writeSTSError(w, http.StatusBadRequest, "ValidationError",
				"1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200")
			return
		}
		duration = time.Duration(n) * time.Second
	}

	s.mu.Lock()
	a, ok := s.accounts[acct]
	if ok {
		a.assumeRoleCalls++
	}
	if !ok || !a.roles[role] {
		s.mu.Unlock()
		s.writeSTSError(w, http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", id.ARN, roleARN))
		return
	}
	s.serial++
	sum := sha256.Sum256(fmt.Appendf(nil, "assumed/%d/%s/%s", s.serial, roleARN, session))
	roleSum := sha256.Sum256([]byte("role/" + acct + "/" + role))
	roleID := "AROA" + base32.StdEncoding.EncodeToString(roleSum[:])[:17]
	c := &credential{
		accessKeyID:  "ASIA" + base32.StdEncoding.EncodeToString(sum[:])[:16],
		secret:       hex.EncodeToString(sum[:])[:40],
		sessionToken: "FwoGZXIvYXdzE" + base64.StdEncoding.EncodeToString(append(sum[:], roleSum[:]...)),
		account:      acct,
		arn:          "arn:aws:sts::" + acct + ":assumed-role/" + role + "/" + session,
		userID:       roleID + ":" + session,
		expires:      time.Now().Add(duration).Truncate(time.Second),
	}
	s.creds[c.accessKeyID] = c
	s.mu.Unlock()

	writeXML(w, http.StatusOK, assumeRoleResponse{
		Xmlns:         stsNamespace,
		AccessKeyID:   c.accessKeyID,
		Secret:        c.secret,
		SessionToken:  c.sessionToken,
		Expiration:    c.expires.UTC().Format(time.RFC3339),
		AssumedRoleID: c.userID,
		Arn:           c.arn,
		Metadata:      stsMetadata{RequestID: s.requestID()},
	})
}

// ExpireCredentials makes every temporary credential issued by AssumeRole in
// the account expire now, so that the next request signed with one gets
// ExpiredToken(Exception). It returns how many were expired.
func (s *Server) ExpireCredentials(accountID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	past := time.Now().Add(-time.Second)
	for _, c := range s.creds {
		if c.account == accountID && c.sessionToken != "" && c.expires.After(past) {
			c.expires = past
			n++
		}
	}
	return n
}
