package stacks

import (
	"strings"

	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// nagRule is a cdk-nag finding accepted on purpose, with the reason. The
// stacks are checked with the AwsSolutions pack (stacks/nag_test.go); every
// suppression sits next to the construct it concerns. appliesTo narrows a
// suppression to the listed findings (for AwsSolutions-IAM5, the wildcard
// actions and resources: "Action::..." and "Resource::..." as cdk-nag prints
// them; one starting with '/' is a regular expression, /.../).
type nagRule struct {
	id, reason string
	appliesTo  []string
}

func nag(id, reason string, appliesTo ...string) nagRule {
	return nagRule{id: id, reason: reason, appliesTo: appliesTo}
}

// nagSuppress records rules on c and its children (a role and its default
// policy, a bucket and its policy).
func nagSuppress(c constructs.IConstruct, rules ...nagRule) {
	sup := make([]*cdknag.NagPackSuppression, 0, len(rules))
	for _, r := range rules {
		s := &cdknag.NagPackSuppression{Id: jsii.String(r.id), Reason: jsii.String(r.reason)}
		if len(r.appliesTo) > 0 {
			a := make([]any, len(r.appliesTo))
			for i, v := range r.appliesTo {
				if strings.HasPrefix(v, "/") {
					a[i] = &cdknag.RegexAppliesTo{Regex: jsii.String(v)}
				} else {
					a[i] = v
				}
			}
			s.AppliesTo = &a
		}
		sup = append(sup, s)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &sup, jsii.Bool(true))
}

// folderFinding is the AwsSolutions-IAM5 finding, as a cdk-nag regex
// appliesTo, of an S3 grant on every key under folder ("" for the whole
// bucket) of whatever bucket: a bucket token (<Logical.Arn>), an imported
// value or arn:<AWS::Partition>:s3:::name, none of which holds a '/'.
func folderFinding(folder string) string {
	return `/^Resource::[^\/]+\/` + escapeRegex(folder) + `\*$/`
}

// escapeRegex escapes s for an ECMAScript regular expression literal.
func escapeRegex(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\^$.|?*+()[]{}/`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
