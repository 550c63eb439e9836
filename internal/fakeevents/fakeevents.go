// Package fakeevents generates realistic CloudTrail management-event records for
// the demo and the benchmarks (tests use real recorded events instead). Output is
// deterministic for a given seed.
package fakeevents

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

type call struct {
	source, name, agent string
	readOnly            bool
	global              bool // recorded in us-east-1 only (IAM, STS global endpoint, sign-in)
	params              func(r *rand.Rand) any
}

var calls = []call{
	{"ec2.amazonaws.com", "DescribeInstances", "aws-cli/2.22.4 md/awscrt#0.23.4 ua/2.0 os/linux#6.8", true, false, func(r *rand.Rand) any {
		return map[string]any{"instancesSet": map[string]any{}, "filterSet": map[string]any{}}
	}},
	{"ec2.amazonaws.com", "RunInstances", "console.ec2.amazonaws.com", false, false, func(r *rand.Rand) any {
		return map[string]any{"instanceType": []string{"t3.micro", "m7g.large", "c7i.xlarge"}[r.IntN(3)], "minCount": 1, "maxCount": 1}
	}},
	{"s3.amazonaws.com", "ListBuckets", "[aws-sdk-go-v2/1.36.3 ua/2.1 os/linux lang/go#1.24]", true, false, func(*rand.Rand) any {
		return map[string]any{"Host": "s3.amazonaws.com"}
	}},
	{"s3.amazonaws.com", "PutBucketPolicy", "[aws-cli/2.22.4]", false, false, func(r *rand.Rand) any {
		return map[string]any{"bucketName": fmt.Sprintf("logs-%06d", r.IntN(1e6)), "policy": ""}
	}},
	{"kms.amazonaws.com", "Decrypt", "lambda.amazonaws.com", true, false, func(*rand.Rand) any {
		return map[string]any{"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
	}},
	{"sts.amazonaws.com", "AssumeRole", "aws-sdk-java/2.29.0", true, false, func(r *rand.Rand) any {
		return map[string]any{"roleArn": "arn:aws:iam::123456789012:role/deploy", "roleSessionName": fmt.Sprintf("ci-%d", r.IntN(1e5)), "durationSeconds": 3600}
	}},
	{"iam.amazonaws.com", "ListRoles", "console.amazonaws.com", true, true, func(*rand.Rand) any {
		return map[string]any{"maxItems": 100}
	}},
	{"iam.amazonaws.com", "AttachRolePolicy", "cloudformation.amazonaws.com", false, true, func(*rand.Rand) any {
		return map[string]any{"roleName": "app-role", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}
	}},
	{"signin.amazonaws.com", "ConsoleLogin", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/132.0", false, true, func(*rand.Rand) any {
		return nil
	}},
	{"lambda.amazonaws.com", "ListFunctions20150331", "aws-sdk-go-v2/1.36.3", true, false, func(*rand.Rand) any {
		return nil
	}},
	{"logs.amazonaws.com", "CreateLogStream", "aws-sdk-go-v2/1.36.3", false, false, func(r *rand.Rand) any {
		return map[string]any{"logGroupName": "/aws/lambda/app", "logStreamName": fmt.Sprintf("2025/01/01/[$LATEST]%032x", r.Uint64())}
	}},
	{"ssm.amazonaws.com", "GetParameter", "aws-sdk-go-v2/1.36.3", true, false, func(*rand.Rand) any {
		return map[string]any{"name": "/app/config", "withDecryption": true}
	}},
	{"cloudtrail.amazonaws.com", "LookupEvents", "aws-cli/2.22.4", true, false, func(*rand.Rand) any {
		return map[string]any{"maxResults": 50}
	}},
}

// record mirrors the field order of a native CloudTrail record.
type record struct {
	EventVersion        string         `json:"eventVersion"`
	UserIdentity        map[string]any `json:"userIdentity"`
	EventTime           string         `json:"eventTime"`
	EventSource         string         `json:"eventSource"`
	EventName           string         `json:"eventName"`
	AWSRegion           string         `json:"awsRegion"`
	SourceIPAddress     string         `json:"sourceIPAddress"`
	UserAgent           string         `json:"userAgent"`
	RequestParameters   any            `json:"requestParameters"`
	ResponseElements    any            `json:"responseElements"`
	RequestID           string         `json:"requestID"`
	EventID             string         `json:"eventID"`
	ReadOnly            bool           `json:"readOnly"`
	EventType           string         `json:"eventType"`
	ManagementEvent     bool           `json:"managementEvent"`
	RecipientAccountID  string         `json:"recipientAccountId"`
	EventCategory       string         `json:"eventCategory"`
	TLSDetails          map[string]any `json:"tlsDetails,omitempty"`
	SessionCredFromCons string         `json:"sessionCredentialFromConsole,omitempty"`
}

// Generator makes records for one account and region.
type Generator struct {
	r       *rand.Rand
	account string
	region  string
}

// New returns a generator seeded deterministically.
func New(seed uint64, account, region string) *Generator {
	return &Generator{r: rand.New(rand.NewPCG(seed, uint64(len(account))*31+uint64(len(region)))), account: account, region: region}
}

func (g *Generator) uuid() string {
	a, b := g.r.Uint64(), g.r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, (b>>48)&0x3fff|0x8000, b&0xffffffffffff)
}

// Record returns one record at time t.
func (g *Generator) Record(t time.Time) json.RawMessage {
	var c call
	for {
		c = calls[g.r.IntN(len(calls))]
		if !c.global || g.region == "us-east-1" {
			break
		}
	}
	user := []string{"alice", "bob", "deploy-bot", "security-audit"}[g.r.IntN(4)]
	rec := record{
		EventVersion: "1.09",
		UserIdentity: map[string]any{
			"type":        "IAMUser",
			"principalId": fmt.Sprintf("AIDA%016X", g.r.Uint64()),
			"arn":         fmt.Sprintf("arn:aws:iam::%s:user/%s", g.account, user),
			"accountId":   g.account,
			"accessKeyId": fmt.Sprintf("AKIA%016X", g.r.Uint64()),
			"userName":    user,
		},
		EventTime:          t.UTC().Format(time.RFC3339),
		EventSource:        c.source,
		EventName:          c.name,
		AWSRegion:          g.region,
		SourceIPAddress:    fmt.Sprintf("198.51.100.%d", g.r.IntN(254)+1),
		UserAgent:          c.agent,
		RequestParameters:  c.params(g.r),
		RequestID:          g.uuid(),
		EventID:            g.uuid(),
		ReadOnly:           c.readOnly,
		EventType:          "AwsApiCall",
		ManagementEvent:    true,
		RecipientAccountID: g.account,
		EventCategory:      "Management",
		TLSDetails: map[string]any{
			"tlsVersion":               "TLSv1.3",
			"cipherSuite":              "TLS_AES_128_GCM_SHA256",
			"clientProvidedHostHeader": c.source,
		},
	}
	if c.name == "ConsoleLogin" {
		rec.EventType = "AwsConsoleSignIn"
		rec.ResponseElements = map[string]any{"ConsoleLogin": "Success"}
		rec.TLSDetails = nil
	}
	b, _ := json.Marshal(rec) // a struct of strings, maps and numbers always encodes
	return b
}

// Spread returns n records with times uniformly random in [from, to), whole seconds.
func (g *Generator) Spread(n int, from, to time.Time) []json.RawMessage {
	span := int64(to.Sub(from) / time.Second)
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = g.Record(from.Add(time.Duration(g.r.Int64N(span)) * time.Second))
	}
	return out
}
