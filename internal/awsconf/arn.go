package awsconf

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// Every ARN trailfill builds or reads goes through aws/arn, in the partition
// of the caller (the Arn of sts:GetCallerIdentity): ARNs differ by partition
// ("aws", "aws-cn", "aws-us-gov"; https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).

// Partitions trailfill knows the console of.
const (
	PartitionAWS      = "aws"
	PartitionChina    = "aws-cn"
	PartitionGovCloud = "aws-us-gov"
)

// PartitionOf returns the partition of an ARN, such as the caller's.
func PartitionOf(s string) (string, error) {
	a, err := arn.Parse(s)
	if err != nil {
		return "", fmt.Errorf("read the partition of %q: %w", s, err)
	}
	return a.Partition, nil
}

// RoleARN is the ARN of an IAM role (IAM is global: no region).
func RoleARN(partition, account, roleName string) string {
	return arn.ARN{Partition: partition, Service: "iam", AccountID: account, Resource: "role/" + roleName}.String()
}

// StateMachineARN is a parsed Step Functions state machine ARN,
// arn:<partition>:states:<region>:<account>:stateMachine:<name>.
type StateMachineARN struct {
	Partition, Region, Account, Name string
}

// ParseStateMachineARN parses a state machine ARN.
func ParseStateMachineARN(s string) (StateMachineARN, error) {
	a, err := parseStates(s)
	if err != nil {
		return StateMachineARN{}, err
	}
	kind, name, ok := strings.Cut(a.Resource, ":")
	if !ok || kind != "stateMachine" || name == "" || strings.Contains(name, ":") {
		return StateMachineARN{}, fmt.Errorf("%q is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)", s)
	}
	return StateMachineARN{Partition: a.Partition, Region: a.Region, Account: a.AccountID, Name: name}, nil
}

func (m StateMachineARN) String() string {
	return arn.ARN{Partition: m.Partition, Service: "states", Region: m.Region, AccountID: m.Account, Resource: "stateMachine:" + m.Name}.String()
}

// Execution is the ARN of the state machine's execution of that name.
func (m StateMachineARN) Execution(name string) ExecutionARN {
	return ExecutionARN{Partition: m.Partition, Region: m.Region, Account: m.Account, Machine: m.Name, Name: name}
}

// ExecutionARN is a parsed Step Functions execution ARN,
// arn:<partition>:states:<region>:<account>:execution:<state machine>:<name>.
type ExecutionARN struct {
	Partition, Region, Account, Machine, Name string
}

// ParseExecutionARN parses an execution ARN.
func ParseExecutionARN(s string) (ExecutionARN, error) {
	a, err := parseStates(s)
	if err != nil {
		return ExecutionARN{}, err
	}
	p := strings.Split(a.Resource, ":")
	if len(p) != 3 || p[0] != "execution" || p[1] == "" || p[2] == "" {
		return ExecutionARN{}, fmt.Errorf("%q is not an execution ARN (arn:aws:states:<region>:<account>:execution:<state machine>:<name>)", s)
	}
	return ExecutionARN{Partition: a.Partition, Region: a.Region, Account: a.AccountID, Machine: p[1], Name: p[2]}, nil
}

func (e ExecutionARN) String() string {
	return arn.ARN{Partition: e.Partition, Service: "states", Region: e.Region, AccountID: e.Account, Resource: "execution:" + e.Machine + ":" + e.Name}.String()
}

// StateMachine is the ARN of the execution's state machine.
func (e ExecutionARN) StateMachine() StateMachineARN {
	return StateMachineARN{Partition: e.Partition, Region: e.Region, Account: e.Account, Name: e.Machine}
}

// ConsoleURL is the execution's page in the Step Functions console of its
// partition.
func (e ExecutionARN) ConsoleURL() string {
	return ConsoleURL(e.Partition, e.Region, "/states/home", "/v2/executions/details/"+e.String())
}

// ConsoleHost is the AWS Management Console host of a region: the regional
// endpoint <region>.console.aws.amazon.com in the aws partition
// (https://docs.aws.amazon.com/general/latest/gr/mgmt-console.html),
// console.amazonaws.cn in China and console.amazonaws-us-gov.com in GovCloud
// (US), where the region is chosen by the region query parameter.
func ConsoleHost(partition, region string) string {
	switch partition {
	case PartitionChina:
		return "console.amazonaws.cn"
	case PartitionGovCloud:
		return "console.amazonaws-us-gov.com"
	}
	return region + ".console.aws.amazon.com"
}

// ConsoleURL is https://<console host><path>?region=<region>#<fragment>.
func ConsoleURL(partition, region, path, fragment string) string {
	u := url.URL{Scheme: "https", Host: ConsoleHost(partition, region), Path: path, RawQuery: "region=" + url.QueryEscape(region), Fragment: fragment}
	return u.String()
}

// StackARN is a parsed CloudFormation stack ID,
// arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>.
type StackARN struct {
	Partition, Region, Account, Name, ID string
}

// ParseStackARN parses a stack ID.
func ParseStackARN(s string) (StackARN, error) {
	a, err := arn.Parse(s)
	if err != nil || a.Service != "cloudformation" || a.Region == "" || !isAccount(a.AccountID) {
		return StackARN{}, fmt.Errorf("%q is not a CloudFormation stack ID (arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>)", s)
	}
	p := strings.Split(a.Resource, "/")
	if len(p) != 3 || p[0] != "stack" || p[1] == "" || p[2] == "" {
		return StackARN{}, fmt.Errorf("%q is not a CloudFormation stack ID (arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>)", s)
	}
	return StackARN{Partition: a.Partition, Region: a.Region, Account: a.AccountID, Name: p[1], ID: p[2]}, nil
}

func (s StackARN) String() string {
	return arn.ARN{Partition: s.Partition, Service: "cloudformation", Region: s.Region, AccountID: s.Account, Resource: "stack/" + s.Name + "/" + s.ID}.String()
}

func parseStates(s string) (arn.ARN, error) {
	a, err := arn.Parse(s)
	if err != nil {
		return arn.ARN{}, fmt.Errorf("%q is not an ARN: %w", s, err)
	}
	if a.Service != "states" || a.Region == "" || !isAccount(a.AccountID) || !strings.HasPrefix(a.Partition, "aws") {
		return arn.ARN{}, fmt.Errorf("%q is not a Step Functions ARN (arn:aws:states:<region>:<account>:...)", s)
	}
	return a, nil
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
