package cli

import (
	"flag"
	"fmt"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/validate"
)

// rangeFlags are the flags shared by run, plan, start and verify.
type rangeFlags struct {
	start, end, accounts, regions string
	roleName, out, orgID, profile string
	noLookback                    bool
	windowMinutes                 int
	rate                          float64
}

func (f *rangeFlags) register(fs *flag.FlagSet, outDefault string) {
	fs.StringVar(&f.start, "start", "", "start of the range, RFC 3339 (inclusive)")
	fs.StringVar(&f.end, "end", "", "end of the range, RFC 3339 (exclusive)")
	fs.StringVar(&f.accounts, "accounts", "", "comma-separated 12-digit account IDs (default: the caller's account, no role assumed)")
	fs.StringVar(&f.regions, "regions", "all", "comma-separated regions, or all (each account's enabled regions; an enabled region this trailfill does not know is an error)")
	fs.StringVar(&f.roleName, "role-name", contract.DefaultRoleName, "read role assumed in accounts other than the caller's")
	fs.StringVar(&f.out, "out", outDefault, "archive: a local folder or s3://bucket/prefix")
	fs.StringVar(&f.orgID, "org-id", "", "AWS Organizations ID (o-...) for the organization-trail layout AWSLogs/<o-id>/<account>/...")
	fs.StringVar(&f.profile, "profile", "", "AWS shared-config profile (default: AWS_PROFILE or default)")
	fs.BoolVar(&f.noLookback, "no-lookback-limit", false, "allow a start older than 90 days (emulators, replays)")
	fs.IntVar(&f.windowMinutes, "window-minutes", contract.DefaultWindowMinutes, "window length in minutes (a multiple of 5 dividing a day): the unit of manifests and resume")
	fs.Float64Var(&f.rate, "rate", pace.MaxRate, "LookupEvents requests/s per account and region, at most 2 (lower leaves quota to other callers)")
}

// rangeSpec is validated range input.
type rangeSpec struct {
	Start, End time.Time
	Accounts   []string // empty: the caller's account
	Regions    []string // empty: all enabled regions
	RoleName   string
	OrgID      string
	Dest       archive.Destination
	Window     time.Duration
	Rate       float64
	Profile    string
}

// spec validates every flag without touching the network or the archive.
func (f *rangeFlags) spec(now time.Time, needOut bool) (rangeSpec, error) {
	var s rangeSpec
	var err error
	if s.Start, err = validate.Time("start", f.start); err != nil {
		return s, usageError{err}
	}
	if s.End, err = validate.Time("end", f.end); err != nil {
		return s, usageError{err}
	}
	if err := validate.Range(s.Start, s.End, now, f.noLookback); err != nil {
		return s, usageError{err}
	}
	for _, a := range validate.List(f.accounts) {
		if err := validate.Account(a); err != nil {
			return s, usageError{fmt.Errorf("--accounts: %w", err)}
		}
		s.Accounts = append(s.Accounts, a)
	}
	if f.accounts != "" && len(s.Accounts) == 0 {
		return s, usagef("--accounts is empty: give 12-digit account IDs separated by commas, or omit it for the caller's account")
	}
	if f.regions != "all" && f.regions != "" {
		for _, r := range validate.List(f.regions) {
			if r == "all" {
				return s, usagef("--regions: all cannot be combined with region names")
			}
			if err := validate.Region(r); err != nil {
				return s, usageError{fmt.Errorf("--regions: %w", err)}
			}
			s.Regions = append(s.Regions, r)
		}
		if len(s.Regions) == 0 {
			return s, usagef("--regions is empty: give region names separated by commas, or all")
		}
	}
	if err := validate.RoleName(f.roleName); err != nil {
		return s, usageError{fmt.Errorf("--role-name: %w", err)}
	}
	s.RoleName = f.roleName
	if f.orgID != "" {
		if err := validate.OrgID(f.orgID); err != nil {
			return s, usageError{fmt.Errorf("--org-id: %w", err)}
		}
		s.OrgID = f.orgID
	}
	if needOut || f.out != "" {
		if s.Dest, err = archive.ParseDestination(f.out); err != nil {
			return s, usageError{fmt.Errorf("--out: %w", err)}
		}
	}
	s.Window = time.Duration(f.windowMinutes) * time.Minute
	if err := engine.CheckWindow(s.Window); err != nil {
		return s, usageError{fmt.Errorf("--window-minutes: %w", err)}
	}
	if f.rate <= 0 || f.rate > pace.MaxRate {
		return s, usagef("--rate %g: give requests per second above 0 and at most 2 (the LookupEvents quota)", f.rate)
	}
	s.Rate = f.rate
	s.Profile = f.profile
	return s, nil
}

// input is the execution input of the spec; the partitions are staged
// apart (contract.ExecutionInput.PartitionsKey).
func (s rangeSpec) input(destination string, maxConcurrency int) contract.ExecutionInput {
	return contract.ExecutionInput{
		Start:          s.Start.Format(time.RFC3339),
		End:            s.End.Format(time.RFC3339),
		WindowMinutes:  int(s.Window / time.Minute),
		RoleName:       s.RoleName,
		Destination:    destination,
		MaxConcurrency: maxConcurrency,
	}
}

// flagGiven reports whether the flag was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}
