package emulator

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
)

func TestDescribeStacks(t *testing.T) {
	s := start(t, fast())
	cf := NewCloudFormation(s)
	outputs := map[string]string{"StateMachineArn": "arn:aws:states:eu-west-1:111111111111:stateMachine:trailfill-backfill", "ArchiveBucket": "archive"}
	id := cf.AddStack(acctA, "eu-west-1", "trailfill", outputs)
	cf.AddStack(acctA, "eu-west-1", "other", nil)
	cf.AddStack(acctA, "us-east-1", "elsewhere", nil)
	if !strings.HasPrefix(id, "arn:aws:cloudformation:eu-west-1:111111111111:stack/trailfill/") {
		t.Fatalf("stack id %s", id)
	}
	c := cloudformation.NewFromConfig(awsConfig(s, acctA, "eu-west-1"))
	ctx := context.Background()
	for _, name := range []string{"trailfill", id} {
		out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out.Stacks) != 1 {
			t.Fatalf("%s: %d stacks", name, len(out.Stacks))
		}
		st := out.Stacks[0]
		if aws.ToString(st.StackName) != "trailfill" || aws.ToString(st.StackId) != id || st.StackStatus != "CREATE_COMPLETE" || st.CreationTime == nil {
			t.Errorf("%s: stack %s %s %s %v", name, aws.ToString(st.StackName), aws.ToString(st.StackId), st.StackStatus, st.CreationTime)
		}
		got := map[string]string{}
		for _, o := range st.Outputs {
			got[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
		}
		if len(got) != 2 || got["StateMachineArn"] != outputs["StateMachineArn"] || got["ArchiveBucket"] != "archive" {
			t.Errorf("%s: outputs %v", name, got)
		}
	}
	all, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Stacks) != 2 {
		t.Errorf("all stacks of the account and region: %d, want 2", len(all.Stacks))
	}

	// Unknown stacks, and stacks of another region or account, do not exist.
	for _, tc := range []struct {
		acct, region, name string
	}{{acctA, "eu-west-1", "nope"}, {acctA, "us-west-2", "trailfill"}, {acctB, "eu-west-1", "trailfill"}} {
		_, err := cloudformation.NewFromConfig(awsConfig(s, tc.acct, tc.region)).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(tc.name)})
		if err == nil {
			t.Fatalf("%v: no error", tc)
		}
		code, status := apiCode(t, err)
		if code != "ValidationError" || status != 400 || !strings.Contains(err.Error(), "Stack with id "+tc.name+" does not exist") {
			t.Errorf("%v: %s %d %v", tc, code, status, err)
		}
	}
	bad := awsConfig(s, acctA, "eu-west-1")
	bad.Credentials = credentials.NewStaticCredentialsProvider("AKIANOPE", "x", "")
	_, err = cloudformation.NewFromConfig(bad).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("trailfill")})
	if code, _ := apiCode(t, err); code != "InvalidClientTokenId" {
		t.Errorf("unknown key: %s", code)
	}
	if n := cf.Calls("DescribeStacks"); n != 7 {
		t.Errorf("%d DescribeStacks calls counted, want 7", n)
	}
}
