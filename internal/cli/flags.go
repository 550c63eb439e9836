package cli

import (
	"flag"
	"fmt"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/engine"
	"github.com/trailfill/trailfill/internal/pace"
	"github.com/trailfill/trailfill/internal/trail"
	"github.com/trailfill/trailfill/internal/validate"
)

// rangeFlags are the flags shared by run, plan, start and verify.
type rangeFlags struct {
	start, end, accounts, regions string
	roleName, out, orgID, profile string
	noLookback                    bool
	windowMinutes                 int
	rate                          float64
	// Exactly once in a real trail bucket.
	ignoreNative    bool
	nativeLookahead time.Duration
	settleMargin    time.Duration
	kmsKey          string
	// --trail.
	trail string
	fs    *flag.FlagSet // the command's, to tell given flags from defaults
}

func (f *rangeFlags) register(fs *flag.FlagSet, outDefault string) {
	f.fs = fs
	fs.StringVar(&f.trail, "trail", "", "NAME or ARN of the trail to recover: its bucket, prefix, organization layout, regions and event selectors (explicit flags win; see docs/trail.md)")
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
	fs.BoolVar(&f.ignoreNative, "ignore-native", false, "do not read the trail files CloudTrail delivered itself (by default their events are not written again)")
	fs.DurationVar(&f.nativeLookahead, "native-lookahead", engine.DefaultNativeLookahead, "how long after an event native trail files that can hold it are looked for (CloudTrail names files by delivery time; up to 720h)")
	fs.DurationVar(&f.settleMargin, "settle-margin", engine.DefaultSettleMargin, "windows ending less than this before now are archived provisionally and read again by a later run (LookupEvents fills in over minutes); 0: none")
	fs.StringVar(&f.kmsKey, "kms-key", "", "KMS key ARN: write S3 objects with SSE-KMS and this key (for buckets that require it)")
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

	IgnoreNative    bool
	NativeLookahead time.Duration
	SettleMargin    time.Duration
	// KMSKeyID: --kms-key, or the trail's key (resolveTrail).
	KMSKeyID string

	// Set by --trail (resolveTrail): the trail's target and the canonical
	// selection of its management events.
	Trail     *trail.Target
	Selection string
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
	if f.nativeLookahead < 0 || f.nativeLookahead > 30*24*time.Hour || f.nativeLookahead%time.Minute != 0 {
		return s, usagef("--native-lookahead %s: give whole minutes from 0 to 720h (CloudTrail redelivers for up to 30 days)", f.nativeLookahead)
	}
	if f.settleMargin < 0 || f.settleMargin > 24*time.Hour || f.settleMargin%time.Minute != 0 {
		return s, usagef("--settle-margin %s: give whole minutes from 0 to 24h", f.settleMargin)
	}
	s.IgnoreNative, s.NativeLookahead, s.SettleMargin = f.ignoreNative, f.nativeLookahead, f.settleMargin
	if s.NativeLookahead == 0 {
		s.NativeLookahead = -1 // --native-lookahead 0: the slice's own day folder only (archive.NativeLookahead)
	}
	if f.kmsKey != "" {
		if err := validate.KMSKeyArn(f.kmsKey); err != nil {
			return s, usageError{fmt.Errorf("--kms-key: %w", err)}
		}
		s.KMSKeyID = f.kmsKey
	}
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
		// The exactly-once settings travel to every invocation; in the
		// contract 0 means the function's default, so "none" is -1.
		IgnoreNative:           s.IgnoreNative,
		NativeLookaheadMinutes: minutesOrNone(s.NativeLookahead),
		SettleMinutes:          minutesOrNone(s.SettleMargin),
		Selection:              s.Selection,
		OrgID:                  s.OrgID,
	}
}

// minutesOrNone is d in whole minutes, or -1 for none (zero or negative).
func minutesOrNone(d time.Duration) int {
	if d <= 0 {
		return -1
	}
	return int(d / time.Minute)
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
