// Package trail recovers what one CloudTrail trail would have delivered. It
// reads the trail's configuration (cloudtrail:GetTrail, GetEventSelectors,
// GetTrailStatus in the trail's home region; organizations:DescribeOrganization
// and ListAccounts for an organization trail), and turns it into a Target:
// the destination bucket and key prefix, the organization-trail layout, the
// accounts and regions the trail covers, the SSE-KMS key of its files and the
// Selection of management events it logs (the engine archives only those).
// Explicit command-line values win over the trail's where they can
// (Flags); where they contradict it the answer is an *InputError. Gaps finds
// the stretches of a trail's bucket without native delivery.
package trail

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/smithy-go"

	"github.com/trailfill/trailfill/internal/archive"
)

// Trail is a trail's configuration, as CloudTrail answers it.
type Trail struct {
	ARN        string `json:"arn"`
	Name       string `json:"name"`
	HomeRegion string `json:"home_region"`
	// Account owns the trail: for an organization trail, the management
	// account (the trail ARN's account).
	Account string `json:"account"`
	Bucket  string `json:"bucket"`
	Prefix  string `json:"prefix,omitempty"`
	// KMSKeyID is the key that encrypts the trail's log files (SSE-KMS), or "".
	KMSKeyID            string `json:"kms_key_id,omitempty"`
	Organization        bool   `json:"organization"`
	OrgID               string `json:"org_id,omitempty"` // organization trails: o-...
	MultiRegion         bool   `json:"multi_region"`
	GlobalServiceEvents bool   `json:"global_service_events"`
	// Selection is the management events the trail's selectors log, before
	// the global service events rule (see Target.Selection).
	Selection Selection `json:"-"`
	// Unrecoverable describes the selectors of events LookupEvents does not
	// return (data and network activity events, Insights).
	Unrecoverable []string `json:"unrecoverable,omitempty"`
	Status        Status   `json:"status"`
	// ReadAs is the account whose credentials read the trail (the caller's,
	// or the read role's in the trail's account).
	ReadAs string `json:"read_as"`
}

// Status is what GetTrailStatus answers (zero times: not reported).
type Status struct {
	IsLogging                 bool      `json:"is_logging"`
	LatestDeliveryTime        time.Time `json:"latest_delivery_time,omitzero"`
	LatestDeliveryError       string    `json:"latest_delivery_error,omitempty"`
	LatestDeliveryAttemptTime time.Time `json:"latest_delivery_attempt_time,omitzero"`
	StartLoggingTime          time.Time `json:"start_logging_time,omitzero"`
	StopLoggingTime           time.Time `json:"stop_logging_time,omitzero"`
}

// InputError is input that names no trail, or contradicts the trail's
// configuration: the command's usage is wrong (exit 2).
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputf(format string, args ...any) error {
	return &InputError{fmt.Errorf(format, args...)}
}

// trailName is the API's trail name rule: letters, digits, '.', '_', '-';
// starting and ending with a letter or digit; 3 to 128 characters.
var trailName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{1,126})[A-Za-z0-9]$`)

// Ref is a trail named on the command line.
type Ref struct {
	Name    string // the trail name
	ARN     string // the trail ARN, when given one
	Account string // from the ARN
	Region  string // the home region: the ARN's, else the configured region
}

// ParseRef parses --trail: a trail ARN
// (arn:<partition>:cloudtrail:<region>:<account>:trail/<name>) or a name,
// which designates a trail of the caller's account whose home is region.
func ParseRef(s, region string) (Ref, error) {
	if strings.HasPrefix(s, "arn:") {
		a, err := arn.Parse(s)
		name, ok := strings.CutPrefix(a.Resource, "trail/")
		if err != nil || a.Service != "cloudtrail" || !ok || !trailName.MatchString(name) || a.Region == "" || len(a.AccountID) != 12 {
			return Ref{}, inputf("--trail %q is not a trail ARN: give arn:aws:cloudtrail:<region>:<account>:trail/<name>, or the trail's name", s)
		}
		return Ref{Name: name, ARN: s, Account: a.AccountID, Region: a.Region}, nil
	}
	if !trailName.MatchString(s) {
		return Ref{}, inputf("--trail %q is neither a trail name (3 to 128 letters, digits, '.', '_' or '-') nor a trail ARN", s)
	}
	return Ref{Name: s, Region: region}, nil
}

func (r Ref) String() string {
	if r.ARN != "" {
		return r.ARN
	}
	return r.Name + " (" + r.Region + ")"
}

// Read reads a trail's configuration in its home region. A trail named by
// its ARN in another account (an organization trail seen from a member or
// delegated administrator account) is read with the caller's credentials
// first; what they may not read (GetEventSelectors of an organization trail
// from a member account answers CloudTrailARNInvalidException) is read
// through the read role of the trail's account. An organization trail's
// organization ID is read with organizations:DescribeOrganization; orgID
// (--org-id) must agree with it, and stands in for it where that is not
// allowed.
func Read(ctx context.Context, access Access, ref Ref, orgID string) (*Trail, error) {
	caller, err := access.CallerAccount(ctx)
	if err != nil {
		return nil, err
	}
	readers := []string{caller}
	if ref.Account != "" && ref.Account != caller {
		readers = append(readers, ref.Account)
	}
	var firstErr error
	for i, acct := range readers {
		t, err := readAs(ctx, access, ref, acct)
		if err == nil {
			t.ReadAs = acct
			if err := t.findOrg(ctx, access, orgID); err != nil {
				return nil, err
			}
			return t, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if i+1 < len(readers) && deniedHere(err) {
			continue
		}
		if i > 0 {
			return nil, fmt.Errorf("%w (with the caller's own credentials: %v)", err, firstErr)
		}
		return nil, err
	}
	return nil, firstErr
}

// deniedHere reports whether an error means these credentials may not read
// the trail (another account's might).
func deniedHere(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "CloudTrailARNInvalidException", "AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "TrailNotFoundException":
		return true
	}
	return false
}

// readAs reads the trail with the credentials of acct.
func readAs(ctx context.Context, access Access, ref Ref, acct string) (*Trail, error) {
	api, err := access.CloudTrail(ctx, acct, ref.Region)
	if err != nil {
		return nil, err
	}
	name := ref.ARN
	if name == "" {
		name = ref.Name
	}
	got, err := api.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String(name)})
	if err != nil {
		var nf *cttypes.TrailNotFoundException
		if errors.As(err, &nf) && ref.ARN == "" {
			return nil, &InputError{fmt.Errorf("no trail %q in account %s, region %s: give the trail's ARN, or set AWS_REGION to its home region: %w", ref.Name, acct, ref.Region, err)}
		}
		return nil, fmt.Errorf("read trail %s with cloudtrail:GetTrail as account %s (grant cloudtrail:GetTrail, docs/deploy.md): %w", ref, acct, err)
	}
	if got.Trail == nil {
		return nil, fmt.Errorf("cloudtrail:GetTrail of %s answered no trail", ref)
	}
	ct := got.Trail
	t := &Trail{
		ARN: aws.ToString(ct.TrailARN), Name: aws.ToString(ct.Name), HomeRegion: aws.ToString(ct.HomeRegion),
		Bucket: aws.ToString(ct.S3BucketName), Prefix: strings.Trim(aws.ToString(ct.S3KeyPrefix), "/"),
		KMSKeyID: aws.ToString(ct.KmsKeyId), Organization: aws.ToBool(ct.IsOrganizationTrail),
		MultiRegion: aws.ToBool(ct.IsMultiRegionTrail), GlobalServiceEvents: aws.ToBool(ct.IncludeGlobalServiceEvents),
	}
	a, err := arn.Parse(t.ARN)
	if err != nil || t.HomeRegion == "" || t.Bucket == "" {
		return nil, fmt.Errorf("cloudtrail:GetTrail of %s answered a trail without ARN, home region or bucket (%q, %q, %q)", ref, t.ARN, t.HomeRegion, t.Bucket)
	}
	t.Account = a.AccountID
	if aws.ToBool(ct.HasInsightSelectors) {
		t.Unrecoverable = append(t.Unrecoverable, "Insights events (the trail's insight selectors): CloudTrail derives them, LookupEvents does not return them")
	}
	sel, err := api.GetEventSelectors(ctx, &cloudtrail.GetEventSelectorsInput{TrailName: aws.String(t.ARN)})
	if err != nil {
		return nil, fmt.Errorf("read the event selectors of trail %s with cloudtrail:GetEventSelectors as account %s (grant cloudtrail:GetEventSelectors; a member account of the organization may not read them: use the management or delegated administrator account, or the read role there): %w", t.ARN, acct, err)
	}
	var notes []string
	t.Selection, notes, err = fromSelectors(sel.EventSelectors, sel.AdvancedEventSelectors)
	if err != nil {
		return nil, fmt.Errorf("trail %s: %w", t.ARN, err)
	}
	t.Unrecoverable = append(t.Unrecoverable, notes...)
	st, err := api.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String(t.ARN)})
	if err != nil {
		return nil, fmt.Errorf("read the status of trail %s with cloudtrail:GetTrailStatus as account %s (grant cloudtrail:GetTrailStatus): %w", t.ARN, acct, err)
	}
	t.Status = Status{
		IsLogging:           aws.ToBool(st.IsLogging),
		LatestDeliveryTime:  aws.ToTime(st.LatestDeliveryTime).UTC(),
		LatestDeliveryError: aws.ToString(st.LatestDeliveryError),
		StartLoggingTime:    aws.ToTime(st.StartLoggingTime).UTC(),
		StopLoggingTime:     aws.ToTime(st.StopLoggingTime).UTC(),
	}
	if v := aws.ToString(st.LatestDeliveryAttemptTime); v != "" {
		// The deprecated string timestamps are ISO 8601 (2025-04-18T09:00:00Z).
		if at, err := time.Parse(time.RFC3339, v); err == nil {
			t.Status.LatestDeliveryAttemptTime = at.UTC()
		}
	}
	return t, nil
}

// findOrg sets the organization ID of an organization trail: the
// organization of the account that read the trail
// (organizations:DescribeOrganization, allowed to every account of the
// organization), which must be managed by the trail's account. orgID
// (--org-id) must agree with it; when the organization cannot be read,
// orgID is taken as given, and without it the error asks for it.
func (t *Trail) findOrg(ctx context.Context, access Access, orgID string) error {
	if !t.Organization {
		return nil
	}
	api, err := access.Organizations(ctx, t.ReadAs)
	if err != nil {
		return err
	}
	out, err := api.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
	switch {
	case err != nil && orgID != "":
		t.OrgID = orgID
		return nil
	case err != nil:
		return &InputError{fmt.Errorf("trail %s is an organization trail (files under AWSLogs/<o-id>/<account>/) and its organization ID could not be read with organizations:DescribeOrganization as account %s: pass --org-id o-..., or grant that permission: %w", t.ARN, t.ReadAs, err)}
	case out.Organization == nil || aws.ToString(out.Organization.Id) == "":
		return fmt.Errorf("organizations:DescribeOrganization answered no organization ID")
	}
	id := aws.ToString(out.Organization.Id)
	if m := aws.ToString(out.Organization.MasterAccountId); m != t.Account {
		if orgID != "" {
			t.OrgID = orgID
			return nil
		}
		return &InputError{fmt.Errorf("organization trail %s belongs to account %s, but the organization %s of account %s is managed by %s: pass --org-id with the trail's organization", t.ARN, t.Account, id, t.ReadAs, m)}
	}
	if orgID != "" && orgID != id {
		return &InputError{fmt.Errorf("--org-id %s: trail %s is the organization trail of %s: omit --org-id", orgID, t.ARN, id)}
	}
	t.OrgID = id
	return nil
}

// OrganizationAccounts lists the active accounts of an organization trail's
// organization (organizations:ListAccounts, allowed to the management
// account and delegated administrators), sorted.
func OrganizationAccounts(ctx context.Context, access Access, t *Trail) ([]string, error) {
	api, err := access.Organizations(ctx, t.ReadAs)
	if err != nil {
		return nil, err
	}
	var out []string
	p := organizations.NewListAccountsPaginator(api, &organizations.ListAccountsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, &InputError{fmt.Errorf("list the accounts of organization trail %s with organizations:ListAccounts as account %s: pass --accounts with the accounts to recover, or grant that permission: %w", t.ARN, t.ReadAs, err)}
		}
		for _, a := range page.Accounts {
			if a.Status == "" || a.Status == "ACTIVE" {
				out = append(out, aws.ToString(a.Id))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// fromSelectors is the Selection of a trail's basic or advanced event
// selectors (a trail has one kind; GetEventSelectors of a trail with neither
// answers the default selector of a new trail), and descriptions of the
// selectors of events LookupEvents cannot return.
func fromSelectors(basic []cttypes.EventSelector, advanced []cttypes.AdvancedEventSelector) (Selection, []string, error) {
	var terms []Term
	var notes []string
	if len(basic) == 0 && len(advanced) == 0 {
		return All(), nil, nil
	}
	for i, es := range basic {
		// IncludeManagementEvents defaults to true
		// (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_EventSelector.html).
		if es.IncludeManagementEvents == nil || *es.IncludeManagementEvents {
			var t Term
			switch es.ReadWriteType {
			case cttypes.ReadWriteTypeReadOnly:
				t = append(t, Cond{Field: FieldReadOnly, Op: OpEquals, Values: []string{"true"}})
			case cttypes.ReadWriteTypeWriteOnly:
				t = append(t, Cond{Field: FieldReadOnly, Op: OpEquals, Values: []string{"false"}})
			case "", cttypes.ReadWriteTypeAll:
			default:
				return Selection{}, nil, fmt.Errorf("event selector %d has ReadWriteType %q, which trailfill does not know", i+1, es.ReadWriteType)
			}
			if len(es.ExcludeManagementEventSources) > 0 {
				t = append(t, Cond{Field: FieldEventSource, Op: OpNotEquals, Values: es.ExcludeManagementEventSources})
			}
			terms = append(terms, t)
		}
		for _, dr := range es.DataResources {
			notes = append(notes, fmt.Sprintf("data events of event selector %d (%s, %s): LookupEvents returns management events only", i+1, aws.ToString(dr.Type), values(dr.Values)))
		}
	}
	for i, as := range advanced {
		label := fmt.Sprintf("advanced event selector %d", i+1)
		if n := aws.ToString(as.Name); n != "" {
			label = fmt.Sprintf("advanced event selector %q", n)
		}
		var categories []string
		var t Term
		for _, fs := range as.FieldSelectors {
			field := aws.ToString(fs.Field)
			if field == FieldEventCategory {
				categories = append(categories, fs.Equals...)
				continue
			}
			for _, c := range []Cond{
				{field, OpEquals, fs.Equals}, {field, OpNotEquals, fs.NotEquals},
				{field, OpStartsWith, fs.StartsWith}, {field, OpNotStartsWith, fs.NotStartsWith},
				{field, OpEndsWith, fs.EndsWith}, {field, OpNotEndsWith, fs.NotEndsWith},
			} {
				if c.Values != nil {
					t = append(t, c)
				}
			}
		}
		if !slices.Contains(categories, "Management") {
			notes = append(notes, fmt.Sprintf("%s (eventCategory %s%s): LookupEvents returns management events only", label, strings.Join(categories, ", "), resourceTypes(as)))
			continue
		}
		for _, c := range t {
			if !slices.Contains(knownFields, c.Field) || c.Field == FieldGlobalServiceEvent {
				return Selection{}, nil, fmt.Errorf("%s filters management events on field %q, which trailfill does not evaluate (it knows %s): recover without --trail, or ask for support of the field", label, c.Field, strings.Join(knownFields[:len(knownFields)-1], ", "))
			}
		}
		terms = append(terms, t)
	}
	if len(terms) == 0 {
		return None(), notes, nil
	}
	return NewSelection(terms...), notes, nil
}

func resourceTypes(as cttypes.AdvancedEventSelector) string {
	var types []string
	for _, fs := range as.FieldSelectors {
		if aws.ToString(fs.Field) == "resources.type" {
			types = append(types, fs.Equals...)
		}
	}
	if len(types) == 0 {
		return ""
	}
	return ", resources.type " + strings.Join(types, ", ")
}

func values(v []string) string {
	switch len(v) {
	case 0:
		return "no values"
	case 1:
		return v[0]
	}
	return fmt.Sprintf("%s and %d more", v[0], len(v)-1)
}

// Flags are the explicit command-line values that meet a trail's
// configuration. Zero values mean "not given".
type Flags struct {
	Accounts []string             // --accounts
	Regions  []string             // --regions (nil: all)
	Out      *archive.Destination // --out
	OrgID    string               // --org-id
}

// Target is what a backfill of the trail's events needs.
type Target struct {
	Trail *Trail
	// Dest is --out, else the trail's bucket and prefix.
	Dest archive.Destination
	// KMSKeyID is the trail's key when Dest is the trail's bucket: recovered
	// files are encrypted as native ones are (SSE-KMS).
	KMSKeyID string
	OrgID    string
	// Accounts are --accounts, or the trail's account; nil for an
	// organization trail without --accounts (OrganizationAccounts lists them).
	Accounts []string
	// Regions are --regions (each one covered by the trail), the home region
	// of a single-region trail, or nil: each account's enabled regions.
	Regions []string
	// Selection is the management events the trail logs, with its global
	// service events rule (Selection.ForRegion gives a region's).
	Selection Selection
}

// Apply meets the trail's configuration with the explicit flags: flags win
// where they narrow or redirect (--out, --regions of a multi-region trail,
// --accounts of an organization trail, --org-id of an organization trail);
// where they contradict the trail the answer is an *InputError.
func Apply(t *Trail, f Flags) (*Target, error) {
	tg := &Target{Trail: t, OrgID: t.OrgID}
	if t.Selection.IsNone() {
		return nil, inputf("trail %s logs no management events (%s): LookupEvents returns management events only, so there is nothing to recover", t.ARN, strings.Join(t.Unrecoverable, "; "))
	}
	tg.Selection = t.Selection
	if !t.GlobalServiceEvents {
		// IncludeGlobalServiceEvents false: the trail logs no IAM, STS,
		// CloudFront or sign-in events of the global endpoints.
		tg.Selection = tg.Selection.And(Cond{Field: FieldGlobalServiceEvent, Op: OpEquals, Values: []string{"false"}})
	}
	switch {
	case f.Out != nil:
		tg.Dest = *f.Out
	default:
		d := "s3://" + t.Bucket
		if t.Prefix != "" {
			d += "/" + t.Prefix
		}
		dest, err := archive.ParseDestination(d)
		if err != nil {
			return nil, fmt.Errorf("trail %s delivers to %s: %w", t.ARN, d, err)
		}
		tg.Dest = dest
	}
	if tg.Dest.IsS3() && tg.Dest.Bucket == t.Bucket {
		tg.KMSKeyID = t.KMSKeyID
	}
	switch {
	case !t.Organization && f.OrgID != "":
		return nil, inputf("--org-id %s: trail %s is not an organization trail, its files are under AWSLogs/<account>/: omit --org-id", f.OrgID, t.ARN)
	case t.Organization && f.OrgID != "" && t.OrgID != "" && f.OrgID != t.OrgID:
		return nil, inputf("--org-id %s: trail %s is the organization trail of %s: omit --org-id", f.OrgID, t.ARN, t.OrgID)
	case f.OrgID != "":
		tg.OrgID = f.OrgID
	}
	switch {
	case len(f.Accounts) > 0 && !t.Organization:
		for _, a := range f.Accounts {
			if a != t.Account {
				return nil, inputf("--accounts %s: trail %s logs account %s only (it is not an organization trail): omit --accounts, or name the trail of that account", a, t.ARN, t.Account)
			}
		}
		tg.Accounts = f.Accounts
	case len(f.Accounts) > 0:
		tg.Accounts = f.Accounts
	case !t.Organization:
		tg.Accounts = []string{t.Account}
	}
	if t.MultiRegion {
		tg.Regions = f.Regions
	} else {
		for _, r := range f.Regions {
			if r != t.HomeRegion {
				return nil, inputf("--regions %s: trail %s is a single-region trail of %s and logs nothing in %s: omit --regions", strings.Join(f.Regions, ","), t.ARN, t.HomeRegion, r)
			}
		}
		tg.Regions = []string{t.HomeRegion}
	}
	return tg, nil
}

// Notes are what a user should know about the target, one line each: what
// is recovered, what cannot be, and the trail's last delivery.
func (tg *Target) Notes() []string {
	t := tg.Trail
	kind := "single-region trail of " + t.HomeRegion
	if t.MultiRegion {
		kind = "multi-region trail"
	}
	if t.Organization {
		kind = "organization " + kind + " of " + tg.OrgID
	}
	notes := []string{fmt.Sprintf("trail %s: %s, delivering to s3://%s", t.ARN, kind, strings.TrimSuffix(t.Bucket+"/"+t.Prefix, "/"))}
	sel := "every management event"
	if !t.Selection.IsAll() {
		sel = "the management events its selectors log: " + t.Selection.Name()
	}
	notes = append(notes, "recovering "+sel)
	switch {
	case !t.GlobalServiceEvents:
		notes = append(notes, "global service events (IAM, STS, CloudFront, sign-in, recorded in "+GlobalEventsRegion(t.HomeRegion)+") are left out: the trail does not include them")
	case !t.MultiRegion && t.HomeRegion != GlobalEventsRegion(t.HomeRegion):
		notes = append(notes, "global service events are recorded in "+GlobalEventsRegion(t.HomeRegion)+", which this single-region trail does not cover")
	}
	for _, u := range t.Unrecoverable {
		notes = append(notes, "not recoverable: "+u)
	}
	st := t.Status
	if st.LatestDeliveryError != "" {
		notes = append(notes, fmt.Sprintf("last delivery error: %s (last attempt %s, last successful delivery %s)", st.LatestDeliveryError, Stamp(st.LatestDeliveryAttemptTime), Stamp(st.LatestDeliveryTime)))
	}
	if !st.IsLogging {
		notes = append(notes, "the trail is not logging (stopped "+Stamp(st.StopLoggingTime)+"): CloudTrail delivers nothing until it is started again")
	}
	return notes
}

// Stamp formats a time for people, RFC 3339 in UTC, or "never".
func Stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
