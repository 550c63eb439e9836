package awsconf

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/account"
	accounttypes "github.com/aws/aws-sdk-go-v2/service/account/types"

	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/validate"
)

// UnknownRegionsError is an account's enabled region that trailfill does not
// know (validate.Regions): a region launched after this trailfill. It is
// never skipped: skipping would leave the region's events out of an
// archive that looks complete.
type UnknownRegionsError struct {
	Account string
	Regions []string
}

func (e *UnknownRegionsError) Error() string {
	return fmt.Sprintf("account %s has enabled region(s) %s that this trailfill does not know: upgrade trailfill, or pass --regions with the regions to archive",
		e.Account, strings.Join(e.Regions, ", "))
}

// EnabledRegions lists an account's enabled regions (account:ListRegions,
// ENABLED and ENABLED_BY_DEFAULT), sorted. An enabled region that
// validate.Region refuses is an *UnknownRegionsError.
func EnabledRegions(ctx context.Context, lister RegionLister, acct string) ([]string, error) {
	var regions, unknown []string
	p := account.NewListRegionsPaginator(lister, &account.ListRegionsInput{
		RegionOptStatusContains: []accounttypes.RegionOptStatus{accounttypes.RegionOptStatusEnabled, accounttypes.RegionOptStatusEnabledByDefault},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the enabled regions of account %s (grant account:ListRegions, or pass --regions): %w", acct, err)
		}
		for _, r := range page.Regions {
			name := aws.ToString(r.RegionName)
			if validate.Region(name) != nil {
				unknown = append(unknown, name)
				continue
			}
			regions = append(regions, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &UnknownRegionsError{Account: acct, Regions: unknown}
	}
	if len(regions) == 0 {
		return nil, fmt.Errorf("account %s has no enabled regions: pass --regions", acct)
	}
	sort.Strings(regions)
	return regions, nil
}

// Partitions turns accounts x regions into partitions: the caller's account
// when accounts is empty, each account's enabled regions (with that
// account's credentials) when regions is empty.
func (c *Clients) Partitions(ctx context.Context, accounts, regions []string) ([]contract.Partition, error) {
	if len(accounts) == 0 {
		caller, err := c.CallerAccount(ctx)
		if err != nil {
			return nil, err
		}
		accounts = []string{caller}
	}
	var out []contract.Partition
	for _, a := range accounts {
		rs := regions
		if len(rs) == 0 {
			lister, err := c.RegionLister(ctx, a)
			if err != nil {
				return nil, err
			}
			if rs, err = EnabledRegions(ctx, lister, a); err != nil {
				return nil, err
			}
		}
		out = append(out, contract.Partitions([]string{a}, rs)...)
	}
	return out, nil
}
