package awsconf_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/contract"
	"github.com/trailfill/trailfill/internal/emulator"
	"github.com/trailfill/trailfill/internal/testkit"
)

const (
	caller = "111111111111"
	member = "222222222222"
	noRole = "333333333333"
)

func registry(t *testing.T) (*emulator.Server, *awsconf.Clients) {
	t.Helper()
	emu := testkit.StartEmulator(t, emulator.Config{Rate: 1000, Burst: 10})
	emu.AddAccount(caller)
	emu.AddAccount(member, contract.DefaultRoleName)
	emu.AddAccount(noRole)
	cfg := testkit.AWSConfig(t, emu, caller)
	return emu, awsconf.NewClients(cfg, sts.NewFromConfig(cfg), contract.DefaultRoleName, 2)
}

// TestPartitions resolves --accounts and --regions all through the real
// STS and Account clients against the emulators.
func TestPartitions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		enabled           map[string][]string
		accounts, regions []string
		want              []string // account/region
		wantErr           string
		unknown           []string
	}{
		{name: "caller, given regions", regions: []string{"us-east-1", "eu-west-1"},
			want: []string{"111111111111/us-east-1", "111111111111/eu-west-1"}},
		{name: "enabled regions of each account", accounts: []string{caller, member},
			enabled: map[string][]string{caller: {"us-east-1", "eu-west-1"}, member: {"ap-southeast-2", "me-central-1"}},
			want:    []string{"111111111111/eu-west-1", "111111111111/us-east-1", "222222222222/ap-southeast-2", "222222222222/me-central-1"}},
		{name: "an enabled region trailfill does not know", accounts: []string{member},
			enabled: map[string][]string{member: {"us-east-1", "xx-future-1", "eu-west-1"}},
			wantErr: "account 222222222222 has enabled region(s) xx-future-1 that this trailfill does not know: upgrade trailfill, or pass --regions", unknown: []string{"xx-future-1"}},
		{name: "given regions need no listing", accounts: []string{member}, regions: []string{"us-east-1"},
			enabled: map[string][]string{member: {"xx-future-1"}},
			want:    []string{"222222222222/us-east-1"}},
		{name: "a read role that cannot be assumed", accounts: []string{noRole},
			wantErr: "assume arn:aws:iam::333333333333:role/trailfill-read (deploy the read role StackSet to account 333333333333, or pass --role-name)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emu, clients := registry(t)
			for a, rs := range tc.enabled {
				emu.SetEnabledRegions(a, rs...)
			}
			parts, err := clients.Partitions(context.Background(), tc.accounts, tc.regions)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				var ue *awsconf.UnknownRegionsError
				if tc.unknown != nil && (!errors.As(err, &ue) || !slices.Equal(ue.Regions, tc.unknown)) {
					t.Errorf("err %#v is not an UnknownRegionsError naming %v", err, tc.unknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("partitions %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCallerOnceAndRoleARN: the caller is asked for once, its partition
// names the read role, and an assumed role is cached per account.
func TestCallerOnceAndRoleARN(t *testing.T) {
	t.Parallel()
	emu, clients := registry(t)
	ctx := context.Background()
	id, err := clients.Caller(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (awsconf.Caller{Account: caller, ARN: "arn:aws:iam::111111111111:user/trailfill-emulator", Partition: "aws"}); id != want {
		t.Errorf("caller %+v, want %+v", id, want)
	}
	arn, err := clients.RoleARN(ctx, member)
	if err != nil || arn != "arn:aws:iam::222222222222:role/trailfill-read" {
		t.Errorf("RoleARN %q, %v", arn, err)
	}
	for range 3 {
		if _, err := clients.Credentials(ctx, member); err != nil {
			t.Fatal(err)
		}
	}
	if n := emu.AssumeRoleCalls(member); n != 1 {
		t.Errorf("%d AssumeRole calls for three uses, want 1", n)
	}
	if a, b := clients.Limiter(member, "us-east-1"), clients.Limiter(member, "us-east-1"); a != b || a == clients.Limiter(member, "eu-west-1") {
		t.Error("limiters are not one per partition")
	}
}

// writerToBody is a request body that implements io.WriterTo, as
// smithy-go's does.
type writerToBody struct{ *bytes.Reader }

func (writerToBody) Close() error { return nil }

type recordingClient struct{ body io.ReadCloser }

func (r *recordingClient) Do(req *http.Request) (*http.Response, error) {
	r.body = req.Body
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestBodyRaceClientHidesWriterTo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		body io.ReadCloser
	}{
		{"writer-to body", writerToBody{bytes.NewReader([]byte("payload"))}},
		{"plain body", io.NopCloser(strings.NewReader("payload"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recordingClient{}
			req, err := http.NewRequest(http.MethodPut, "http://127.0.0.1/", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (awsconf.BodyRaceClient{Base: rec}).Do(req); err != nil {
				t.Fatal(err)
			}
			if _, ok := rec.body.(io.WriterTo); ok {
				t.Errorf("the body reached the transport as an io.WriterTo (%T)", rec.body)
			}
			b, err := io.ReadAll(rec.body)
			if err != nil || string(b) != "payload" {
				t.Errorf("body %q, %v", b, err)
			}
		})
	}
}

// TestBuildUsesTheBodyRaceClient: the configuration the product builds
// sends through BodyRaceClient, as the tests' does.
func TestBuildUsesTheBodyRaceClient(t *testing.T) {
	t.Parallel()
	cfg, err := awsconf.Build(context.Background(), awsconf.Options{
		Region:            "eu-west-1",
		StaticCredentials: &awsconf.StaticCredentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"},
		BaseEndpoint:      "http://127.0.0.1:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.HTTPClient.(awsconf.BodyRaceClient); !ok {
		t.Errorf("HTTP client %T, want awsconf.BodyRaceClient", cfg.HTTPClient)
	}
	if cfg.Region != "eu-west-1" || cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != "http://127.0.0.1:1" {
		t.Errorf("region %q, endpoint %v", cfg.Region, cfg.BaseEndpoint)
	}
}
