package emulator

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
)

func orgClient(s *Server, acct string) *organizations.Client {
	return organizations.NewFromConfig(awsConfig(s, acct, "us-east-1"))
}

// The Organizations operations through the real SDK client: who may call
// them, the answers, ListAccounts' pages, and denied callers.
func TestOrganizations(t *testing.T) {
	t.Parallel()
	s := start(t, fast())
	s.SetOrganization(Organization{ID: "o-abc123defg", ManagementAccount: acctA, Members: []string{acctB, acctAdmin}, DelegatedAdministrators: []string{acctAdmin}})
	ctx := context.Background()
	t.Run("DescribeOrganization from every account of the organization", func(t *testing.T) {
		for _, a := range []string{acctA, acctB, acctAdmin} {
			out, err := orgClient(s, a).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			o := out.Organization
			if aws.ToString(o.Id) != "o-abc123defg" || aws.ToString(o.MasterAccountId) != acctA || o.FeatureSet != "ALL" ||
				aws.ToString(o.Arn) != "arn:aws:organizations::"+acctA+":organization/o-abc123defg" {
				t.Fatalf("%s: %+v", a, o)
			}
		}
	})
	t.Run("an account outside the organization", func(t *testing.T) {
		_, err := orgClient(s, acctOutsider).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
		if code, status := apiCode(t, err); code != "AWSOrganizationsNotInUseException" || status != 400 {
			t.Fatalf("%s %d", code, status)
		}
	})
	t.Run("ListAccounts from the management account and a delegated administrator, in pages", func(t *testing.T) {
		for _, a := range []string{acctA, acctAdmin} {
			var got []string
			p := organizations.NewListAccountsPaginator(orgClient(s, a), &organizations.ListAccountsInput{MaxResults: aws.Int32(1)})
			pages := 0
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, acc := range page.Accounts {
					if acc.Status != "ACTIVE" || acc.JoinedTimestamp == nil {
						t.Fatalf("account %+v", acc)
					}
					got = append(got, aws.ToString(acc.Id))
				}
			}
			if want := []string{acctA, acctB, acctAdmin}; !slices.Equal(got, want) || pages != 3 {
				t.Fatalf("%s: %v in %d pages, want %v in 3", a, got, pages, want)
			}
		}
	})
	t.Run("ListAccounts from a member", func(t *testing.T) {
		_, err := orgClient(s, acctB).ListAccounts(ctx, &organizations.ListAccountsInput{})
		if code, _ := apiCode(t, err); code != "AccessDeniedException" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("denied account", func(t *testing.T) {
		s.DenyOrganizations(acctB)
		_, err := orgClient(s, acctB).DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
		if code, _ := apiCode(t, err); code != "AccessDeniedException" {
			t.Fatalf("%s", code)
		}
		if n := s.OrganizationsCalls("DescribeOrganization"); n != 5 {
			t.Fatalf("%d DescribeOrganization calls counted, want 5", n)
		}
	})
}
