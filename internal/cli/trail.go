package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/organizations"

	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/trail"
)

// resolveTrail applies --trail to spec (nothing without it): the trail is
// read (trail.Read: GetTrail, GetEventSelectors, GetTrailStatus in its home
// region, with the caller's credentials or the read role of the trail's
// account; the organization's ID and accounts for an organization trail)
// and met with the explicit flags (trail.Apply): the destination (unless
// --out), the organization layout, the accounts (unless --accounts), the
// regions it covers, the SSE-KMS key of its files and the selection of its
// management events. Conflicts with the trail are usage errors. run, plan,
// start, verify and gaps call it after spec and the read role are final;
// other commands (reconcile) call it the same way.
func (t *tree) resolveTrail(ctx context.Context, f *rangeFlags, spec *rangeSpec) error {
	if f.trail == "" {
		return nil
	}
	t.deps.profile = spec.Profile
	cfg, err := t.deps.AWS(ctx)
	if err != nil {
		return err
	}
	ref, err := trail.ParseRef(f.trail, cfg.Region)
	if err != nil {
		return trailUsage(err)
	}
	clients, err := t.deps.Clients(ctx, spec.RoleName, spec.Rate)
	if err != nil {
		return err
	}
	access := trailAccess{clients}
	tr, err := trail.Read(ctx, access, ref, spec.OrgID)
	if err != nil {
		return trailUsage(err)
	}
	flags := trail.Flags{Accounts: spec.Accounts, Regions: spec.Regions, OrgID: spec.OrgID}
	if f.fs != nil && flagGiven(f.fs, "out") {
		d := spec.Dest
		flags.Out = &d
	}
	tg, err := trail.Apply(tr, flags)
	if err != nil {
		return trailUsage(err)
	}
	if tg.Accounts == nil {
		if tg.Accounts, err = trail.OrganizationAccounts(ctx, access, tr); err != nil {
			return trailUsage(err)
		}
	}
	spec.Trail = tg
	spec.Dest, spec.OrgID, spec.Accounts, spec.Regions = tg.Dest, tg.OrgID, tg.Accounts, tg.Regions
	if spec.KMSKeyID == "" { // --kms-key wins
		spec.KMSKeyID = tg.KMSKeyID
	}
	spec.Selection = tg.Selection.Name()
	return nil
}

// trailUsage makes a trail.InputError a usage error (exit 2).
func trailUsage(err error) error {
	var ie *trail.InputError
	if errors.As(err, &ie) {
		return usageError{err}
	}
	return err
}

// filter is the manifest filter of a region under spec's selection.
func (s rangeSpec) filter() func(region string) string {
	if s.Trail == nil {
		return nil
	}
	sel := s.Trail.Selection
	return func(region string) string { return sel.ForRegion(region).Name() }
}

// printTrailNotes prints what the trail target means, one line each.
func printTrailNotes(w io.Writer, tg *trail.Target) {
	if tg == nil {
		return
	}
	for _, n := range tg.Notes() {
		fmt.Fprintf(w, "trailfill: %s\n", n)
	}
}

// printTrailSummary ends a run's summary with what the trail logs that no
// backfill can recover.
func printTrailSummary(w io.Writer, tg *trail.Target) {
	if tg == nil {
		return
	}
	fmt.Fprintf(w, "  trail %s: archived %s\n", tg.Trail.ARN, tg.Selection.String())
	for _, u := range tg.Trail.Unrecoverable {
		fmt.Fprintf(w, "  not recovered: %s\n", u)
	}
}

// trailAccess reads trails with the command's credential registry: the
// caller's own credentials, or the read role of another account.
type trailAccess struct{ clients *awsconf.Clients }

func (a trailAccess) CallerAccount(ctx context.Context) (string, error) {
	return a.clients.CallerAccount(ctx)
}

func (a trailAccess) CloudTrail(ctx context.Context, account, region string) (trail.API, error) {
	creds, err := a.clients.Credentials(ctx, account)
	if err != nil {
		return nil, err
	}
	return cloudtrail.NewFromConfig(a.clients.Base, func(o *cloudtrail.Options) {
		o.Region = region
		o.Credentials = creds
	}), nil
}

func (a trailAccess) Organizations(ctx context.Context, account string) (trail.OrganizationsAPI, error) {
	creds, err := a.clients.Credentials(ctx, account)
	if err != nil {
		return nil, err
	}
	return organizations.NewFromConfig(a.clients.Base, func(o *organizations.Options) { o.Credentials = creds }), nil
}
