package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The CloudTrail trail APIs trailfill reads (awsJson1_1, X-Amz-Target
// CloudTrail_20131101.<Op>), with the shapes and errors of the API
// reference (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/):
// GetTrail, DescribeTrails, GetEventSelectors, GetTrailStatus, ListTrails.
//
// Visibility follows what AWS documents and what callers observe:
//   - A trail name resolves only to a trail of the caller's account whose
//     home region is the request's region. Anything else must be named by
//     its ARN: "To get the status of a shadow trail (a replication of the
//     trail in another Region), you must specify its ARN", and "If the trail
//     is an organization trail and you are a member account ... you must
//     provide the full ARN" (API_GetTrailStatus).
//   - A trail ARN resolves in its home region and, for a multi-region trail,
//     in every region (its shadow trails); elsewhere TrailNotFoundException
//     "Unknown trail: <name> for the user: <account>".
//   - An organization trail is visible from the organization's member
//     accounts (DescribeTrails lists it as a shadow trail, ListTrails lists
//     it, GetTrail and GetTrailStatus answer for its ARN, which names the
//     management account). GetEventSelectors of it from a member account
//     that is not a delegated administrator answers
//     CloudTrailARNInvalidException "AccountID in ARN is wrong, you can only
//     access resources with AccountID <caller>", as tools that scan member
//     accounts report (turbot/steampipe-plugin-aws issue 577,
//     cloud-custodian pull request 6394); other accounts' trails answer the
//     same for every operation.

const (
	trailTargetPrefix = "CloudTrail_20131101."
	// listTrailsPageSize is the emulator's ListTrails page size (AWS
	// documents NextToken but no page size).
	listTrailsPageSize = 50
)

// Trail is a trail's configuration and status, as [Server.AddTrail]
// declares it. Field names are those of the CloudTrail API.
type Trail struct {
	Name                       string
	S3BucketName               string
	S3KeyPrefix                string
	IsOrganizationTrail        bool
	IsMultiRegionTrail         bool
	IncludeGlobalServiceEvents bool
	// KmsKeyId is the ARN of the KMS key that encrypts the log files ("":
	// SSE-S3).
	KmsKeyId                 string
	LogFileValidationEnabled bool
	// EventSelectors are basic event selectors; AdvancedEventSelectors
	// advanced ones. A trail has one kind or neither ("You cannot apply both
	// event selectors and advanced event selectors to a trail"); with
	// neither it has the default selector of a new trail (all management
	// events, read and write) and HasCustomEventSelectors false.
	EventSelectors         []EventSelector
	AdvancedEventSelectors []AdvancedEventSelector
	// Status is what GetTrailStatus answers; the zero value is a trail that
	// never logged.
	Status TrailStatus
}

// EventSelector is a basic event selector
// (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_EventSelector.html).
type EventSelector struct {
	// ReadWriteType is "ReadOnly", "WriteOnly" or "All" ("" means All, the
	// API's default).
	ReadWriteType string
	// IncludeManagementEvents: nil means true, the API's default.
	IncludeManagementEvents       *bool
	ExcludeManagementEventSources []string
	DataResources                 []DataResource
}

// DataResource is a data-event resource of a basic selector.
type DataResource struct {
	Type   string
	Values []string
}

// AdvancedEventSelector is an advanced event selector
// (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_AdvancedEventSelector.html).
type AdvancedEventSelector struct {
	Name           string
	FieldSelectors []AdvancedFieldSelector
}

// AdvancedFieldSelector is one field condition of an advanced selector.
type AdvancedFieldSelector struct {
	Field         string
	Equals        []string
	NotEquals     []string
	StartsWith    []string
	NotStartsWith []string
	EndsWith      []string
	NotEndsWith   []string
}

// TrailStatus is what GetTrailStatus answers for a trail
// (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_GetTrailStatus.html).
// Zero times are absent from the answer.
type TrailStatus struct {
	IsLogging           bool
	LatestDeliveryTime  time.Time // the last successful delivery to S3
	LatestDeliveryError string    // e.g. "AccessDenied" or "NoSuchBucket"
	// LatestDeliveryAttemptTime is the last attempt, failed ones included
	// (zero: LatestDeliveryTime).
	LatestDeliveryAttemptTime time.Time
	StartLoggingTime          time.Time
	StopLoggingTime           time.Time
}

// Organization declares an AWS Organizations organization for organization
// trails (see [Server.SetOrganization]).
type Organization struct {
	ID                string // o-...
	ManagementAccount string
	// Members are the member accounts (the management account need not be
	// listed).
	Members []string
	// DelegatedAdministrators are members registered as CloudTrail
	// delegated administrators: they read the organization's trails as the
	// management account does.
	DelegatedAdministrators []string
}

// trailState is one stored trail.
type trailState struct {
	account string
	home    string
	arn     string
	cfg     Trail
}

// trailRegistry holds the trails and the organization. Its zero value is
// empty and usable.
type trailRegistry struct {
	mu     sync.Mutex
	trails []*trailState
	org    *Organization
	calls  map[string]int
	// Organizations (organizations.go).
	orgDenied map[string]bool
	orgCalls  map[string]int
}

// partitionOf returns the ARN partition of a region.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// TrailARN returns the ARN of a trail: arn:<partition>:cloudtrail:<home
// region>:<account>:trail/<name>.
func TrailARN(account, homeRegion, name string) string {
	return fmt.Sprintf("arn:%s:cloudtrail:%s:%s:trail/%s", partitionOf(homeRegion), homeRegion, account, name)
}

var (
	accountIDPattern = regexp.MustCompile(`^\d{12}$`)
	regionPattern    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	trailNameChars   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	trailARNPattern  = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):cloudtrail:([a-z0-9-]+):(\d{12}):trail/(.+)$`)
)

// trailNameProblem checks the trail name rules of the API reference: ASCII
// letters, digits, periods, underscores and dashes; starting and ending
// with a letter or digit; 3 to 128 characters; no adjacent punctuation; not
// an IP address. It returns CloudTrail's message, or "" for a valid name.
func trailNameProblem(name string) string {
	switch {
	case len(name) < 3:
		return fmt.Sprintf("Trail name too short. Minimum allowed length: 3 characters. Specified name length: %d characters.", len(name))
	case len(name) > 128:
		return fmt.Sprintf("Trail name too long. Maximum allowed length: 128 characters. Specified name length: %d characters.", len(name))
	case !trailNameChars.MatchString(name):
		return "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_)."
	case !isAlnum(name[0]):
		return "Trail name must starts with a letter or number."
	case !isAlnum(name[len(name)-1]):
		return "Trail name must ends with a letter or number."
	case hasAdjacentPunct(name):
		return "Trail name cannot contain consecutive periods, underscores or dashes."
	case net.ParseIP(name) != nil:
		return "Trail name cannot be in IP address format."
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func hasAdjacentPunct(name string) bool {
	for i := 1; i < len(name); i++ {
		if !isAlnum(name[i]) && !isAlnum(name[i-1]) {
			return true
		}
	}
	return false
}

// SetOrganization declares the organization whose management account owns
// organization trails. Without it, an organization trail is visible from
// every other account the server knows of, as if they were all members.
func (s *Server) SetOrganization(org Organization) {
	org.Members = slices.Clone(org.Members)
	org.DelegatedAdministrators = slices.Clone(org.DelegatedAdministrators)
	s.trails.mu.Lock()
	defer s.trails.mu.Unlock()
	s.trails.org = &org
}

// AddTrail declares a trail owned by an account with its home region, and
// returns its ARN. It refuses an invalid name, a missing bucket name, a
// second trail of that name in the account and region, both kinds of event
// selectors at once, and invalid selector values.
func (s *Server) AddTrail(account, homeRegion string, t Trail) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("emulator: add trail %q to %s/%s: %s", t.Name, account, homeRegion, fmt.Sprintf(format, args...))
	}
	if !accountIDPattern.MatchString(account) {
		return fail("the account must be 12 digits")
	}
	if !regionPattern.MatchString(homeRegion) {
		return fail("%q is not a region name", homeRegion)
	}
	if msg := trailNameProblem(t.Name); msg != "" {
		return fail("%s", msg)
	}
	if t.S3BucketName == "" {
		return fail("a trail needs an S3BucketName")
	}
	if len(t.EventSelectors) > 0 && len(t.AdvancedEventSelectors) > 0 {
		return fail("you cannot apply both event selectors and advanced event selectors to a trail")
	}
	for i, es := range t.EventSelectors {
		if !slices.Contains([]string{"", "ReadOnly", "WriteOnly", "All"}, es.ReadWriteType) {
			return fail("event selector %d: ReadWriteType %q is not ReadOnly, WriteOnly or All", i, es.ReadWriteType)
		}
	}
	for i, as := range t.AdvancedEventSelectors {
		if len(as.FieldSelectors) == 0 {
			return fail("advanced event selector %d has no field selectors", i)
		}
		for j, fs := range as.FieldSelectors {
			if fs.Field == "" {
				return fail("advanced event selector %d: field selector %d has no Field", i, j)
			}
			if len(fs.Equals)+len(fs.NotEquals)+len(fs.StartsWith)+len(fs.NotStartsWith)+len(fs.EndsWith)+len(fs.NotEndsWith) == 0 {
				return fail("advanced event selector %d: field selector %q has no condition", i, fs.Field)
			}
		}
	}
	st := &trailState{account: account, home: homeRegion, arn: TrailARN(account, homeRegion, t.Name), cfg: cloneTrail(t)}
	s.AddAccount(account)
	s.trails.mu.Lock()
	defer s.trails.mu.Unlock()
	for _, o := range s.trails.trails {
		if o.arn == st.arn {
			return fail("the trail already exists")
		}
	}
	s.trails.trails = append(s.trails.trails, st)
	return st.arn, nil
}

// cloneTrail deep-copies the slices of a trail.
func cloneTrail(t Trail) Trail {
	t.EventSelectors = slices.Clone(t.EventSelectors)
	for i, es := range t.EventSelectors {
		es.ExcludeManagementEventSources = slices.Clone(es.ExcludeManagementEventSources)
		es.DataResources = slices.Clone(es.DataResources)
		for j, dr := range es.DataResources {
			dr.Values = slices.Clone(dr.Values)
			es.DataResources[j] = dr
		}
		if es.IncludeManagementEvents != nil {
			v := *es.IncludeManagementEvents
			es.IncludeManagementEvents = &v
		}
		t.EventSelectors[i] = es
	}
	t.AdvancedEventSelectors = slices.Clone(t.AdvancedEventSelectors)
	for i, as := range t.AdvancedEventSelectors {
		as.FieldSelectors = slices.Clone(as.FieldSelectors)
		for j, fs := range as.FieldSelectors {
			fs.Equals = slices.Clone(fs.Equals)
			fs.NotEquals = slices.Clone(fs.NotEquals)
			fs.StartsWith = slices.Clone(fs.StartsWith)
			fs.NotStartsWith = slices.Clone(fs.NotStartsWith)
			fs.EndsWith = slices.Clone(fs.EndsWith)
			fs.NotEndsWith = slices.Clone(fs.NotEndsWith)
			as.FieldSelectors[j] = fs
		}
		t.AdvancedEventSelectors[i] = as
	}
	return t
}

// SetTrailStatus replaces the status of a trail, named by its ARN.
func (s *Server) SetTrailStatus(trailARN string, st TrailStatus) error {
	s.trails.mu.Lock()
	defer s.trails.mu.Unlock()
	for _, t := range s.trails.trails {
		if t.arn == trailARN {
			t.cfg.Status = st
			return nil
		}
	}
	return fmt.Errorf("emulator: set trail status: no trail %s", trailARN)
}

// CloudTrailCalls returns how many requests of a CloudTrail trail operation
// ("GetTrail", "DescribeTrails", "GetEventSelectors", "GetTrailStatus",
// "ListTrails"; "" for all of them) the server answered from known callers,
// error answers included. LookupEvents is counted by [Server.Stats].
func (s *Server) CloudTrailCalls(op string) int {
	s.trails.mu.Lock()
	defer s.trails.mu.Unlock()
	return countCalls(s.trails.calls, op)
}

// countCalls is calls[op], or the sum of all of them for op "".
func countCalls(calls map[string]int, op string) int {
	if op != "" {
		return calls[op]
	}
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

// trailView is a caller's view of the registry.
type trailView struct {
	reg     *trailRegistry
	account string
	region  string
}

// memberOf reports whether account sees the organization trails of owner
// (the owner itself excluded). reg.mu must be held.
func (v trailView) memberOf(owner string) bool {
	org := v.reg.org
	if org == nil {
		return v.account != owner
	}
	return owner == org.ManagementAccount && v.account != owner &&
		(slices.Contains(org.Members, v.account) || slices.Contains(org.DelegatedAdministrators, v.account))
}

// delegatedAdmin reports whether the caller reads owner's organization
// trails as the owner does. reg.mu must be held.
func (v trailView) delegatedAdmin(owner string) bool {
	org := v.reg.org
	return org != nil && owner == org.ManagementAccount && slices.Contains(org.DelegatedAdministrators, v.account)
}

// visible reports whether the caller may see a trail at all (any region).
func (v trailView) visible(t *trailState) bool {
	return t.account == v.account || (t.cfg.IsOrganizationTrail && v.memberOf(t.account))
}

// inRegion reports whether a trail exists in the request's region, as
// itself or as a shadow trail.
func (v trailView) inRegion(t *trailState) bool {
	return t.home == v.region || t.cfg.IsMultiRegionTrail
}

// resolve finds the trail a Name or TrailName parameter designates.
// selectors tells whether the caller wants the trail's event selectors,
// which member accounts may not read.
func (v trailView) resolve(name string, selectors bool) (*trailState, *apiError) {
	if name == "" {
		return nil, invalid("InvalidTrailNameException", "Trail name or ARN can not be empty.")
	}
	if !strings.HasPrefix(name, "arn:") {
		if msg := trailNameProblem(name); msg != "" {
			return nil, invalid("InvalidTrailNameException", "%s", msg)
		}
		for _, t := range v.reg.trails {
			if t.account == v.account && t.home == v.region && t.cfg.Name == name {
				return t, nil
			}
		}
		return nil, v.notFound(name)
	}
	m := trailARNPattern.FindStringSubmatch(name)
	if m == nil || trailNameProblem(m[4]) != "" {
		return nil, invalid("CloudTrailARNInvalidException",
			"Invalid trail ARN %s. The trail ARN format is arn:aws:cloudtrail:us-east-2:123456789012:trail/MyTrail.", name)
	}
	var t *trailState
	for _, o := range v.reg.trails {
		if o.arn == name {
			t = o
		}
	}
	if m[3] != v.account {
		if t == nil || !t.cfg.IsOrganizationTrail || !v.memberOf(t.account) || (selectors && !v.delegatedAdmin(t.account)) {
			return nil, invalid("CloudTrailARNInvalidException",
				"AccountID in ARN is wrong, you can only access resources with AccountID %s.", v.account)
		}
	}
	if t == nil || !v.inRegion(t) {
		return nil, v.notFound(name)
	}
	return t, nil
}

func (v trailView) notFound(name string) *apiError {
	return invalid("TrailNotFoundException", "Unknown trail: %s for the user: %s", name, v.account)
}

// isoOrEmpty formats the deprecated string timestamps of GetTrailStatus
// ("" when unset, as CloudTrail answers).
func isoOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

type wireTrail struct {
	Name                       string `json:"Name"`
	S3BucketName               string `json:"S3BucketName"`
	S3KeyPrefix                string `json:"S3KeyPrefix,omitempty"`
	IncludeGlobalServiceEvents bool   `json:"IncludeGlobalServiceEvents"`
	IsMultiRegionTrail         bool   `json:"IsMultiRegionTrail"`
	HomeRegion                 string `json:"HomeRegion"`
	TrailARN                   string `json:"TrailARN"`
	LogFileValidationEnabled   bool   `json:"LogFileValidationEnabled"`
	KmsKeyID                   string `json:"KmsKeyId,omitempty"`
	HasCustomEventSelectors    bool   `json:"HasCustomEventSelectors"`
	HasInsightSelectors        bool   `json:"HasInsightSelectors"`
	IsOrganizationTrail        bool   `json:"IsOrganizationTrail"`
}

func (t *trailState) wire() wireTrail {
	c := t.cfg
	return wireTrail{
		Name: c.Name, S3BucketName: c.S3BucketName, S3KeyPrefix: c.S3KeyPrefix,
		IncludeGlobalServiceEvents: c.IncludeGlobalServiceEvents, IsMultiRegionTrail: c.IsMultiRegionTrail,
		HomeRegion: t.home, TrailARN: t.arn, LogFileValidationEnabled: c.LogFileValidationEnabled,
		KmsKeyID:                c.KmsKeyId,
		HasCustomEventSelectors: len(c.EventSelectors)+len(c.AdvancedEventSelectors) > 0,
		IsOrganizationTrail:     c.IsOrganizationTrail,
	}
}

type wireDataResource struct {
	Type   string   `json:"Type"`
	Values []string `json:"Values"`
}

type wireEventSelector struct {
	ReadWriteType                 string             `json:"ReadWriteType"`
	IncludeManagementEvents       bool               `json:"IncludeManagementEvents"`
	DataResources                 []wireDataResource `json:"DataResources"`
	ExcludeManagementEventSources []string           `json:"ExcludeManagementEventSources"`
}

// wireFieldSelector has the fields of AdvancedFieldSelector, in its order.
type wireFieldSelector struct {
	Field         string   `json:"Field"`
	Equals        []string `json:"Equals,omitempty"`
	NotEquals     []string `json:"NotEquals,omitempty"`
	StartsWith    []string `json:"StartsWith,omitempty"`
	NotStartsWith []string `json:"NotStartsWith,omitempty"`
	EndsWith      []string `json:"EndsWith,omitempty"`
	NotEndsWith   []string `json:"NotEndsWith,omitempty"`
}

type wireAdvancedSelector struct {
	Name           string              `json:"Name,omitempty"`
	FieldSelectors []wireFieldSelector `json:"FieldSelectors"`
}

type wireSelectors struct {
	TrailARN               string                 `json:"TrailARN"`
	EventSelectors         []wireEventSelector    `json:"EventSelectors,omitempty"`
	AdvancedEventSelectors []wireAdvancedSelector `json:"AdvancedEventSelectors,omitempty"`
}

// selectors returns the GetEventSelectors answer of a trail: its advanced
// selectors, or its basic ones, or the default selector of a new trail.
// Empty lists are sent as [], as CloudTrail does.
func (t *trailState) selectors() wireSelectors {
	out := wireSelectors{TrailARN: t.arn}
	c := t.cfg
	if len(c.AdvancedEventSelectors) > 0 {
		for _, as := range c.AdvancedEventSelectors {
			w := wireAdvancedSelector{Name: as.Name}
			for _, fs := range as.FieldSelectors {
				w.FieldSelectors = append(w.FieldSelectors, wireFieldSelector(fs))
			}
			out.AdvancedEventSelectors = append(out.AdvancedEventSelectors, w)
		}
		return out
	}
	sels := c.EventSelectors
	if len(sels) == 0 {
		sels = []EventSelector{{ReadWriteType: "All"}}
	}
	for _, es := range sels {
		w := wireEventSelector{
			ReadWriteType:                 cmpOr(es.ReadWriteType, "All"),
			IncludeManagementEvents:       es.IncludeManagementEvents == nil || *es.IncludeManagementEvents,
			DataResources:                 []wireDataResource{},
			ExcludeManagementEventSources: append([]string{}, es.ExcludeManagementEventSources...),
		}
		for _, dr := range es.DataResources {
			w.DataResources = append(w.DataResources, wireDataResource{Type: dr.Type, Values: append([]string{}, dr.Values...)})
		}
		out.EventSelectors = append(out.EventSelectors, w)
	}
	return out
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

type wireStatus struct {
	IsLogging                          bool         `json:"IsLogging"`
	LatestDeliveryError                string       `json:"LatestDeliveryError,omitempty"`
	LatestDeliveryTime                 *json.Number `json:"LatestDeliveryTime,omitempty"`
	StartLoggingTime                   *json.Number `json:"StartLoggingTime,omitempty"`
	StopLoggingTime                    *json.Number `json:"StopLoggingTime,omitempty"`
	LatestDeliveryAttemptTime          string       `json:"LatestDeliveryAttemptTime"`
	LatestDeliveryAttemptSucceeded     string       `json:"LatestDeliveryAttemptSucceeded"`
	LatestNotificationAttemptTime      string       `json:"LatestNotificationAttemptTime"`
	LatestNotificationAttemptSucceeded string       `json:"LatestNotificationAttemptSucceeded"`
	TimeLoggingStarted                 string       `json:"TimeLoggingStarted"`
	TimeLoggingStopped                 string       `json:"TimeLoggingStopped"`
}

func (t *trailState) status() wireStatus {
	st := t.cfg.Status
	attempt := st.LatestDeliveryAttemptTime
	if attempt.IsZero() {
		attempt = st.LatestDeliveryTime
	}
	return wireStatus{
		IsLogging:                      st.IsLogging,
		LatestDeliveryError:            st.LatestDeliveryError,
		LatestDeliveryTime:             epochPtr(st.LatestDeliveryTime),
		StartLoggingTime:               epochPtr(st.StartLoggingTime),
		StopLoggingTime:                epochPtr(st.StopLoggingTime),
		LatestDeliveryAttemptTime:      isoOrEmpty(attempt),
		LatestDeliveryAttemptSucceeded: isoOrEmpty(st.LatestDeliveryTime),
		TimeLoggingStarted:             isoOrEmpty(st.StartLoggingTime),
		TimeLoggingStopped:             isoOrEmpty(st.StopLoggingTime),
	}
}

// trailOps are the trail operations served, by X-Amz-Target suffix.
var trailOps = []string{"GetTrail", "DescribeTrails", "GetEventSelectors", "GetTrailStatus", "ListTrails"}

// serveTrailAPI answers a CloudTrail request other than LookupEvents.
func (s *Server) serveTrailAPI(w http.ResponseWriter, r *http.Request, id Identity, target string) {
	op, ok := strings.CutPrefix(target, trailTargetPrefix)
	if !ok || !slices.Contains(trailOps, op) {
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("the emulator does not implement %q", target))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot read the request body")
		return
	}
	var req struct {
		Name                *string  `json:"Name"`
		TrailName           *string  `json:"TrailName"`
		TrailNameList       []string `json:"trailNameList"`
		IncludeShadowTrails *bool    `json:"includeShadowTrails"`
		NextToken           *string  `json:"NextToken"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot decode the request: "+err.Error())
			return
		}
	}
	reg := &s.trails
	reg.mu.Lock()
	if reg.calls == nil {
		reg.calls = map[string]int{}
	}
	reg.calls[op]++
	v := trailView{reg: reg, account: id.Account, region: id.Region}
	resp, aerr := v.answer(op, req.Name, req.TrailName, req.TrailNameList, req.IncludeShadowTrails, req.NextToken)
	reg.mu.Unlock()
	if aerr != nil {
		writeJSONError(w, aerr.status, aerr.code, aerr.message)
		return
	}
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	writeJSON(w, cloudTrailJSON, resp)
}

// answer computes the answer of one trail operation. v.reg.mu is held.
func (v trailView) answer(op string, name, trailName *string, nameList []string, shadows *bool, token *string) (any, *apiError) {
	switch op {
	case "GetTrail":
		t, aerr := v.resolve(deref(name), false)
		if aerr != nil {
			return nil, aerr
		}
		return struct {
			Trail wireTrail `json:"Trail"`
		}{t.wire()}, nil
	case "GetTrailStatus":
		t, aerr := v.resolve(deref(name), false)
		if aerr != nil {
			return nil, aerr
		}
		return t.status(), nil
	case "GetEventSelectors":
		t, aerr := v.resolve(deref(trailName), true)
		if aerr != nil {
			return nil, aerr
		}
		return t.selectors(), nil
	case "DescribeTrails":
		list, aerr := v.describe(nameList, shadows == nil || *shadows)
		if aerr != nil {
			return nil, aerr
		}
		return struct {
			TrailList []wireTrail `json:"trailList"`
		}{list}, nil
	case "ListTrails":
		return v.list(token)
	}
	return nil, invalid("UnknownOperationException", "the emulator does not implement %s", op)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// describe answers DescribeTrails: with no names, the caller's trails
// whose home is this region, and with shadows also the multi-region and
// organization trails replicated here; with names, the trails they
// designate (names only match trails of this account and region; unknown
// names are skipped, not errors).
func (v trailView) describe(names []string, shadows bool) ([]wireTrail, *apiError) {
	out := []wireTrail{}
	shadow := func(t *trailState) bool { return t.account != v.account || t.home != v.region }
	if len(names) == 0 {
		for _, t := range v.reg.trails {
			if v.visible(t) && v.inRegion(t) && (shadows || !shadow(t)) {
				out = append(out, t.wire())
			}
		}
		return out, nil
	}
	seen := map[string]bool{}
	for _, n := range names {
		t, aerr := v.resolve(n, false)
		if aerr != nil {
			if aerr.code == "TrailNotFoundException" {
				continue
			}
			return nil, aerr
		}
		if seen[t.arn] || (!shadows && shadow(t)) {
			continue
		}
		seen[t.arn] = true
		out = append(out, t.wire())
	}
	return out, nil
}

type trailInfo struct {
	TrailARN   string `json:"TrailARN"`
	Name       string `json:"Name"`
	HomeRegion string `json:"HomeRegion"`
}

type listTrailsToken struct {
	Offset  int    `json:"o"`
	Account string `json:"a"`
}

// list answers ListTrails: every trail of the caller's account, whatever
// its home region ("Lists trails that are in the current account"; each
// entry names its HomeRegion), and the organization trails it sees, in ARN
// order.
func (v trailView) list(token *string) (any, *apiError) {
	var all []trailInfo
	for _, t := range v.reg.trails {
		if v.visible(t) {
			all = append(all, trailInfo{TrailARN: t.arn, Name: t.cfg.Name, HomeRegion: t.home})
		}
	}
	slices.SortFunc(all, func(a, b trailInfo) int { return strings.Compare(a.TrailARN, b.TrailARN) })
	offset := 0
	if token != nil {
		var tok listTrailsToken
		b, err := base64.RawURLEncoding.DecodeString(*token)
		if err != nil || json.Unmarshal(b, &tok) != nil || tok.Account != v.account || tok.Offset < 0 {
			return nil, invalid("InvalidNextTokenException", "Invalid NextToken.")
		}
		offset = min(tok.Offset, len(all))
	}
	end := min(offset+listTrailsPageSize, len(all))
	resp := struct {
		Trails    []trailInfo `json:"Trails"`
		NextToken string      `json:"NextToken,omitempty"`
	}{Trails: append([]trailInfo{}, all[offset:end]...)}
	if end < len(all) {
		b, err := json.Marshal(listTrailsToken{Offset: end, Account: v.account})
		if err != nil {
			return nil, &apiError{status: http.StatusInternalServerError, code: "InternalFailure", message: err.Error()}
		}
		resp.NextToken = base64.RawURLEncoding.EncodeToString(b)
	}
	return resp, nil
}
