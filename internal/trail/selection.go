package trail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/trailfill/trailfill/internal/engine"
)

// Selection is the set of management events a trail logs, as a canonical
// disjunction of conjunctions: an event is logged when any Term matches it
// ("if the event matches any event selector, the trail processes and logs
// the event", API_PutEventSelectors), and a Term matches when all of its
// conditions hold (the field selectors of one advanced selector are all
// required). A Selection is a value; the zero value logs nothing.
//
// Its Name is the canonical text of the selection, recorded in manifests and
// the coverage index (engine.Selector): every management event is "", no
// management event is "none", anything else is terms joined by " || ", each
// of conditions joined by " && ", each condition `field operator ["v",...]`
// with the values sorted and JSON-quoted, e.g.
//
//	readOnly equals ["false"] && eventSource notEquals ["kms.amazonaws.com","rdsdata.amazonaws.com"]
//
// Two configurations that select alike through the same conditions get the
// same name whatever the order of their selectors, fields and values.
// ParseSelection reads a name back: the execution input carries it to every
// invocation.
type Selection struct {
	terms []Term
}

// Term is one conjunction of conditions, sorted by field and operator.
type Term []Cond

// Cond is one condition on a field of the event record.
type Cond struct {
	Field  string
	Op     Op
	Values []string // sorted, distinct
}

// Op is an advanced field selector operator, named as in the name.
type Op string

// Operators of AdvancedFieldSelector
// (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_AdvancedFieldSelector.html).
// The positive ones hold when any value matches, the negative ones when none
// does.
const (
	OpEquals        Op = "equals"
	OpNotEquals     Op = "notEquals"
	OpStartsWith    Op = "startsWith"
	OpNotStartsWith Op = "notStartsWith"
	OpEndsWith      Op = "endsWith"
	OpNotEndsWith   Op = "notEndsWith"
)

var opOrder = []Op{OpEquals, OpNotEquals, OpStartsWith, OpNotStartsWith, OpEndsWith, OpNotEndsWith}

// Fields a Selection can test. A trail's management-event selectors may use
// eventCategory, eventSource and readOnly (API_AdvancedEventSelector); event
// data stores add eventName, eventType, sessionCredentialFromConsole and
// userIdentity.arn, which are evaluated too. FieldGlobalServiceEvent is
// trailfill's own: whether the record is a global service event (see
// IsGlobalServiceEvent), for trails with IncludeGlobalServiceEvents false.
const (
	FieldEventCategory           = "eventCategory"
	FieldReadOnly                = "readOnly"
	FieldEventSource             = "eventSource"
	FieldEventName               = "eventName"
	FieldEventType               = "eventType"
	FieldSessionCredentialConsol = "sessionCredentialFromConsole"
	FieldUserIdentityARN         = "userIdentity.arn"
	FieldGlobalServiceEvent      = "globalServiceEvent"
)

var knownFields = []string{FieldEventCategory, FieldEventName, FieldEventSource, FieldEventType, FieldGlobalServiceEvent,
	FieldReadOnly, FieldSessionCredentialConsol, FieldUserIdentityARN}

// NameAll and NameNone are the names of every and of no management event.
const (
	NameAll  = ""
	NameNone = "none"
)

// All selects every management event.
func All() Selection { return Selection{terms: []Term{{}}} }

// None selects nothing.
func None() Selection { return Selection{} }

// NewSelection returns the canonical selection of terms.
func NewSelection(terms ...Term) Selection {
	var out []Term
	for _, t := range terms {
		out = append(out, canonTerm(t))
	}
	return canon(out)
}

// canonTerm sorts a term's conditions and values and merges conditions on
// the same field and operator where that keeps the meaning (both must hold):
// equals keeps the values common to both, a negative operator the union.
// Other repeated conditions stay, sorted by their values.
func canonTerm(t Term) Term {
	var out Term
	for _, c := range t {
		vals := slices.Clone(c.Values)
		slices.Sort(vals)
		vals = slices.Compact(vals)
		merged := false
		for i, o := range out {
			if o.Field != c.Field || o.Op != c.Op {
				continue
			}
			switch {
			case negative(c.Op):
				u := slices.Concat(o.Values, vals)
				slices.Sort(u)
				out[i].Values = slices.Compact(u)
				merged = true
			case c.Op == OpEquals:
				var both []string
				for _, v := range o.Values {
					if slices.Contains(vals, v) {
						both = append(both, v)
					}
				}
				out[i].Values = both
				merged = true
			}
		}
		if !merged {
			out = append(out, Cond{Field: c.Field, Op: c.Op, Values: vals})
		}
	}
	slices.SortFunc(out, func(a, b Cond) int {
		if a.Field != b.Field {
			return strings.Compare(a.Field, b.Field)
		}
		if a.Op != b.Op {
			return slices.Index(opOrder, a.Op) - slices.Index(opOrder, b.Op)
		}
		return strings.Compare(strings.Join(a.Values, "\x00"), strings.Join(b.Values, "\x00"))
	})
	return slices.CompactFunc(out, func(a, b Cond) bool {
		return a.Field == b.Field && a.Op == b.Op && slices.Equal(a.Values, b.Values)
	})
}

// canon sorts and deduplicates terms; a term without conditions makes the
// selection All, a term with a positive condition without values can match
// nothing and is dropped.
func canon(terms []Term) Selection {
	var keep []Term
	for _, t := range terms {
		if len(t) == 0 {
			return All()
		}
		if !impossible(t) {
			keep = append(keep, t)
		}
	}
	slices.SortFunc(keep, func(a, b Term) int { return strings.Compare(termText(a), termText(b)) })
	keep = slices.CompactFunc(keep, func(a, b Term) bool { return termText(a) == termText(b) })
	return Selection{terms: keep}
}

func impossible(t Term) bool {
	for _, c := range t {
		if !negative(c.Op) && len(c.Values) == 0 {
			return true
		}
	}
	return false
}

func negative(op Op) bool {
	return op == OpNotEquals || op == OpNotStartsWith || op == OpNotEndsWith
}

// Terms returns the selection's terms (shared; do not modify).
func (s Selection) Terms() []Term { return s.terms }

// IsAll reports whether every management event is selected.
func (s Selection) IsAll() bool { return len(s.terms) == 1 && len(s.terms[0]) == 0 }

// IsNone reports whether no management event is selected.
func (s Selection) IsNone() bool { return len(s.terms) == 0 }

// Name is the canonical text of the selection (see Selection).
func (s Selection) Name() string {
	switch {
	case s.IsAll():
		return NameAll
	case s.IsNone():
		return NameNone
	}
	parts := make([]string, len(s.terms))
	for i, t := range s.terms {
		parts[i] = termText(t)
	}
	return strings.Join(parts, " || ")
}

func (s Selection) String() string {
	if s.IsAll() {
		return "every management event"
	}
	return s.Name()
}

func termText(t Term) string {
	parts := make([]string, len(t))
	for i, c := range t {
		vals := c.Values
		if vals == nil {
			vals = []string{}
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(vals) // a []string always encodes
		parts[i] = c.Field + " " + string(c.Op) + " " + strings.TrimSuffix(b.String(), "\n")
	}
	return strings.Join(parts, " && ")
}

// ParseSelection reads a Selection's Name back. Only canonical names are
// accepted, so that a name read from an execution input means one thing.
func ParseSelection(name string) (Selection, error) {
	switch name {
	case NameAll:
		return All(), nil
	case NameNone:
		return None(), nil
	}
	fail := func(format string, args ...any) (Selection, error) {
		return Selection{}, fmt.Errorf("event selection %q: %s", name, fmt.Sprintf(format, args...))
	}
	var terms []Term
	var cur Term
	rest := name
	for {
		field, after, ok := strings.Cut(rest, " ")
		if !ok || !slices.Contains(knownFields, field) {
			return fail("expected a field (%s) at %q", strings.Join(knownFields, ", "), rest)
		}
		op, after, ok := strings.Cut(after, " ")
		if !ok || !slices.Contains(opOrder, Op(op)) {
			return fail("expected an operator after %s", field)
		}
		dec := json.NewDecoder(strings.NewReader(after))
		var vals []string
		if err := dec.Decode(&vals); err != nil {
			return fail("the values of %s %s are not a JSON list of strings: %v", field, op, err)
		}
		cur = append(cur, Cond{Field: field, Op: Op(op), Values: vals})
		rest = after[dec.InputOffset():]
		switch {
		case rest == "":
			terms = append(terms, cur)
			s := NewSelection(terms...)
			if s.Name() != name {
				return fail("not in canonical form (%q)", s.Name())
			}
			return s, nil
		case strings.HasPrefix(rest, " && "):
			rest = rest[len(" && "):]
		case strings.HasPrefix(rest, " || "):
			terms = append(terms, cur)
			cur = nil
			rest = rest[len(" || "):]
		default:
			return fail("expected && or || at %q", rest)
		}
	}
}

// And returns the selection of the events s selects that also meet c.
func (s Selection) And(c Cond) Selection {
	terms := make([]Term, len(s.terms))
	for i, t := range s.terms {
		terms[i] = append(slices.Clone(t), c)
	}
	return NewSelection(terms...)
}

// Without returns s without the conditions on field, as when they can only
// hold (the global service event condition outside the region that records
// global service events).
func (s Selection) Without(field string) Selection {
	terms := make([]Term, len(s.terms))
	for i, t := range s.terms {
		terms[i] = slices.DeleteFunc(slices.Clone(t), func(c Cond) bool { return c.Field == field })
	}
	return NewSelection(terms...)
}

// ForRegion is the selection of one region's events: conditions on
// FieldGlobalServiceEvent are dropped outside the region where global
// service events are recorded (they hold for every event there), so that
// such a region's name is the one of the same selection without them.
func (s Selection) ForRegion(region string) Selection {
	if region == GlobalEventsRegion(region) {
		return s
	}
	return s.Without(FieldGlobalServiceEvent)
}

// Selector returns s as the engine's Selector of a partition of region, or
// nil when it selects every management event there.
func (s Selection) Selector(region string) engine.Selector {
	r := s.ForRegion(region)
	if r.IsAll() {
		return nil
	}
	return r
}

// record is what a Selection reads of an event record.
type record struct {
	EventCategory                string          `json:"eventCategory"`
	ReadOnly                     json.RawMessage `json:"readOnly"`
	EventSource                  string          `json:"eventSource"`
	EventName                    string          `json:"eventName"`
	EventType                    string          `json:"eventType"`
	AWSRegion                    string          `json:"awsRegion"`
	SessionCredentialFromConsole json.RawMessage `json:"sessionCredentialFromConsole"`
	UserIdentity                 struct {
		ARN string `json:"arn"`
	} `json:"userIdentity"`
	TLSDetails struct {
		ClientProvidedHostHeader string `json:"clientProvidedHostHeader"`
	} `json:"tlsDetails"`
}

// scalar is a JSON scalar as text: a string's value, true/false as is, ""
// when absent or null.
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func (r *record) field(name string) string {
	switch name {
	case FieldEventCategory:
		// LookupEvents returns management events only; records written before
		// eventCategory existed lack it.
		return cmpOr(r.EventCategory, "Management")
	case FieldReadOnly:
		return scalar(r.ReadOnly)
	case FieldEventSource:
		return r.EventSource
	case FieldEventName:
		return r.EventName
	case FieldEventType:
		return r.EventType
	case FieldSessionCredentialConsol:
		return scalar(r.SessionCredentialFromConsole)
	case FieldUserIdentityARN:
		return r.UserIdentity.ARN
	case FieldGlobalServiceEvent:
		if isGlobal(r) {
			return "true"
		}
		return "false"
	}
	return ""
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Keep reports whether the selection holds the event (its CloudTrailEvent
// JSON). A field the record lacks is the empty string: it matches no
// positive condition and every negative one (an event without readOnly is
// neither a read nor a write event).
func (s Selection) Keep(rec []byte) (bool, error) {
	if s.IsAll() {
		return true, nil
	}
	if s.IsNone() {
		return false, nil
	}
	var r record
	if err := json.Unmarshal(rec, &r); err != nil {
		return false, fmt.Errorf("read the event record to apply the trail's event selectors: %w", err)
	}
	for _, t := range s.terms {
		if r.matches(t) {
			return true, nil
		}
	}
	return false, nil
}

func (r *record) matches(t Term) bool {
	for _, c := range t {
		if !holds(c, r.field(c.Field)) {
			return false
		}
	}
	return true
}

func holds(c Cond, v string) bool {
	var test func(string) bool
	switch c.Op {
	case OpEquals, OpNotEquals:
		test = func(x string) bool { return v == x }
	case OpStartsWith, OpNotStartsWith:
		test = func(x string) bool { return strings.HasPrefix(v, x) }
	case OpEndsWith, OpNotEndsWith:
		test = func(x string) bool { return strings.HasSuffix(v, x) }
	default:
		return false
	}
	found := slices.ContainsFunc(c.Values, test)
	if negative(c.Op) {
		return !found
	}
	return found
}

// globalSources are the global services of CloudTrail: "four services that
// are considered to be global services in CloudTrail: Amazon CloudFront, AWS
// Identity and Access Management (IAM), AWS Management Console SignIn, and
// AWS Security Token Service (STS)" whose events, since November 22, 2021,
// are recorded in US East (N. Virginia) and shown by LookupEvents there only
// (AWS's notice of the change; CloudTrail User Guide, "Global service
// events").
var globalSources = []string{"cloudfront.amazonaws.com", "iam.amazonaws.com", "signin.amazonaws.com", "sts.amazonaws.com"}

// GlobalEventsRegion is the region where the global service events of
// region's partition are recorded: us-east-1 in aws, cn-north-1 in aws-cn,
// us-gov-west-1 in aws-us-gov.
func GlobalEventsRegion(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "cn-north-1"
	case strings.HasPrefix(region, "us-gov-"):
		return "us-gov-west-1"
	}
	return "us-east-1"
}

// IsGlobalServiceEvent reports whether an event record is a global service
// event: an event of CloudFront, IAM, sign-in or STS recorded in the
// partition's global events region. STS calls to a Regional endpoint are
// Regional events ("When you use an AWS STS Region-specific endpoint, the
// trail in that Region delivers only the AWS STS events that occur in that
// Region", CloudTrail User Guide): a record whose
// tlsDetails.clientProvidedHostHeader names another host than
// sts.amazonaws.com is one; a record without the header (calls by AWS
// services) counts as global, STS's default.
func IsGlobalServiceEvent(rec []byte) (bool, error) {
	var r record
	if err := json.Unmarshal(rec, &r); err != nil {
		return false, fmt.Errorf("read the event record: %w", err)
	}
	return isGlobal(&r), nil
}

func isGlobal(r *record) bool {
	if r.AWSRegion == "" || r.AWSRegion != GlobalEventsRegion(r.AWSRegion) || !slices.Contains(globalSources, r.EventSource) {
		return false
	}
	if r.EventSource == "sts.amazonaws.com" {
		h := r.TLSDetails.ClientProvidedHostHeader
		return h == "" || h == "sts.amazonaws.com"
	}
	return true
}
