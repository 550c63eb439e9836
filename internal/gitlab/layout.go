package gitlab

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/trailfill/trailfill/internal/contract"
)

// Layout is how GitLab events are laid out in the archive. Both layouts hold
// one object per event id; they differ in keys and, for the backfill, in the
// object's shape.
type Layout string

// The layouts.
const (
	// LayoutDefault is trailfill's own layout,
	// [prefix/]GitLab/<source>/YYYY/MM/DD/<id>.json (UTC day of created_at),
	// holding each event's bytes as GitLab sent them (the streaming payload,
	// or the REST record for the backfill).
	LayoutDefault Layout = contract.GitLabLayoutDefault
	// LayoutGitLabS3 is the layout of GitLab's own Amazon S3 streaming
	// destination, [prefix/]<entity_type>/<YYYY>/<MM>/<event_type>_<id>_<time_ms>.json,
	// with YYYY/MM and time_ms taken from created_at instead of the upload
	// time, holding the streaming payload (backfilled REST records are
	// converted to it, see StreamingFromREST).
	LayoutGitLabS3 Layout = contract.GitLabLayoutGitLabS3
)

// LayoutNames is the list of layout names, for help texts.
const LayoutNames = contract.GitLabLayoutDefault + ", " + contract.GitLabLayoutGitLabS3

// ParseLayout reads a --layout value (or TRAILFILL_GITLAB_LAYOUT); empty is
// the default layout.
func ParseLayout(s string) (Layout, error) {
	switch l := Layout(strings.TrimSpace(s)); l {
	case "":
		return LayoutDefault, nil
	case LayoutDefault, LayoutGitLabS3:
		return l, nil
	default:
		return "", fmt.Errorf("unknown layout %q: use %s (GitLab's own S3 streaming layout) or %s (GitLab/<source>/YYYY/MM/DD/<id>.json)", s, LayoutGitLabS3, LayoutDefault)
	}
}

// orDefault maps the zero Layout to LayoutDefault.
func (l Layout) orDefault() Layout {
	if l == "" {
		return LayoutDefault
	}
	return l
}

// Validate checks that l is a known layout (the zero value is the default).
func (l Layout) Validate() error {
	_, err := ParseLayout(string(l))
	return err
}

func (l Layout) String() string { return string(l.orDefault()) }

// Key is the archive key of e in layout l (source names the GitLab instance
// in the default layout; the gitlab-s3 layout has no source segment: use one
// prefix per GitLab instance, since ids are per instance).
func (l Layout) Key(source string, e Event) string {
	if l.orDefault() == LayoutGitLabS3 {
		return GitLabS3Key(e)
	}
	return e.Key(source)
}

// EventWritePrefix is the folder, relative to the archive root, under which
// layout l writes events: GitLab/<source>/ for the default layout, and the
// whole archive root ("") for gitlab-s3, whose first key segment is the
// entity type. An IAM policy granting the receiver create-only writes uses
// <bucket>/[<prefix>/]<EventWritePrefix>*.
func (l Layout) EventWritePrefix(source string) string {
	if l.orDefault() == LayoutGitLabS3 {
		return ""
	}
	return EventPrefix(source)
}

// MetaOrigin is the user-metadata key (S3 x-amz-meta-trailfill) by which
// objects trailfill writes in the gitlab-s3 layout are told from GitLab's
// own, which sit beside them; its values are OriginREST (the backfill) and
// OriginStream (the receiver). The default layout holds only trailfill's
// objects and sets no metadata.
const (
	MetaOrigin   = "trailfill"
	OriginREST   = "gitlab-rest-api"
	OriginStream = "gitlab-streaming"
)

// DefaultEventType is the event type of an event that names none. It is
// GitLab's own default: Gitlab::Audit::Auditor takes
// `@context.fetch(:name, 'audit_operation')` as the event name it streams,
// and CommonAuditEventStreamable#stream_to_external_destinations defaults
// event_name to 'audit_operation'.
const DefaultEventType = "audit_operation"

// GitLabS3Key is the key GitLab's Amazon S3 streaming destination gives e
// (ee/lib/audit_events/streaming/destinations/amazon_s3_stream_destination.rb,
// #filename), with the upload time replaced by created_at (UTC) so that a
// re-run writes the same key:
//
//	<entity_type>/<YYYY>/<MM>/<event_type>_<id>_<time_ms>.json
func GitLabS3Key(e Event) string {
	t := e.CreatedAt.UTC()
	return EntityFolder(e.EntityType) + "/" + t.Format("2006/01") + "/" +
		EventTypeSegment(e.EventType) + "_" + e.ID + "_" + strconv.FormatInt(t.UnixMilli(), 10) + ".json"
}

var nonAlnumRun = regexp.MustCompile(`[^0-9A-Za-z]+`)

// EntityFolder is the first key segment GitLab's S3 destination derives from
// an event's entity_type: "instance" for Gitlab::Audit::InstanceScope,
// "user" for Namespaces::UserNamespace, "unspecified" when there is none,
// otherwise the type lower-cased with each run of characters other than
// [0-9A-Za-z] replaced by one '_' (Ruby's `downcase.gsub(/[^0-9A-Za-z]+/, '_')`;
// entity types are Ruby class names, so ASCII: for other letters Go's simple
// case mapping stands in for Ruby's full one).
func EntityFolder(entityType string) string {
	switch entityType {
	case "Gitlab::Audit::InstanceScope":
		return "instance"
	case "Namespaces::UserNamespace":
		return "user"
	case "":
		return "unspecified"
	}
	return nonAlnumRun.ReplaceAllString(strings.ToLower(entityType), "_")
}

// maxEventTypeLen bounds the event type segment of a key (S3 keys are at
// most 1,024 bytes; GitLab's event type names are short snake_case words).
const maxEventTypeLen = 200

var unsafeEventTypeRun = regexp.MustCompile(`[^0-9A-Za-z_.-]+`)

// EventTypeSegment is the <event_type> part of a gitlab-s3 key: the event
// type as GitLab names it (GitLab writes it verbatim; its event types are
// snake_case identifiers), DefaultEventType when empty. So that no payload
// can make a key with '/' or other characters a key must not hold, each run
// of characters other than [0-9A-Za-z_.-] becomes '_' and the segment is cut
// at 200 bytes; no GitLab event type is changed by this.
func EventTypeSegment(eventType string) string {
	if eventType == "" {
		return DefaultEventType
	}
	s := unsafeEventTypeRun.ReplaceAllString(eventType, "_")
	if len(s) > maxEventTypeLen {
		s = s[:maxEventTypeLen]
	}
	if s == "." || s == ".." {
		return "_"
	}
	return s
}

// NativeObject is an object of GitLab's own S3 destination found in the
// archive: one event (per-event layout) or a batch of events.
type NativeObject struct {
	Key    string
	TimeMS int64  // the upload time in the name
	ID     string // the event's id (per-event objects) or the batch's first id
	Batch  bool
}

// ParseEventObjectKey reads a per-event key of the gitlab-s3 layout,
// <entity>/<YYYY>/<MM>/<event_type>_<id>_<time_ms>.json (relative to the
// archive root), as GitLab and trailfill write them. The id is the part
// between the last two '_' (event types contain '_', ids do not).
func ParseEventObjectKey(key string) (NativeObject, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] == "" || !isYearMonth(parts[1], parts[2]) {
		return NativeObject{}, false
	}
	name, ok := strings.CutSuffix(parts[3], ".json")
	if !ok {
		return NativeObject{}, false
	}
	i := strings.LastIndexByte(name, '_')
	if i <= 0 {
		return NativeObject{}, false
	}
	ms, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil || ms < 0 {
		return NativeObject{}, false
	}
	j := strings.LastIndexByte(name[:i], '_')
	if j <= 0 { // an event type is needed before the id
		return NativeObject{}, false
	}
	id := name[j+1 : i]
	if !validID(id) {
		return NativeObject{}, false
	}
	return NativeObject{Key: key, TimeMS: ms, ID: id}, true
}

// ParseBatchObjectKey reads a key of GitLab's batched S3 layout,
// YYYY/MM/DD/<time_ms>_<first_id>.json (batch_filename in
// amazon_s3_stream_destination.rb; also accepted without ".json").
func ParseBatchObjectKey(key string) (NativeObject, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || !isYearMonth(parts[0], parts[1]) || !isDay(parts[2]) {
		return NativeObject{}, false
	}
	name := strings.TrimSuffix(parts[3], ".json")
	msPart, id, ok := strings.Cut(name, "_")
	if !ok || !validID(id) {
		return NativeObject{}, false
	}
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || ms < 0 {
		return NativeObject{}, false
	}
	return NativeObject{Key: key, TimeMS: ms, ID: id, Batch: true}, true
}

func isYearMonth(y, m string) bool {
	if len(y) != 4 || len(m) != 2 || !allDigits(y) || !allDigits(m) {
		return false
	}
	n, _ := strconv.Atoi(m)
	return n >= 1 && n <= 12
}

func isDay(d string) bool {
	if len(d) != 2 || !allDigits(d) {
		return false
	}
	n, _ := strconv.Atoi(d)
	return n >= 1 && n <= 31
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// monthStart is the first instant of t's UTC month.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// maxZoneOffset is the largest negative UTC offset of a time zone (UTC-12).
// GitLab names an S3 object's month with Date.current, in the instance's
// configured time zone, so a native object can sit in the UTC month before
// its event's when the instance runs behind UTC.
const maxZoneOffset = 12 * time.Hour

// NativeMonths are the months whose folders can hold GitLab's own copy of an
// event created at t: from the month of t-12h (an instance whose time zone is
// behind UTC names folders by its local date) to lookahead months after t's
// month (delivery after the month ended).
func NativeMonths(t time.Time, lookahead int) []time.Time {
	first := monthStart(t.Add(-maxZoneOffset))
	last := monthStart(t).AddDate(0, lookahead, 0)
	var out []time.Time
	for m := first; !m.After(last); m = m.AddDate(0, 1, 0) {
		out = append(out, m)
	}
	return out
}
