package stacks

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// nagFindings returns the unsuppressed AwsSolutions errors and warnings of
// the stacks (synthesized with the checks as an aspect), one line each.
func nagFindings(stacks []awscdk.Stack) []string {
	var findings []string
	for _, st := range stacks {
		ann := assertions.Annotations_FromStack(st)
		match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
		for level, found := range map[string]any{
			"error":   ann.FindError(jsii.String("*"), match),
			"warning": ann.FindWarning(jsii.String("*"), match),
		} {
			// The messages' Go type (cxapi.SynthesisMessage) is deprecated
			// in favour of a JavaScript-only one: read them as JSON.
			var msgs []struct {
				ID    string `json:"id"`
				Entry struct {
					Data any `json:"data"`
				} `json:"entry"`
			}
			b, err := json.Marshal(found)
			if err == nil {
				err = json.Unmarshal(b, &msgs)
			}
			if err != nil {
				findings = append(findings, fmt.Sprintf("%s: unreadable cdk-nag messages: %v", *st.StackName(), err))
			}
			for _, msg := range msgs {
				// "AwsSolutions-IAM5[Resource::*]: The IAM entity ...": the
				// rule and finding, without the rule's explanation.
				text, _, _ := strings.Cut(fmt.Sprint(msg.Entry.Data), ": ")
				findings = append(findings, fmt.Sprintf("%s %s %s: %s", *st.StackName(), level, msg.ID, text))
			}
		}
	}
	sort.Strings(findings)
	return findings
}

// TestAwsSolutionsChecks applies cdk-nag's AwsSolutions pack to every stack
// of every synth mode and fails on any error or warning that is not
// suppressed (with its reason) next to its construct.
func TestAwsSolutionsChecks(t *testing.T) {
	skipShort(t)
	t.Run("the check sees findings", func(t *testing.T) {
		t.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
		app := awscdk.NewApp(nil)
		stack := awscdk.NewStack(app, jsii.String("bare"), nil)
		awss3.NewBucket(stack, jsii.String("Bare"), nil)
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(nil), nil)
		got := strings.Join(nagFindings([]awscdk.Stack{stack}), "\n")
		for _, rule := range []string{"AwsSolutions-S1", "AwsSolutions-S10"} {
			if !strings.Contains(got, rule) {
				t.Errorf("a bare bucket has no %s finding: %s", rule, got)
			}
		}
	})
	for _, m := range synthModes {
		t.Run(m.name, func(t *testing.T) {
			s := synthApp(t, m.kv, true)
			if findings := nagFindings(s.stacks); len(findings) > 0 {
				t.Errorf("%d unsuppressed cdk-nag findings:\n%s", len(findings), strings.Join(findings, "\n"))
			}
		})
	}
}
