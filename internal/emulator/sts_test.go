package emulator

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/account"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestGetCallerIdentity(t *testing.T) {
	s := start(t, fast())
	out, err := stsClient(awsConfig(s, acctA, "us-east-1")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != acctA || aws.ToString(out.Arn) != "arn:aws:iam::"+acctA+":user/trailfill-emulator" || !strings.HasPrefix(aws.ToString(out.UserId), "AIDA") {
		t.Errorf("identity = %s %s %s", aws.ToString(out.Account), aws.ToString(out.Arn), aws.ToString(out.UserId))
	}
	// Stable keys per account, distinct across accounts.
	ak1, sk1 := s.CallerCredentials(acctA)
	ak2, _ := s.CallerCredentials(acctA)
	ak3, _ := s.CallerCredentials(acctB)
	if ak1 != ak2 || ak1 == ak3 || len(ak1) != 20 || !strings.HasPrefix(ak1, "AKIA") || len(sk1) != 40 {
		t.Errorf("keys %s %s %s / %s", ak1, ak2, ak3, sk1)
	}
}

func TestAssumeRole(t *testing.T) {
	s := start(t, fast())
	s.AddAccount(acctB, "TrailfillRead")
	if err := s.AddEvents(acctB, "eu-central-1", record("in-b", t0)); err != nil {
		t.Fatal(err)
	}
	base := awsConfig(s, acctA, "eu-central-1")
	client := stsClient(base)
	ctx := context.Background()

	out, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String("arn:aws:iam::" + acctB + ":role/TrailfillRead"),
		RoleSessionName: aws.String("trailfill"),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" {
		t.Errorf("credentials = %+v", c)
	}
	if d := time.Until(aws.ToTime(c.Expiration)); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expires in %v, want 1h", d)
	}
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != "arn:aws:sts::"+acctB+":assumed-role/TrailfillRead/trailfill" {
		t.Errorf("assumed role ARN %s", got)
	}

	// The SDK's own provider, as the product uses it.
	assumed := base.Copy()
	assumed.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(client, "arn:aws:iam::"+acctB+":role/TrailfillRead",
		func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "backfill" }))
	id, err := stsClient(assumed).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Account) != acctB || aws.ToString(id.Arn) != "arn:aws:sts::"+acctB+":assumed-role/TrailfillRead/backfill" ||
		!strings.HasSuffix(aws.ToString(id.UserId), ":backfill") || !strings.HasPrefix(aws.ToString(id.UserId), "AROA") {
		t.Errorf("assumed identity = %s %s %s", aws.ToString(id.Account), aws.ToString(id.Arn), aws.ToString(id.UserId))
	}
	// LookupEvents with the assumed credentials reads account B's partition.
	ev, err := cloudtrail.NewFromConfig(assumed).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 1 || aws.ToString(ev.Events[0].EventId) != "in-b" {
		t.Errorf("events = %v", ids(ev.Events))
	}
	if s.Stats(acctB, "eu-central-1").Served != 1 || s.Stats(acctA, "eu-central-1").Requests != 0 {
		t.Errorf("request counted in the wrong partition")
	}
	// Role chaining works too (an assumed role assuming another).
	s.AddAccount(acctA, "Other")
	if _, err := stsClient(assumed).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + acctA + ":role/path/Other"), RoleSessionName: aws.String("chain"),
	}); err != nil {
		t.Errorf("chained AssumeRole: %v", err)
	}

	denied := []struct{ name, arn string }{
		{"unknown role", "arn:aws:iam::" + acctB + ":role/Nope"},
		{"unknown account", "arn:aws:iam::333333333333:role/TrailfillRead"},
	}
	for _, d := range denied {
		_, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(d.arn), RoleSessionName: aws.String("trailfill")})
		if code, status := apiCode(t, err); code != "AccessDenied" || status != 403 {
			t.Errorf("%s: %s %d, want AccessDenied 403", d.name, code, status)
		}
	}
	invalid := []sts.AssumeRoleInput{
		{RoleArn: aws.String("arn:aws:iam::12:role/X"), RoleSessionName: aws.String("trailfill")},
		{RoleArn: aws.String("arn:aws:iam::" + acctB + ":role/TrailfillRead"), RoleSessionName: aws.String("bad session!")},
		{RoleArn: aws.String("arn:aws:iam::" + acctB + ":role/TrailfillRead"), RoleSessionName: aws.String("ok"), DurationSeconds: aws.Int32(60)},
	}
	for i, in := range invalid {
		_, err := client.AssumeRole(ctx, &in)
		if code, status := apiCode(t, err); code != "ValidationError" || status != 400 {
			t.Errorf("invalid %d: %s %d, want ValidationError 400", i, code, status)
		}
	}
	// 1 direct + 1 by the provider + 1 denied (unknown role); invalid
	// requests are not calls on a role, and the unknown account was never
	// declared.
	if n := s.AssumeRoleCalls(acctB); n != 3 {
		t.Errorf("AssumeRoleCalls(B) = %d, want 3", n)
	}
	if n := s.AssumeRoleCalls("333333333333"); n != 0 {
		t.Errorf("AssumeRoleCalls(unknown) = %d", n)
	}

	// Expired credentials are refused with each protocol's error.
	if n := s.ExpireCredentials(acctB); n != 2 {
		t.Errorf("expired %d credentials, want 2", n)
	}
	stale := base.Copy()
	stale.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	_, err = stsClient(stale).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code, status := apiCode(t, err); code != "ExpiredToken" || status != 403 {
		t.Errorf("expired on STS: %s %d", code, status)
	}
	_, err = cloudtrail.NewFromConfig(stale).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	if code, status := apiCode(t, err); code != "ExpiredTokenException" || status != 403 {
		t.Errorf("expired on CloudTrail: %s %d", code, status)
	}
	// A wrong session token is an invalid token.
	forged := base.Copy()
	forged.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), "forged")
	_, err = stsClient(forged).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code, _ := apiCode(t, err); code != "InvalidClientTokenId" {
		t.Errorf("forged session token: %s", code)
	}
}

func TestUnknownAccessKey(t *testing.T) {
	s := start(t, fast())
	cfg := awsConfig(s, acctA, "us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIAUNKNOWNUNKNOWN00", "secret", "")
	ctx := context.Background()
	checks := []struct {
		name string
		call func() error
		code string
	}{
		{"cloudtrail", func() error {
			_, err := cloudtrail.NewFromConfig(cfg).LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
			return err
		}, "UnrecognizedClientException"},
		{"sts", func() error {
			_, err := stsClient(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		}, "InvalidClientTokenId"},
		{"account", func() error {
			_, err := accountClient(cfg).ListRegions(ctx, &account.ListRegionsInput{})
			return err
		}, "UnrecognizedClientException"},
		{"s3", func() error {
			_, err := s3Client(cfg).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("b")})
			return err
		}, "InvalidAccessKeyId"},
	}
	for _, c := range checks {
		code, status := apiCode(t, c.call())
		if code != c.code || status != 403 {
			t.Errorf("%s: %s %d, want %s 403", c.name, code, status, c.code)
		}
	}
	if st := s.Stats(acctA, "us-east-1"); st.Requests != 0 {
		t.Errorf("unknown key counted: %+v", st)
	}
}

func TestHandleAddsService(t *testing.T) {
	s := start(t, fast())
	ak, _ := s.CallerCredentials(acctA)
	s.Handle("states", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := IdentityFromContext(r.Context())
		if !ok {
			http.Error(w, "unknown caller", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, id.Account+" "+id.Region+" "+id.Service)
	}))
	do := func(key string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20250417/eu-west-1/states/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if status, body := do(ak); status != 200 || body != acctA+" eu-west-1 states" {
		t.Errorf("known key: %d %q", status, body)
	}
	if status, _ := do("AKIANOPE"); status != 403 {
		t.Errorf("unknown key: %d", status)
	}
	// Unsigned requests and unknown services are refused.
	resp, err := http.Post(s.URL()+"/", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("unsigned: %d", resp.StatusCode)
	}
}
