package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
)

var t0 = time.Date(2025, 4, 17, 15, 0, 0, 0, time.UTC)

// lookupAll pages through a query with the SDK paginator.
func lookupAll(t *testing.T, c *cloudtrail.Client, in *cloudtrail.LookupEventsInput) (events []types.Event, pages int) {
	t.Helper()
	p := cloudtrail.NewLookupEventsPaginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		events = append(events, out.Events...)
	}
	return events, pages
}

func ids(events []types.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = aws.ToString(e.EventId)
	}
	return out
}

func TestLookupEventsPaginatesNewestFirst(t *testing.T) {
	s := start(t, fast())
	type ev struct {
		id string
		at time.Time
	}
	var want []ev
	var recs []json.RawMessage
	for i := range 130 {
		// Several events share each second, to exercise the tie order.
		e := ev{id: fmt.Sprintf("ev-%03d", i), at: t0.Add(time.Duration(i/3) * time.Second)}
		want = append(want, e)
		recs = append(recs, record(e.id, e.at))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	// Two calls: the second merges into an already sorted history.
	if err := s.AddEvents(acctA, "eu-west-1", recs[:70]...); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvents(acctA, "eu-west-1", recs[70:]...); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b ev) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	var wantIDs []string
	for _, e := range want {
		wantIDs = append(wantIDs, e.id)
	}

	c := ctClient(s, acctA, "eu-west-1")
	got, pages := lookupAll(t, c, &cloudtrail.LookupEventsInput{
		StartTime: aws.Time(t0.Add(-time.Hour)),
		EndTime:   aws.Time(t0.Add(time.Hour)),
	})
	if pages != 3 {
		t.Errorf("pages = %d, want 3 (50+50+30)", pages)
	}
	if !slices.Equal(ids(got), wantIDs) {
		t.Errorf("order:\n got %v\nwant %v", ids(got), wantIDs)
	}
	for i := 1; i < len(got); i++ {
		if got[i].EventTime.After(*got[i-1].EventTime) {
			t.Fatalf("event %d is newer than event %d", i, i-1)
		}
	}

	// Smaller pages give the same sequence, and the last page has no token.
	var small []types.Event
	var token *string
	for n := 0; ; n++ {
		out, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(7), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) == 0 || len(out.Events) > 7 {
			t.Fatalf("page %d has %d events", n, len(out.Events))
		}
		small = append(small, out.Events...)
		if token = out.NextToken; token == nil {
			break
		}
	}
	if !slices.Equal(ids(small), wantIDs) {
		t.Errorf("pages of 7 give a different sequence")
	}

	st := s.Stats(acctA, "eu-west-1")
	if st.Requests != st.Served || st.Served != 3+19 || st.EventsReturned != 260 || st.Throttled+st.Faults+st.Invalid != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestLookupEventsBoundsInclusive(t *testing.T) {
	s := start(t, fast())
	start, end := t0, t0.Add(30*time.Minute-time.Second)
	err := s.AddEvents(acctA, "us-east-1",
		record("before", start.Add(-time.Second)),
		record("at-start", start),
		record("middle", start.Add(10*time.Minute)),
		record("at-end", end),
		record("after", end.Add(time.Second)),
	)
	if err != nil {
		t.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	got, _ := lookupAll(t, c, &cloudtrail.LookupEventsInput{StartTime: aws.Time(start), EndTime: aws.Time(end)})
	if want := []string{"at-end", "middle", "at-start"}; !slices.Equal(ids(got), want) {
		t.Errorf("[start, end] = %v, want %v", ids(got), want)
	}
	// Sub-second bounds: the SDK sends milliseconds.
	got, _ = lookupAll(t, c, &cloudtrail.LookupEventsInput{
		StartTime: aws.Time(start.Add(time.Millisecond)),
		EndTime:   aws.Time(end.Add(-time.Millisecond)),
	})
	if want := []string{"middle"}; !slices.Equal(ids(got), want) {
		t.Errorf("(start, end) = %v, want %v", ids(got), want)
	}
	// A single instant.
	got, _ = lookupAll(t, c, &cloudtrail.LookupEventsInput{StartTime: aws.Time(start), EndTime: aws.Time(start)})
	if want := []string{"at-start"}; !slices.Equal(ids(got), want) {
		t.Errorf("[start, start] = %v, want %v", ids(got), want)
	}
	// No bounds: everything.
	got, _ = lookupAll(t, c, &cloudtrail.LookupEventsInput{})
	if len(got) != 5 {
		t.Errorf("unbounded query returned %d events, want 5", len(got))
	}
	// An empty range costs one request.
	before := s.Stats(acctA, "us-east-1").Requests
	got, pages := lookupAll(t, c, &cloudtrail.LookupEventsInput{StartTime: aws.Time(t0.Add(time.Hour)), EndTime: aws.Time(t0.Add(2 * time.Hour))})
	if len(got) != 0 || pages != 1 || s.Stats(acctA, "us-east-1").Requests != before+1 {
		t.Errorf("empty range: %d events in %d pages", len(got), pages)
	}
}

func TestLookupEventsNextTokenBoundToParameters(t *testing.T) {
	s := start(t, fast())
	var recs []json.RawMessage
	for i := range 20 {
		recs = append(recs, record(fmt.Sprintf("e%02d", i), t0.Add(time.Duration(i)*time.Minute)))
	}
	if err := s.AddEvents(acctA, "us-east-1", recs...); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvents(acctA, "us-west-2", recs...); err != nil {
		t.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	ctx := context.Background()
	base := cloudtrail.LookupEventsInput{StartTime: aws.Time(t0), EndTime: aws.Time(t0.Add(time.Hour)), MaxResults: aws.Int32(5)}
	first, err := c.LookupEvents(ctx, &base)
	if err != nil {
		t.Fatal(err)
	}
	if first.NextToken == nil {
		t.Fatal("no NextToken after a full page")
	}
	// Same parameters: accepted, and the page continues the first one.
	same := base
	same.NextToken = first.NextToken
	second, err := c.LookupEvents(ctx, &same)
	if err != nil {
		t.Fatalf("same parameters: %v", err)
	}
	if got := ids(second.Events); got[0] != "e14" {
		t.Errorf("second page starts with %s, want e14", got[0])
	}

	changes := map[string]func(in *cloudtrail.LookupEventsInput){
		"end time":    func(in *cloudtrail.LookupEventsInput) { in.EndTime = aws.Time(t0.Add(2 * time.Hour)) },
		"start time":  func(in *cloudtrail.LookupEventsInput) { in.StartTime = aws.Time(t0.Add(time.Second)) },
		"no bounds":   func(in *cloudtrail.LookupEventsInput) { in.StartTime, in.EndTime = nil, nil },
		"max results": func(in *cloudtrail.LookupEventsInput) { in.MaxResults = aws.Int32(6) },
		"attribute": func(in *cloudtrail.LookupEventsInput) {
			in.LookupAttributes = []types.LookupAttribute{{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("DescribeInstances")}}
		},
		"category": func(in *cloudtrail.LookupEventsInput) { in.EventCategory = types.EventCategoryInsight },
		"garbage":  func(in *cloudtrail.LookupEventsInput) { in.NextToken = aws.String("not-a-token") },
	}
	for name, change := range changes {
		in := base
		in.NextToken = first.NextToken
		change(&in)
		_, err := c.LookupEvents(ctx, &in)
		var typed *types.InvalidNextTokenException
		if !errors.As(err, &typed) {
			t.Errorf("%s: err = %v, want InvalidNextTokenException", name, err)
			continue
		}
		if code, status := apiCode(t, err); code != "InvalidNextTokenException" || status != 400 {
			t.Errorf("%s: %s %d", name, code, status)
		}
	}
	// Another region (partition) with the same parameters.
	in := base
	in.NextToken = first.NextToken
	if _, err := ctClient(s, acctA, "us-west-2").LookupEvents(ctx, &in); !errors.As(err, new(*types.InvalidNextTokenException)) {
		t.Errorf("other region: err = %v, want InvalidNextTokenException", err)
	}
	if st := s.Stats(acctA, "us-east-1"); st.Invalid != len(changes) {
		t.Errorf("Invalid = %d, want %d", st.Invalid, len(changes))
	}
}

func TestLookupEventsPaginationStableWhileEventsArrive(t *testing.T) {
	s := start(t, fast())
	var recs []json.RawMessage
	for i := range 10 {
		recs = append(recs, record(fmt.Sprintf("e%02d", i), t0.Add(time.Duration(i)*time.Second)))
	}
	if err := s.AddEvents(acctA, "us-east-1", recs...); err != nil {
		t.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	in := &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(4)}
	first, err := c.LookupEvents(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	// A newer event arrives between pages; the next page must neither repeat
	// nor skip anything.
	if err := s.AddEvents(acctA, "us-east-1", record("new", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	in.NextToken = first.NextToken
	second, err := c.LookupEvents(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(second.Events), []string{"e05", "e04", "e03", "e02"}; !slices.Equal(got, want) {
		t.Errorf("second page = %v, want %v", got, want)
	}
}

func TestLookupEventsValidation(t *testing.T) {
	s := start(t, fast())
	c := ctClient(s, acctA, "us-east-1")
	ctx := context.Background()
	cases := []struct {
		name string
		in   cloudtrail.LookupEventsInput
		want func(error) bool
	}{
		{"max results 0", cloudtrail.LookupEventsInput{MaxResults: aws.Int32(0)}, isA[*types.InvalidMaxResultsException]},
		{"max results 51", cloudtrail.LookupEventsInput{MaxResults: aws.Int32(51)}, isA[*types.InvalidMaxResultsException]},
		{"start after end", cloudtrail.LookupEventsInput{StartTime: aws.Time(t0.Add(time.Second)), EndTime: aws.Time(t0)}, isA[*types.InvalidTimeRangeException]},
		{"two attributes", cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("A")},
			{AttributeKey: types.LookupAttributeKeyUsername, AttributeValue: aws.String("B")},
		}}, isA[*types.InvalidLookupAttributesException]},
		{"bad key", cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: "Region", AttributeValue: aws.String("A")},
		}}, isA[*types.InvalidLookupAttributesException]},
		{"bad category", cloudtrail.LookupEventsInput{EventCategory: "management"}, isA[*types.InvalidEventCategoryException]},
	}
	for _, tc := range cases {
		_, err := c.LookupEvents(ctx, &tc.in)
		if !tc.want(err) {
			t.Errorf("%s: err = %v", tc.name, err)
		} else if _, status := apiCode(t, err); status != 400 {
			t.Errorf("%s: status %d", tc.name, status)
		}
	}
	for _, n := range []int32{1, 50} {
		if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(n)}); err != nil {
			t.Errorf("MaxResults %d: %v", n, err)
		}
	}
}

func TestLookupEventsDatasetFieldsAndAttributes(t *testing.T) {
	recs := dataset(t)
	s := start(t, fast())
	if err := s.AddEvents(acctA, "us-east-1", recs...); err != nil {
		t.Fatal(err)
	}
	byID := map[string]json.RawMessage{}
	type fields struct {
		EventID, EventName, EventSource, EventTime string
		ReadOnly                                   *bool
		UserIdentity                               struct{ Type, UserName, AccessKeyID, ARN, InvokedBy string }
		Resources                                  []struct{ Type, ARN string }
	}
	parsed := map[string]fields{}
	for _, r := range recs {
		var f fields
		if err := json.Unmarshal(r, &f); err != nil {
			t.Fatal(err)
		}
		byID[f.EventID] = r
		parsed[f.EventID] = f
	}
	c := ctClient(s, acctA, "us-east-1")
	got, _ := lookupAll(t, c, &cloudtrail.LookupEventsInput{})
	if len(got) != len(recs) {
		t.Fatalf("got %d events, want %d", len(got), len(recs))
	}
	for _, e := range got {
		id := aws.ToString(e.EventId)
		raw, ok := byID[id]
		if !ok {
			t.Fatalf("unknown event %s", id)
		}
		// The record, byte for byte.
		if aws.ToString(e.CloudTrailEvent) != string(raw) {
			t.Fatalf("event %s: CloudTrailEvent differs from the record", id)
		}
		f := parsed[id]
		if aws.ToString(e.EventName) != f.EventName || aws.ToString(e.EventSource) != f.EventSource {
			t.Errorf("event %s: name/source %s %s", id, aws.ToString(e.EventName), aws.ToString(e.EventSource))
		}
		if e.EventTime.UTC().Format(time.RFC3339) != f.EventTime {
			t.Errorf("event %s: time %v, want %s", id, e.EventTime, f.EventTime)
		}
		if f.ReadOnly != nil && aws.ToString(e.ReadOnly) != fmt.Sprint(*f.ReadOnly) {
			t.Errorf("event %s: ReadOnly %q", id, aws.ToString(e.ReadOnly))
		}
		if aws.ToString(e.AccessKeyId) != f.UserIdentity.AccessKeyID {
			t.Errorf("event %s: AccessKeyId %q", id, aws.ToString(e.AccessKeyId))
		}
		if f.UserIdentity.UserName != "" && aws.ToString(e.Username) != f.UserIdentity.UserName {
			t.Errorf("event %s: Username %q", id, aws.ToString(e.Username))
		}
		if len(e.Resources) != len(f.Resources) {
			t.Errorf("event %s: %d resources, want %d", id, len(e.Resources), len(f.Resources))
		}
	}

	// Each attribute selects exactly the records a brute-force filter does.
	pick := func(pred func(f fields) bool) int {
		n := 0
		for _, f := range parsed {
			if pred(f) {
				n++
			}
		}
		return n
	}
	var someID, someKey, someUser, someRType, someRName string
	for id, f := range parsed {
		someID = id
		if f.UserIdentity.AccessKeyID != "" && f.UserIdentity.UserName != "" {
			someKey, someUser = f.UserIdentity.AccessKeyID, f.UserIdentity.UserName
		}
		if len(f.Resources) > 0 {
			someRType, someRName = f.Resources[0].Type, f.Resources[0].ARN
		}
		if someKey != "" && someRType != "" {
			break
		}
	}
	someName, someSource := parsed[someID].EventName, parsed[someID].EventSource
	hasRes := func(f fields, match func(typ, arn string) bool) bool {
		for _, r := range f.Resources {
			if match(r.Type, r.ARN) {
				return true
			}
		}
		return false
	}
	attrs := []struct {
		key   types.LookupAttributeKey
		value string
		pred  func(f fields) bool
	}{
		{types.LookupAttributeKeyEventId, someID, func(f fields) bool { return f.EventID == someID }},
		{types.LookupAttributeKeyEventName, someName, func(f fields) bool { return f.EventName == someName }},
		{types.LookupAttributeKeyEventSource, someSource, func(f fields) bool { return f.EventSource == someSource }},
		{types.LookupAttributeKeyReadOnly, "false", func(f fields) bool { return f.ReadOnly != nil && !*f.ReadOnly }},
		{types.LookupAttributeKeyUsername, someUser, func(f fields) bool { return f.UserIdentity.UserName == someUser }},
		{types.LookupAttributeKeyAccessKeyId, someKey, func(f fields) bool { return f.UserIdentity.AccessKeyID == someKey }},
		{types.LookupAttributeKeyResourceType, someRType, func(f fields) bool {
			return hasRes(f, func(typ, _ string) bool { return typ == someRType })
		}},
		{types.LookupAttributeKeyResourceName, someRName, func(f fields) bool {
			return hasRes(f, func(_, arn string) bool { return arn == someRName })
		}},
	}
	for _, a := range attrs {
		got, _ := lookupAll(t, c, &cloudtrail.LookupEventsInput{
			LookupAttributes: []types.LookupAttribute{{AttributeKey: a.key, AttributeValue: aws.String(a.value)}},
		})
		want := pick(a.pred)
		if len(got) != want || want == 0 {
			t.Errorf("%s=%s: %d events, want %d (> 0)", a.key, a.value, len(got), want)
		}
	}
}

func TestAddEventsRules(t *testing.T) {
	s := start(t, fast())
	if err := s.AddEvents(acctA, "us-east-1", record("a", t0)); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		recs []json.RawMessage
	}{
		{"duplicate", []json.RawMessage{record("b", t0), record("a", t0)}},
		{"repeated", []json.RawMessage{record("c", t0), record("c", t0)}},
		{"no eventTime", []json.RawMessage{record("d", t0), json.RawMessage(`{"eventID":"x"}`)}},
		{"no eventID", []json.RawMessage{json.RawMessage(`{"eventTime":"2025-01-01T00:00:00Z"}`)}},
		{"bad eventTime", []json.RawMessage{json.RawMessage(`{"eventID":"y","eventTime":"yesterday"}`)}},
		{"not json", []json.RawMessage{json.RawMessage(`{"eventID":`)}},
	}
	for _, b := range bad {
		if err := s.AddEvents(acctA, "us-east-1", b.recs...); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
	if n := s.EventCount(acctA, "us-east-1"); n != 1 {
		t.Errorf("failed calls added events: %d stored, want 1", n)
	}

	// Data events never reach event history; insights only by category.
	data := json.RawMessage(`{"eventID":"data-1","eventTime":"2025-04-17T15:00:00Z","eventName":"GetObject","managementEvent":false,"eventCategory":"Data"}`)
	insight := json.RawMessage(`{"eventID":"insight-1","eventTime":"2025-04-17T15:00:00Z","eventName":"DescribeInstances","eventCategory":"Insight","eventType":"AwsCloudTrailInsight"}`)
	if err := s.AddEvents(acctA, "us-east-1", data, insight); err != nil {
		t.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	got, _ := lookupAll(t, c, &cloudtrail.LookupEventsInput{})
	if want := []string{"a"}; !slices.Equal(ids(got), want) {
		t.Errorf("management events = %v, want %v", ids(got), want)
	}
	got, _ = lookupAll(t, c, &cloudtrail.LookupEventsInput{EventCategory: types.EventCategoryInsight})
	if want := []string{"insight-1"}; !slices.Equal(ids(got), want) {
		t.Errorf("insight events = %v, want %v", ids(got), want)
	}
}

func TestLookupEventsThrottling(t *testing.T) {
	// A slow refill, so that no token comes back while the test runs.
	s := start(t, Config{Rate: 0.05, Burst: 2})
	c := ctClient(s, acctA, "us-east-1")
	ok, throttled := 0, 0
	for range 6 {
		_, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
		if err == nil {
			ok++
			continue
		}
		code, status := apiCode(t, err)
		if code != "ThrottlingException" || status != 400 || !strings.Contains(err.Error(), "Rate exceeded") {
			t.Fatalf("err = %v (%s %d), want ThrottlingException 400", err, code, status)
		}
		throttled++
	}
	if ok != 2 || throttled != 4 {
		t.Errorf("ok %d throttled %d, want 2 and 4", ok, throttled)
	}
	st := s.Stats(acctA, "us-east-1")
	if st.Requests != 6 || st.Throttled != 4 || st.Served != 2 {
		t.Errorf("stats = %+v", st)
	}
	// Other partitions have their own bucket.
	for _, p := range []struct{ acct, region string }{{acctA, "us-west-2"}, {acctB, "us-east-1"}} {
		if _, err := ctClient(s, p.acct, p.region).LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
			t.Errorf("%s/%s: %v", p.acct, p.region, err)
		}
	}
	// SetRate lifts the limit of existing partitions.
	s.SetRate(math.Inf(1), 1)
	if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
		t.Errorf("after SetRate: %v", err)
	}
}

func TestCompetitorConsumesQuota(t *testing.T) {
	s := start(t, Config{Rate: 0.05, Burst: 2})
	s.SetCompetitor(acctA, "us-east-1", 100)
	if st := s.Stats(acctA, "us-east-1"); st.CompetitorAllowed != 1 {
		t.Fatalf("first competing request not made synchronously: %+v", st)
	}
	c := ctClient(s, acctA, "us-east-1")
	ok := 0
	for range 5 {
		if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err == nil {
			ok++
		} else if code, _ := apiCode(t, err); code != "ThrottlingException" {
			t.Fatalf("err = %v", err)
		}
	}
	s.SetCompetitor(acctA, "us-east-1", 0) // stops and waits for the goroutine
	st := s.Stats(acctA, "us-east-1")
	if ok > 1 {
		t.Errorf("%d requests served with a competitor holding the bucket, want at most 1", ok)
	}
	if st.CompetitorAllowed+st.Served > 2 {
		t.Errorf("more tokens spent than the burst: %+v", st)
	}
	// Stopped: the counters no longer move.
	_, _ = c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
	if st2 := s.Stats(acctA, "us-east-1"); st2.CompetitorAllowed != st.CompetitorAllowed || st2.CompetitorThrottled != st.CompetitorThrottled {
		t.Errorf("competitor still running: %+v then %+v", st, st2)
	}

	// Without a competitor the same bucket serves the burst.
	ok = 0
	cb := ctClient(s, acctB, "us-east-1")
	for range 5 {
		if _, err := cb.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err == nil {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("no competitor: %d served, want 2", ok)
	}
}

// faultRun makes n sequential requests and returns each outcome.
func faultRun(t *testing.T, seed int64, n int) (outcomes []string, s *Server) {
	s = start(t, Config{Rate: math.Inf(1), FaultRate: 0.3, Seed: seed})
	if err := s.AddEvents(acctA, "us-east-1", record("a", t0)); err != nil {
		t.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	for range n {
		_, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
		if err == nil {
			outcomes = append(outcomes, "ok")
			continue
		}
		code, status := apiCode(t, err)
		outcomes = append(outcomes, fmt.Sprintf("%s/%d", code, status))
	}
	return outcomes, s
}

func TestFaultInjection(t *testing.T) {
	const n = 300
	first, s := faultRun(t, 42, n)
	counts := map[string]int{}
	for _, o := range first {
		counts[o]++
	}
	for o := range counts {
		if o != "ok" && o != "InternalFailure/500" && o != "ServiceUnavailable/503" {
			t.Errorf("unexpected outcome %s", o)
		}
	}
	faults := counts["InternalFailure/500"] + counts["ServiceUnavailable/503"]
	st := s.Stats(acctA, "us-east-1")
	if st.Faults != faults || st.Served != counts["ok"] || st.Requests != n || st.EventsReturned != counts["ok"] {
		t.Errorf("stats %+v disagree with outcomes %v", st, counts)
	}
	if faults < 60 || faults > 120 {
		t.Errorf("%d faults in %d requests at rate 0.3", faults, n)
	}
	if counts["InternalFailure/500"] == 0 || counts["ServiceUnavailable/503"] == 0 {
		t.Errorf("both 500 and 503 expected: %v", counts)
	}
	// Same seed, same sequence; another seed, another one.
	again, _ := faultRun(t, 42, n)
	if !slices.Equal(first, again) {
		t.Errorf("same seed gave a different fault sequence")
	}
	other, _ := faultRun(t, 43, n)
	if slices.Equal(first, other) {
		t.Errorf("different seeds gave the same fault sequence")
	}
	// SetFaultRate(0) turns faults off.
	s.SetFaultRate(0)
	c := ctClient(s, acctA, "us-east-1")
	for range 20 {
		if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
			t.Fatalf("fault after SetFaultRate(0): %v", err)
		}
	}
}

func TestFaultsAreRetriedBySDK(t *testing.T) {
	s := start(t, Config{Rate: math.Inf(1), FaultRate: 0.5, Seed: 1})
	c := cloudtrail.NewFromConfig(awsConfig(s, acctA, "us-east-1"), func(o *cloudtrail.Options) {
		o.Retryer = retryNoBackoff(10)
	})
	for range 10 {
		if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
			t.Fatalf("with retries: %v", err)
		}
	}
	if st := s.Stats(acctA, "us-east-1"); st.Faults == 0 || st.Served != 10 || st.Requests != st.Faults+10 {
		t.Errorf("stats = %+v", st)
	}
}

func TestLatency(t *testing.T) {
	s := start(t, Config{Rate: math.Inf(1), Latency: 300 * time.Millisecond})
	c := ctClient(s, acctA, "us-east-1")
	begin := time.Now()
	if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Errorf("answer after %v, want >= 300ms", d)
	}
	// Concurrent requests overlap.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := s.Stats(acctA, "us-east-1"); st.MaxInFlight < 2 || st.Served != 5 {
		t.Errorf("stats = %+v, want overlapping requests", st)
	}

	// Throttled requests are answered at once, without the latency.
	s.SetRate(0.05, 1)
	cb := ctClient(s, acctB, "us-east-1")
	s.SetLatency(0, 0)
	if _, err := cb.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{}); err != nil {
		t.Fatal(err) // takes the only token
	}
	s.SetLatency(5*time.Second, 0)
	begin = time.Now()
	_, err := cb.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
	if code, _ := apiCode(t, err); code != "ThrottlingException" {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("throttled answer took %v", d)
	}
}

func TestLookupEventsLargePartition(t *testing.T) {
	s := start(t, fast())
	n := 100_000
	if raceEnabled {
		n = 60_000 // the race detector makes decoding records ~8x slower
	}
	recs := make([]json.RawMessage, n)
	for i := range n {
		recs[i] = record(fmt.Sprintf("ev-%06d", i), t0.Add(time.Duration(i)*time.Second))
	}
	if err := s.AddEvents(acctA, "us-east-1", recs...); err != nil {
		t.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	// A window in the middle: 30 minutes, 1800 events, 36 pages of 50.
	from := t0.Add(50_000 * time.Second)
	if got := s.EventCount(acctA, "us-east-1"); got != n {
		t.Fatalf("EventCount = %d, want %d", got, n)
	}
	got, pages := lookupAll(t, c, &cloudtrail.LookupEventsInput{StartTime: aws.Time(from), EndTime: aws.Time(from.Add(30*time.Minute - time.Second))})
	if len(got) != 1800 || pages != 36 {
		t.Fatalf("%d events in %d pages, want 1800 in 36", len(got), pages)
	}
	if ids(got)[0] != "ev-051799" || ids(got)[1799] != "ev-050000" {
		t.Errorf("window edges %s .. %s", ids(got)[0], ids(got)[1799])
	}
}

func BenchmarkLookupEventsPage(b *testing.B) {
	s, err := Start(fast())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 200_000
	recs := make([]json.RawMessage, n)
	for i := range n {
		recs[i] = record(fmt.Sprintf("ev-%06d", i), t0.Add(time.Duration(i)*time.Second))
	}
	if err := s.AddEvents(acctA, "us-east-1", recs...); err != nil {
		b.Fatal(err)
	}
	c := ctClient(s, acctA, "us-east-1")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		from := t0.Add(time.Duration(i*7919%n) * time.Second)
		if _, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{StartTime: aws.Time(from), EndTime: aws.Time(from.Add(time.Hour))}); err != nil {
			b.Fatal(err)
		}
	}
}
