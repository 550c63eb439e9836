package emulator

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/account"
	"github.com/aws/aws-sdk-go-v2/service/account/types"
)

// listRegions pages through ListRegions and returns "name=status" entries.
func listRegions(t *testing.T, c *account.Client, in *account.ListRegionsInput) ([]string, int) {
	t.Helper()
	var out []string
	pages := 0
	p := account.NewListRegionsPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range page.Regions {
			out = append(out, aws.ToString(r.RegionName)+"="+string(r.RegionOptStatus))
		}
	}
	return out, pages
}

func TestListRegions(t *testing.T) {
	s := start(t, fast())
	c := accountClient(awsConfig(s, acctA, "us-east-1"))
	enabled := []types.RegionOptStatus{types.RegionOptStatusEnabled, types.RegionOptStatusEnabledByDefault}

	got, pages := listRegions(t, c, &account.ListRegionsInput{RegionOptStatusContains: enabled})
	var want []string
	for _, r := range DefaultRegions {
		want = append(want, r+"=ENABLED_BY_DEFAULT")
	}
	if !slices.Equal(got, want) {
		t.Errorf("default regions:\n got %v\nwant %v", got, want)
	}
	if pages != 1 {
		t.Errorf("%d pages for 17 regions at the default page size 20", pages)
	}

	// Without a filter, opt-in regions show up DISABLED: callers must filter.
	all, pages := listRegions(t, c, &account.ListRegionsInput{})
	if len(all) != 17+len(optInRegions) || pages != 2 || !slices.Contains(all, "af-south-1=DISABLED") {
		t.Errorf("all regions: %d in %d pages: %v", len(all), pages, all)
	}

	// Small pages give the same list.
	small, pages := listRegions(t, c, &account.ListRegionsInput{RegionOptStatusContains: enabled, MaxResults: aws.Int32(5)})
	if !slices.Equal(small, want) || pages != 4 {
		t.Errorf("pages of 5: %d pages, %v", pages, small)
	}

	s.SetEnabledRegions(acctB, "us-east-1", "eu-west-1", "af-south-1")
	cb := accountClient(awsConfig(s, acctB, "us-east-1"))
	got, _ = listRegions(t, cb, &account.ListRegionsInput{RegionOptStatusContains: enabled})
	if want := []string{"af-south-1=ENABLED", "eu-west-1=ENABLED_BY_DEFAULT", "us-east-1=ENABLED_BY_DEFAULT"}; !slices.Equal(got, want) {
		t.Errorf("account B: %v, want %v", got, want)
	}
	got, _ = listRegions(t, cb, &account.ListRegionsInput{RegionOptStatusContains: []types.RegionOptStatus{types.RegionOptStatusEnabled}})
	if want := []string{"af-south-1=ENABLED"}; !slices.Equal(got, want) {
		t.Errorf("account B ENABLED only: %v", got)
	}
	// Account A may read B's regions with AccountId (management account).
	got, _ = listRegions(t, c, &account.ListRegionsInput{AccountId: aws.String(acctB), RegionOptStatusContains: enabled})
	if len(got) != 3 {
		t.Errorf("AccountId=B from A: %v", got)
	}

	ctx := context.Background()
	bad := []account.ListRegionsInput{
		{MaxResults: aws.Int32(0)},
		{MaxResults: aws.Int32(51)},
		{NextToken: aws.String("garbage")},
		{RegionOptStatusContains: []types.RegionOptStatus{"SOMETIMES"}},
	}
	for i, in := range bad {
		_, err := c.ListRegions(ctx, &in)
		if !isA[*types.ValidationException](err) {
			t.Errorf("bad input %d: err = %v, want ValidationException", i, err)
		}
	}
	// A token of one filter is refused with another.
	first, err := c.ListRegions(ctx, &account.ListRegionsInput{MaxResults: aws.Int32(2), RegionOptStatusContains: enabled})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	_, err = c.ListRegions(ctx, &account.ListRegionsInput{MaxResults: aws.Int32(2), NextToken: first.NextToken})
	if !isA[*types.ValidationException](err) {
		t.Errorf("token reused with another filter: %v", err)
	}
	_, err = c.ListRegions(ctx, &account.ListRegionsInput{AccountId: aws.String("999999999999")})
	if !isA[*types.AccessDeniedException](err) {
		t.Errorf("unknown AccountId: %v", err)
	}
}
