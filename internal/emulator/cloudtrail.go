package emulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LookupEvents limits, as documented by AWS.
const (
	maxLookupResults     = 50
	defaultLookupResults = 50
	lookupTarget         = "CloudTrail_20131101.LookupEvents"
	cloudTrailJSON       = "application/x-amz-json-1.1"
)

// Stats counts what one (account, region) partition's LookupEvents saw.
type Stats struct {
	// Requests is every LookupEvents request received from a known caller,
	// throttled ones included.
	Requests int
	// Throttled is requests refused with ThrottlingException.
	Throttled int
	// Faults is admitted requests answered with an injected 500 or 503.
	Faults int
	// Invalid is admitted requests refused with a validation error
	// (InvalidNextTokenException, InvalidTimeRangeException, ...).
	Invalid int
	// Served is successful answers.
	Served int
	// EventsReturned is the number of events in all successful answers.
	EventsReturned int
	// MaxInFlight is the largest number of admitted requests that were being
	// answered at the same time (waiting out their latency): how well a
	// client hides latency.
	MaxInFlight int
	// CompetitorAllowed and CompetitorThrottled count the requests of the
	// competing caller (see Server.SetCompetitor) that got or missed a token.
	CompetitorAllowed   int
	CompetitorThrottled int
}

// partitionKey names an (account, region) partition.
type partitionKey struct {
	account string
	region  string
}

// partition is the event history and quota of one account and region.
type partition struct {
	key     partitionKey
	limiter *rate.Limiter

	mu       sync.Mutex
	mgmt     eventStore
	insight  eventStore
	ids      map[string]struct{}
	stats    Stats
	inFlight int
	comp     *competitor
}

// event is one stored event, with the fields LookupEvents filters on and its
// precomputed wire form.
type event struct {
	ms          int64  // eventTime in Unix milliseconds
	id          string // eventID
	name        string
	source      string
	readOnly    string // "true", "false" or ""
	accessKeyID string
	username    string
	resources   []resource
	wire        []byte // the LookupEvents Event object, JSON
}

type resource struct {
	Type string `json:"ResourceType,omitempty"`
	Name string `json:"ResourceName,omitempty"`
}

// before reports whether a is listed before b: newest first, ties broken by
// eventID descending.
func before(aMS int64, aID string, b *event) bool {
	if aMS != b.ms {
		return aMS > b.ms
	}
	return aID > b.id
}

func compareEvents(a, b *event) int {
	switch {
	case before(a.ms, a.id, b):
		return -1
	case before(b.ms, b.id, a):
		return 1
	}
	return 0
}

// eventStore keeps events sorted newest first. Additions go to pending and
// are merged in by the next read, so bulk loads cost one sort, not one
// insertion each.
type eventStore struct {
	sorted  []*event
	pending []*event
}

// snapshot returns the sorted events. The returned slice is never modified
// afterwards (a merge builds a new one), so it may be read without the lock.
func (st *eventStore) snapshot() []*event {
	if len(st.pending) == 0 {
		return st.sorted
	}
	slices.SortFunc(st.pending, compareEvents)
	merged := make([]*event, 0, len(st.sorted)+len(st.pending))
	i, j := 0, 0
	for i < len(st.sorted) && j < len(st.pending) {
		if compareEvents(st.pending[j], st.sorted[i]) < 0 {
			merged = append(merged, st.pending[j])
			j++
		} else {
			merged = append(merged, st.sorted[i])
			i++
		}
	}
	merged = append(merged, st.sorted[i:]...)
	merged = append(merged, st.pending[j:]...)
	st.sorted, st.pending = merged, nil
	return merged
}

// partition returns the partition of an account and region, creating it.
func (s *Server) partition(accountID, region string) *partition {
	k := partitionKey{accountID, region}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.partitions[k]
	if !ok {
		p = &partition{
			key:     k,
			limiter: rate.NewLimiter(rateLimit(s.rate), s.burst),
			ids:     map[string]struct{}{},
		}
		s.partitions[k] = p
	}
	return p
}

func rateLimit(r float64) rate.Limit {
	if math.IsInf(r, 1) {
		return rate.Inf
	}
	return rate.Limit(r)
}

// SetRate changes the LookupEvents token bucket (refill rate in requests/s and
// size) of every partition, existing and future. Use math.Inf(1) for no limit.
func (s *Server) SetRate(rps float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rps <= 0 {
		rps = DefaultRate
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	s.rate, s.burst = rps, burst
	for _, p := range s.partitions {
		p.limiter.SetLimit(rateLimit(rps))
		p.limiter.SetBurst(burst)
	}
}

// Stats returns the LookupEvents counters of a partition.
func (s *Server) Stats(accountID, region string) Stats {
	p := s.partition(accountID, region)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// recordFields is what the emulator reads from a CloudTrail record.
type recordFields struct {
	EventTime       *string         `json:"eventTime"`
	EventID         *string         `json:"eventID"`
	EventName       string          `json:"eventName"`
	EventSource     string          `json:"eventSource"`
	ReadOnly        json.RawMessage `json:"readOnly"`
	EventCategory   string          `json:"eventCategory"`
	ManagementEvent *bool           `json:"managementEvent"`
	UserIdentity    struct {
		Type        string `json:"type"`
		UserName    string `json:"userName"`
		ARN         string `json:"arn"`
		AccessKeyID string `json:"accessKeyId"`
		InvokedBy   string `json:"invokedBy"`
	} `json:"userIdentity"`
	Resources []struct {
		Type string `json:"type"`
		ARN  string `json:"ARN"`
	} `json:"resources"`
}

// wireEvent is a LookupEvents Event as the API returns it.
type wireEvent struct {
	EventID         string      `json:"EventId"`
	EventName       string      `json:"EventName,omitempty"`
	ReadOnly        string      `json:"ReadOnly,omitempty"`
	AccessKeyID     string      `json:"AccessKeyId,omitempty"`
	EventTime       json.Number `json:"EventTime"`
	EventSource     string      `json:"EventSource,omitempty"`
	Username        string      `json:"Username,omitempty"`
	Resources       []resource  `json:"Resources,omitempty"`
	CloudTrailEvent string      `json:"CloudTrailEvent"`
}

// parseRecord builds an event from one CloudTrail record. It reports
// whether the record belongs to event history at all (data and network
// activity events do not) and whether it is an Insights event.
func parseRecord(raw json.RawMessage) (ev *event, keep, insight bool, err error) {
	var f recordFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, false, false, fmt.Errorf("decode record: %w", err)
	}
	if f.EventID == nil || *f.EventID == "" {
		return nil, false, false, errors.New("record has no eventID")
	}
	if f.EventTime == nil {
		return nil, false, false, fmt.Errorf("record %s has no eventTime", *f.EventID)
	}
	t, err := time.Parse(time.RFC3339Nano, *f.EventTime)
	if err != nil {
		return nil, false, false, fmt.Errorf("record %s: eventTime: %w", *f.EventID, err)
	}
	switch {
	case f.EventCategory == "Insight":
		insight = true
	case f.EventCategory != "" && f.EventCategory != "Management":
		return nil, false, false, nil
	case f.EventCategory == "" && f.ManagementEvent != nil && !*f.ManagementEvent:
		return nil, false, false, nil
	}
	ev = &event{
		ms:          t.UnixMilli(),
		id:          *f.EventID,
		name:        f.EventName,
		source:      f.EventSource,
		accessKeyID: f.UserIdentity.AccessKeyID,
		username:    username(f),
	}
	switch ro := strings.Trim(string(bytes.TrimSpace(f.ReadOnly)), `"`); ro {
	case "true", "false":
		ev.readOnly = ro
	}
	for _, r := range f.Resources {
		ev.resources = append(ev.resources, resource{Type: r.Type, Name: r.ARN})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err = enc.Encode(wireEvent{
		EventID:         ev.id,
		EventName:       ev.name,
		ReadOnly:        ev.readOnly,
		AccessKeyID:     ev.accessKeyID,
		EventTime:       json.Number(strconv.FormatFloat(float64(ev.ms)/1000, 'f', -1, 64)),
		EventSource:     ev.source,
		Username:        ev.username,
		Resources:       ev.resources,
		CloudTrailEvent: string(raw),
	})
	if err != nil {
		return nil, false, false, fmt.Errorf("record %s: encode: %w", ev.id, err)
	}
	ev.wire = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return ev, true, insight, nil
}

// username derives the LookupEvents Username of a record: the IAM user name,
// the session name of an assumed role, "root", or the invoking service.
func username(f recordFields) string {
	u := f.UserIdentity
	switch {
	case u.UserName != "":
		return u.UserName
	case u.Type == "Root":
		return "root"
	case u.Type == "AWSService" && u.InvokedBy != "":
		return u.InvokedBy
	case u.ARN != "":
		return u.ARN[strings.LastIndex(u.ARN, "/")+1:]
	}
	return ""
}

// AddEvents adds CloudTrail records (each one record as found in a trail
// file's Records array) to the event history of an account and region. The
// eventTime (RFC 3339) and eventID are read from each record; the record's
// bytes are kept as given and returned verbatim as CloudTrailEvent. Records
// of eventCategory "Insight" are returned only for EventCategory=insight;
// data and network-activity events (eventCategory other than Management, or
// managementEvent false) are accepted and dropped, as AWS event history never
// holds them. The call is all or nothing: an invalid record, or an eventID
// already present in the partition or repeated in the call, adds nothing and
// returns an error.
func (s *Server) AddEvents(accountID, region string, records ...json.RawMessage) error {
	type parsed struct {
		ev      *event
		insight bool
	}
	evs := make([]parsed, 0, len(records))
	for i, raw := range records {
		ev, keep, insight, err := parseRecord(raw)
		if err != nil {
			return fmt.Errorf("emulator: add events to %s/%s: record %d: %w", accountID, region, i, err)
		}
		if keep {
			evs = append(evs, parsed{ev, insight})
		}
	}
	p := s.partition(accountID, region)
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make(map[string]struct{}, len(evs))
	for _, e := range evs {
		if _, dup := p.ids[e.ev.id]; dup {
			return fmt.Errorf("emulator: add events to %s/%s: duplicate eventID %s", accountID, region, e.ev.id)
		}
		if _, dup := seen[e.ev.id]; dup {
			return fmt.Errorf("emulator: add events to %s/%s: eventID %s repeated in the call", accountID, region, e.ev.id)
		}
		seen[e.ev.id] = struct{}{}
	}
	for _, e := range evs {
		p.ids[e.ev.id] = struct{}{}
		if e.insight {
			p.insight.pending = append(p.insight.pending, e.ev)
		} else {
			p.mgmt.pending = append(p.mgmt.pending, e.ev)
		}
	}
	return nil
}

// EventCount returns the number of management events stored for a partition.
func (s *Server) EventCount(accountID, region string) int {
	p := s.partition(accountID, region)
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.mgmt.sorted) + len(p.mgmt.pending)
}

// lookupRequest is the LookupEvents input on the wire.
type lookupRequest struct {
	StartTime        *json.Number `json:"StartTime"`
	EndTime          *json.Number `json:"EndTime"`
	EventCategory    *string      `json:"EventCategory"`
	LookupAttributes []struct {
		AttributeKey   *string `json:"AttributeKey"`
		AttributeValue *string `json:"AttributeValue"`
	} `json:"LookupAttributes"`
	MaxResults *int    `json:"MaxResults"`
	NextToken  *string `json:"NextToken"`
}

// lookupQuery is a validated LookupEvents request.
type lookupQuery struct {
	startMS, endMS int64 // inclusive bounds
	attrKey        string
	attrValue      string
	insight        bool
	maxResults     int
	token          *pageToken
}

// pageToken is the decoded NextToken: the position after the last event
// returned, and a hash of the parameters it is bound to.
type pageToken struct {
	Version int    `json:"v"`
	Params  string `json:"p"`
	MS      int64  `json:"t"`
	ID      string `json:"i"`
}

// apiError is a validation error to answer with.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalid(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

var lookupAttributeKeys = map[string]bool{
	"EventId": true, "EventName": true, "ReadOnly": true, "Username": true,
	"ResourceType": true, "ResourceName": true, "EventSource": true, "AccessKeyId": true,
}

// epochMS converts epoch seconds, as the SDK sends them (millisecond
// precision), to milliseconds.
func epochMS(n json.Number) (int64, bool) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e13 {
		return 0, false
	}
	return int64(math.Round(f * 1000)), true
}

// parseLookup validates a LookupEvents request.
func parseLookup(req *lookupRequest, part partitionKey) (*lookupQuery, *apiError) {
	q := &lookupQuery{startMS: math.MinInt64, endMS: math.MaxInt64, maxResults: defaultLookupResults}
	if req.MaxResults != nil {
		if *req.MaxResults < 1 || *req.MaxResults > maxLookupResults {
			return nil, invalid("InvalidMaxResultsException",
				"Value %d for MaxResults is invalid. It must be between 1 and %d.", *req.MaxResults, maxLookupResults)
		}
		q.maxResults = *req.MaxResults
	}
	if req.StartTime != nil {
		ms, ok := epochMS(*req.StartTime)
		if !ok {
			return nil, invalid("InvalidTimeRangeException", "StartTime %s is not a valid time.", *req.StartTime)
		}
		q.startMS = ms
	}
	if req.EndTime != nil {
		ms, ok := epochMS(*req.EndTime)
		if !ok {
			return nil, invalid("InvalidTimeRangeException", "EndTime %s is not a valid time.", *req.EndTime)
		}
		q.endMS = ms
	}
	if q.startMS > q.endMS {
		return nil, invalid("InvalidTimeRangeException", "Start time must be before or equal to end time.")
	}
	if req.EventCategory != nil {
		if *req.EventCategory != "insight" {
			return nil, invalid("InvalidEventCategoryException", "Event category %q is not valid.", *req.EventCategory)
		}
		q.insight = true
	}
	if len(req.LookupAttributes) > 1 {
		return nil, invalid("InvalidLookupAttributesException", "You can specify at most one lookup attribute.")
	}
	if len(req.LookupAttributes) == 1 {
		a := req.LookupAttributes[0]
		if a.AttributeKey == nil || !lookupAttributeKeys[*a.AttributeKey] {
			return nil, invalid("InvalidLookupAttributesException", "The lookup attribute key is not valid.")
		}
		if a.AttributeValue == nil || len(*a.AttributeValue) < 1 || len(*a.AttributeValue) > 2000 {
			return nil, invalid("InvalidLookupAttributesException", "The lookup attribute value must be 1 to 2000 characters.")
		}
		q.attrKey, q.attrValue = *a.AttributeKey, *a.AttributeValue
	}
	if req.NextToken != nil {
		tok, ok := decodeToken(*req.NextToken)
		if !ok || tok.Params != q.paramsHash(part) {
			return nil, invalid("InvalidNextTokenException", "Invalid NextToken: it does not belong to this request's parameters.")
		}
		q.token = tok
	}
	return q, nil
}

// paramsHash binds a NextToken to the partition and every request
// parameter except the token itself.
func (q *lookupQuery) paramsHash(part partitionKey) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d\x00%s\x00%s\x00%t\x00%d",
		part.account, part.region, q.startMS, q.endMS, q.attrKey, q.attrValue, q.insight, q.maxResults))
	return hex.EncodeToString(sum[:12])
}

func encodeToken(t pageToken) string {
	b, err := json.Marshal(t)
	if err != nil {
		// Cannot happen for this struct; an empty token ends pagination.
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (*pageToken, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	var t pageToken
	if err := json.Unmarshal(b, &t); err != nil || t.Version != 1 {
		return nil, false
	}
	return &t, true
}

// matches reports whether an event satisfies the lookup attribute.
func (q *lookupQuery) matches(e *event) bool {
	v := q.attrValue
	switch q.attrKey {
	case "":
		return true
	case "EventId":
		return e.id == v
	case "EventName":
		return e.name == v
	case "EventSource":
		return e.source == v
	case "ReadOnly":
		return e.readOnly == v
	case "Username":
		return e.username == v
	case "AccessKeyId":
		return e.accessKeyID == v
	case "ResourceType":
		for _, r := range e.resources {
			if r.Type == v {
				return true
			}
		}
	case "ResourceName":
		for _, r := range e.resources {
			if r.Name == v {
				return true
			}
		}
	}
	return false
}

// page selects one page of events and the token of the next one ("" on the
// last page). events is sorted newest first.
func (q *lookupQuery) page(events []*event, part partitionKey) ([]*event, string) {
	// [lo, hi) is the time range: events with startMS <= ms <= endMS.
	lo := sort.Search(len(events), func(i int) bool { return events[i].ms <= q.endMS })
	hi := sort.Search(len(events), func(i int) bool { return events[i].ms < q.startMS })
	if q.token != nil {
		t := q.token
		lo = max(lo, sort.Search(len(events), func(i int) bool { return before(t.MS, t.ID, events[i]) }))
	}
	var out []*event
	i := lo
	for ; i < hi && len(out) < q.maxResults; i++ {
		if q.matches(events[i]) {
			out = append(out, events[i])
		}
	}
	if len(out) < q.maxResults {
		return out, ""
	}
	more := false
	for ; i < hi; i++ {
		if q.matches(events[i]) {
			more = true
			break
		}
	}
	if !more {
		return out, ""
	}
	last := out[len(out)-1]
	return out, encodeToken(pageToken{Version: 1, Params: q.paramsHash(part), MS: last.ms, ID: last.id})
}

// admit draws the fault decision and the latency of an admitted request.
// fault is 0, 500 or 503.
func (s *Server) admit() (fault int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faultRate > 0 && s.faultRNG.Float64() < s.faultRate {
		fault = http.StatusInternalServerError
		if s.faultRNG.IntN(2) == 1 {
			fault = http.StatusServiceUnavailable
		}
	}
	delay = s.latency
	if s.jitter > 0 {
		delay += time.Duration((s.jitterRNG.Float64()*2 - 1) * float64(s.jitter))
	}
	return fault, max(delay, 0)
}

// serveCloudTrail answers the cloudtrail service (awsJson1_1).
func (s *Server) serveCloudTrail(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	switch c.state {
	case credUnknown:
		writeJSONError(w, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	case credExpired:
		writeJSONError(w, http.StatusForbidden, "ExpiredTokenException", "The security token included in the request is expired")
		return
	}
	if r.Method != http.MethodPost {
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException", "CloudTrail is served by POST /")
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != lookupTarget {
		s.serveTrailAPI(w, r, c.id, target) // trails.go
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot read the request body")
		return
	}
	s.lookupEvents(w, r, s.partition(c.id.Account, c.id.Region), body)
}

// lookupEvents answers one LookupEvents request for a partition: throttle
// check at arrival, then latency, then fault injection, then the answer.
func (s *Server) lookupEvents(w http.ResponseWriter, r *http.Request, p *partition, body []byte) {
	p.mu.Lock()
	p.stats.Requests++
	p.mu.Unlock()
	if !p.limiter.Allow() {
		p.mu.Lock()
		p.stats.Throttled++
		p.mu.Unlock()
		writeJSONError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		return
	}
	fault, delay := s.admit()
	p.mu.Lock()
	p.inFlight++
	p.stats.MaxInFlight = max(p.stats.MaxInFlight, p.inFlight)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
			return
		}
	}
	if fault != 0 {
		p.mu.Lock()
		p.stats.Faults++
		p.mu.Unlock()
		if fault == http.StatusServiceUnavailable {
			writeJSONError(w, fault, "ServiceUnavailable", "Service is unavailable. Please try again later.")
		} else {
			writeJSONError(w, fault, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.")
		}
		return
	}
	var req lookupRequest
	if err := json.Unmarshal(body, &req); err != nil {
		p.mu.Lock()
		p.stats.Invalid++
		p.mu.Unlock()
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "cannot decode the request: "+err.Error())
		return
	}
	q, aerr := parseLookup(&req, p.key)
	if aerr != nil {
		p.mu.Lock()
		p.stats.Invalid++
		p.mu.Unlock()
		writeJSONError(w, aerr.status, aerr.code, aerr.message)
		return
	}
	p.mu.Lock()
	var events []*event
	if q.insight {
		events = p.insight.snapshot()
	} else {
		events = p.mgmt.snapshot()
	}
	p.mu.Unlock()
	out, next := q.page(events, p.key)

	size := 32 + len(next)
	for _, e := range out {
		size += len(e.wire) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"Events":[`...)
	for i, e := range out {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, e.wire...)
	}
	buf = append(buf, ']')
	if next != "" {
		buf = append(buf, `,"NextToken":`...)
		buf = strconv.AppendQuote(buf, next)
	}
	buf = append(buf, '}')

	p.mu.Lock()
	p.stats.Served++
	p.stats.EventsReturned += len(out)
	p.mu.Unlock()
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	writeRaw(w, http.StatusOK, cloudTrailJSON, buf)
}

// competitor is a goroutine consuming LookupEvents tokens of a partition.
type competitor struct {
	stop chan struct{}
	done chan struct{}
}

// SetCompetitor starts (or replaces, or with rps 0 stops) a competing caller
// that sends rps LookupEvents requests per second against the token bucket of
// an account and region, as a console user or another tool would. Its first
// request is made before SetCompetitor returns. Its requests are counted in
// Stats.CompetitorAllowed and Stats.CompetitorThrottled, not in Requests.
// Competitors stop on Close.
func (s *Server) SetCompetitor(accountID, region string, rps float64) {
	p := s.partition(accountID, region)
	var c *competitor
	if rps > 0 && !math.IsInf(rps, 0) && !math.IsNaN(rps) {
		s.mu.Lock()
		if !s.closed {
			c = &competitor{stop: make(chan struct{}), done: make(chan struct{})}
			s.wg.Add(1)
		}
		s.mu.Unlock()
	}
	p.mu.Lock()
	old := p.comp
	p.comp = c
	p.mu.Unlock()
	if old != nil {
		close(old.stop)
		<-old.done
	}
	if c == nil {
		return
	}
	p.competitorAttempt()
	go func() {
		defer s.wg.Done()
		defer close(c.done)
		p.runCompetitor(c, rps, s.closing)
	}()
}

// competitorAttempt makes one competing request: it takes a token if there
// is one.
func (p *partition) competitorAttempt() {
	ok := p.limiter.Allow()
	p.mu.Lock()
	if ok {
		p.stats.CompetitorAllowed++
	} else {
		p.stats.CompetitorThrottled++
	}
	p.mu.Unlock()
}

// runCompetitor makes rps attempts per second until stopped. The ticker is
// at most 200 Hz; fast competitors make several attempts per tick.
func (p *partition) runCompetitor(c *competitor, rps float64, closing <-chan struct{}) {
	interval := max(time.Duration(float64(time.Second)/rps), 5*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	owed := 0.0
	for {
		select {
		case <-c.stop:
			return
		case <-closing:
			return
		case now := <-t.C:
			owed += rps * now.Sub(last).Seconds()
			owed = min(owed, rps+1) // after a stall, do not flood
			last = now
			for ; owed >= 1; owed-- {
				p.competitorAttempt()
			}
		}
	}
}
