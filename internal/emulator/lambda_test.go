package emulator

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

func TestLambdaGetAccountSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	settings := func(t *testing.T, s *Server, acct, region string) (concurrent, unreserved int32) {
		t.Helper()
		out, err := lambda.NewFromConfig(awsConfig(s, acct, region)).GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
		if err != nil {
			t.Fatal(err)
		}
		l := out.AccountLimit
		if l == nil || l.TotalCodeSize != 80530636800 || l.CodeSizeZipped != 52428800 || l.CodeSizeUnzipped != 262144000 || l.UnreservedConcurrentExecutions == nil {
			t.Fatalf("AccountLimit = %+v", l)
		}
		if out.AccountUsage == nil || out.AccountUsage.FunctionCount != 0 {
			t.Errorf("AccountUsage = %+v", out.AccountUsage)
		}
		return l.ConcurrentExecutions, *l.UnreservedConcurrentExecutions
	}

	t.Run("AWS defaults", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		if c, u := settings(t, s, acctA, "us-east-1"); c != 1000 || u != 1000 {
			t.Errorf("defaults %d/%d, want 1000/1000", c, u)
		}
		if n := s.LambdaAccountSettingsCalls(acctA); n != 1 {
			t.Errorf("calls = %d", n)
		}
	})
	t.Run("set per account, every region", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		if err := s.SetLambdaAccountSettings(acctB, 10, 10); err != nil {
			t.Fatal(err)
		}
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			if c, u := settings(t, s, acctB, region); c != 10 || u != 10 {
				t.Errorf("%s: %d/%d, want 10/10", region, c, u)
			}
		}
		if c, u := settings(t, s, acctA, "us-east-1"); c != 1000 || u != 1000 {
			t.Errorf("other account %d/%d", c, u)
		}
		if err := s.SetLambdaAccountSettings(acctB, 1000, 150); err != nil {
			t.Fatal(err)
		}
		if c, u := settings(t, s, acctB, "us-east-1"); c != 1000 || u != 150 {
			t.Errorf("after reservations %d/%d, want 1000/150", c, u)
		}
	})
	t.Run("invalid settings", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		for _, v := range [][2]int{{10, 20}, {-1, 0}, {10, -1}} {
			if err := s.SetLambdaAccountSettings(acctA, v[0], v[1]); err == nil {
				t.Errorf("%v accepted", v)
			}
		}
	})
	t.Run("trailing slash and other paths", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		ak, _ := s.CallerCredentials(acctA)
		do := func(method, path string) (int, string) {
			req, err := http.NewRequest(method, s.URL()+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+ak+"/20250417/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=abc")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType")
		}
		if st, _ := do(http.MethodGet, "/2016-08-19/account-settings/"); st != 200 {
			t.Errorf("with the slash: %d", st)
		}
		if st, code := do(http.MethodGet, "/2015-03-31/functions/"); st != 404 || code != "UnknownOperationException" {
			t.Errorf("ListFunctions: %d %s", st, code)
		}
	})
	t.Run("unknown credentials", func(t *testing.T) {
		t.Parallel()
		s := start(t, fast())
		cfg := awsConfig(s, acctA, "us-east-1")
		cfg.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: "x"}, nil
		})
		_, err := lambda.NewFromConfig(cfg).GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
		if code, status := apiCode(t, err); code != "UnrecognizedClientException" || status != 403 {
			t.Errorf("%s %d", code, status)
		}
		if err == nil || !strings.Contains(err.Error(), "security token") {
			t.Errorf("err = %v", err)
		}
	})
}
