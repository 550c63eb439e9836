package awsconf

import (
	"testing"
)

func TestARNsByPartition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, partition, region  string
		role, machine, execution string
		console                  string
		stack                    string
	}{
		{
			name: "aws", partition: "aws", region: "eu-west-1",
			role:      "arn:aws:iam::111111111111:role/trailfill-read",
			machine:   "arn:aws:states:eu-west-1:111111111111:stateMachine:trailfill-backfill",
			execution: "arn:aws:states:eu-west-1:111111111111:execution:trailfill-backfill:run-1",
			console:   "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:111111111111:execution:trailfill-backfill:run-1",
			stack:     "arn:aws:cloudformation:eu-west-1:111111111111:stack/trailfill/0a1b2c3d-0000-1111-2222-333344445555",
		},
		{
			name: "aws-cn", partition: "aws-cn", region: "cn-north-1",
			role:      "arn:aws-cn:iam::111111111111:role/trailfill-read",
			machine:   "arn:aws-cn:states:cn-north-1:111111111111:stateMachine:trailfill-backfill",
			execution: "arn:aws-cn:states:cn-north-1:111111111111:execution:trailfill-backfill:run-1",
			console:   "https://console.amazonaws.cn/states/home?region=cn-north-1#/v2/executions/details/arn:aws-cn:states:cn-north-1:111111111111:execution:trailfill-backfill:run-1",
			stack:     "arn:aws-cn:cloudformation:cn-north-1:111111111111:stack/trailfill/0a1b2c3d-0000-1111-2222-333344445555",
		},
		{
			name: "aws-us-gov", partition: "aws-us-gov", region: "us-gov-west-1",
			role:      "arn:aws-us-gov:iam::111111111111:role/trailfill-read",
			machine:   "arn:aws-us-gov:states:us-gov-west-1:111111111111:stateMachine:trailfill-backfill",
			execution: "arn:aws-us-gov:states:us-gov-west-1:111111111111:execution:trailfill-backfill:run-1",
			console:   "https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1#/v2/executions/details/arn:aws-us-gov:states:us-gov-west-1:111111111111:execution:trailfill-backfill:run-1",
			stack:     "arn:aws-us-gov:cloudformation:us-gov-west-1:111111111111:stack/trailfill/0a1b2c3d-0000-1111-2222-333344445555",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The caller's partition comes from its ARN.
			caller := "arn:" + tc.partition + ":sts::111111111111:assumed-role/ops/alice"
			p, err := PartitionOf(caller)
			if err != nil || p != tc.partition {
				t.Fatalf("PartitionOf(%s) = %q, %v; want %q", caller, p, err, tc.partition)
			}
			if got := RoleARN(p, "111111111111", "trailfill-read"); got != tc.role {
				t.Errorf("RoleARN = %s, want %s", got, tc.role)
			}
			m, err := ParseStateMachineARN(tc.machine)
			if err != nil {
				t.Fatal(err)
			}
			if want := (StateMachineARN{Partition: tc.partition, Region: tc.region, Account: "111111111111", Name: "trailfill-backfill"}); m != want {
				t.Errorf("ParseStateMachineARN = %+v, want %+v", m, want)
			}
			if m.String() != tc.machine {
				t.Errorf("state machine round trip %s, want %s", m, tc.machine)
			}
			e := m.Execution("run-1")
			if e.String() != tc.execution {
				t.Errorf("Execution = %s, want %s", e, tc.execution)
			}
			pe, err := ParseExecutionARN(tc.execution)
			if err != nil || pe != e || pe.StateMachine() != m {
				t.Errorf("ParseExecutionARN = %+v, %v; want %+v of %+v", pe, err, e, m)
			}
			if got := e.ConsoleURL(); got != tc.console {
				t.Errorf("ConsoleURL =\n %s\nwant\n %s", got, tc.console)
			}
			s, err := ParseStackARN(tc.stack)
			if err != nil || s.Name != "trailfill" || s.Partition != tc.partition || s.Region != tc.region || s.String() != tc.stack {
				t.Errorf("ParseStackARN = %+v, %v", s, err)
			}
		})
	}
}

func TestARNsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, arn string
		parse     func(string) error
	}{
		{"execution as state machine", "arn:aws:states:us-east-1:111111111111:execution:sm:x", func(s string) error { _, err := ParseStateMachineARN(s); return err }},
		{"state machine as execution", "arn:aws:states:us-east-1:111111111111:stateMachine:sm", func(s string) error { _, err := ParseExecutionARN(s); return err }},
		{"other service", "arn:aws:lambda:us-east-1:111111111111:function:f", func(s string) error { _, err := ParseStateMachineARN(s); return err }},
		{"short account", "arn:aws:states:us-east-1:1111:stateMachine:sm", func(s string) error { _, err := ParseStateMachineARN(s); return err }},
		{"no region", "arn:aws:states::111111111111:stateMachine:sm", func(s string) error { _, err := ParseStateMachineARN(s); return err }},
		{"execution without name", "arn:aws:states:us-east-1:111111111111:execution:sm:", func(s string) error { _, err := ParseExecutionARN(s); return err }},
		{"not an ARN", "trailfill-backfill", func(s string) error { _, err := ParseExecutionARN(s); return err }},
		{"stack without id", "arn:aws:cloudformation:us-east-1:111111111111:stack/trailfill", func(s string) error { _, err := ParseStackARN(s); return err }},
		{"partition of a name", "alice", func(s string) error { _, err := PartitionOf(s); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.parse(tc.arn); err == nil {
				t.Errorf("%s was accepted", tc.arn)
			}
		})
	}
}
