package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// The archive's write rules, as IAM and S3 enforce them.
//
// Under <prefix>/AWSLogs/ the deployed roles are append-only: they may read
// trail files and create new ones, never overwrite or delete one (native
// files are never touched; trailfill's own are removed only by `trailfill
// reconcile`, with an operator's credentials). S3 cannot condition a PUT or
// DELETE on existing object tags, so "only our own files" is not expressible
// in IAM; "create only" is: a PutObject grant conditioned on s3:if-none-match
// admits only conditional writes (If-None-Match: *), which S3 refuses with 412
// when the key exists ("Enforce conditional writes on Amazon S3 buckets", S3
// User Guide, conditional-writes-enforce.html, example 1). StringEquals "*"
// is stricter than the guide's Null check: "*" is the only value S3 accepts
// on PutObject, and StringEquals compares it literally.
//
// Every write carries x-amz-acl: bucket-owner-full-control, and every
// PutObject grant requires it (s3:x-amz-acl): CloudTrail's own bucket policy
// statement grants s3:PutObject on that condition, many organizations require
// it of every writer, and with ACL-based ownership ("Object writer", "Bucket
// owner preferred") it is what makes the bucket owner own, or fully control,
// a file written from the central account. Buckets with ACLs disabled
// ("Bucket owner enforced") accept exactly this canned ACL ("Controlling
// ownership of objects and disabling ACLs", S3 User Guide).
//
// No s3:PutObjectAcl. The S3 User Guide's "Policy examples for ACLs"
// (example-bucket-policies-condition-keys.html, "Granting s3:PutObject
// permission with a condition requiring the bucket owner to get full
// control") grants a cross-account writer s3:PutObject alone, conditioned on
// the ACL header, and CloudTrail's documented bucket policy
// (create-s3-bucket-policy-for-cloudtrail.html) does the same for its own
// writes with this very header. The PutObject API reference says "to change
// the object's ACL of your PutObject request, you must have s3:PutObjectAcl";
// the public reports of PutObject refused without s3:PutObjectAcl all concern
// ACLs that grant more than the owner's default (public-read and the like,
// aws/aws-cli#813), while bucket-owner-full-control is reported to succeed
// with s3:PutObject alone (aws/aws-sdk-js#256). Granting
// s3:PutObjectAcl would also let the role rewrite the ACL of any existing
// native trail file (PutObjectAcl carries no If-None-Match), so the role is
// denied it under AWSLogs/ outright. docs/deploy.md ("Why no
// s3:PutObjectAcl") gives the fallback form should an account ever refuse the
// header without it.
const (
	// CannedACL is the ACL every archive write sends and every PutObject
	// grant requires.
	CannedACL = "bucket-owner-full-control"
	// condACL and condIfNoneMatch are the S3 condition keys of the x-amz-acl
	// and If-None-Match request headers (Service Authorization Reference,
	// "Condition keys for Amazon S3").
	condACL         = "s3:x-amz-acl"
	condIfNoneMatch = "s3:if-none-match"
)

// s3Grant is one statement of a role's archive permissions. It renders both
// as the role's identity-policy statement and, for a bucket in another
// account, as the bucket-policy statement the bucket owner adds: the two
// always grant the same.
type s3Grant struct {
	sid        string // identity policy Sid; the bucket-policy Sid is a prefix plus this
	actions    []string
	resources  []*string
	conditions map[string]any
}

func (g s3Grant) statement() awsiam.PolicyStatement {
	props := &awsiam.PolicyStatementProps{
		Sid:       jsii.String(g.sid),
		Actions:   jsii.Strings(g.actions...),
		Resources: &g.resources,
	}
	if g.conditions != nil {
		c := g.conditions
		props.Conditions = &c
	}
	return awsiam.NewPolicyStatement(props)
}

// policyStatement renders g for a resource policy (bucket or key policy) of
// another account: the principal is the central account's root, restricted
// to principalArn by aws:PrincipalArn. A role ARN named as Principal is
// stored as the role's unique ID and stops matching when the role is
// re-created ("IAM JSON policy elements: Principal", IAM User Guide, "IAM
// role principals"); the account root with an aws:PrincipalArn condition
// survives a re-created role.
func (g s3Grant) policyStatement(sidPrefix string, account, principalArn *string) map[string]any {
	cond := map[string]any{"ArnEquals": map[string]any{"aws:PrincipalArn": principalArn}}
	for k, v := range g.conditions {
		cond[k] = v
	}
	var action any = g.actions
	if len(g.actions) == 1 {
		action = g.actions[0]
	}
	var resource any = g.resources
	if len(g.resources) == 1 {
		resource = g.resources[0]
	}
	return map[string]any{
		"Sid":       sidPrefix + g.sid,
		"Effect":    "Allow",
		"Principal": map[string]any{"AWS": accountRoot(account)},
		"Action":    action,
		"Resource":  resource,
		"Condition": cond,
	}
}

// accountRoot is arn:<partition>:iam::<account>:root.
func accountRoot(account *string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":iam::"), account, jsii.String(":root")})
}

// objectArn is the ARN pattern of the keys under folder (with its trailing
// '/', or "" for the whole bucket) in the bucket bucketArn.
func objectArn(bucketArn *string, folder string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{bucketArn, jsii.String("/" + folder + "*")})
}

// createOnly is the condition of every PutObject grant that may create files
// under AWSLogs/ (or another append-only folder).
func createOnly() map[string]any {
	return map[string]any{"StringEquals": map[string]any{condIfNoneMatch: "*", condACL: CannedACL}}
}

// withACL is the condition of a PutObject grant that may replace objects
// (trailfill's own state under trailfill/).
func withACL() map[string]any {
	return map[string]any{"StringEquals": map[string]any{condACL: CannedACL}}
}

// backfillGrants are the backfill function's archive permissions under the
// key prefix kp ("" or "<prefix>/"):
//   - read trail files (native ones included: native-aware backfill reads
//     them) and trailfill's own state;
//   - create trail files, create only;
//   - replace and delete its state under trailfill/ (manifests, indexes,
//     claims, reconcile intents);
//   - list exactly those two folders. StringLike on s3:prefix, not
//     StringLikeIfExists: a LIST without a prefix (the whole bucket) is
//     refused. Without s3:ListBucket on a key, S3 answers a GET of a missing
//     key with 403 instead of 404 ("GetObject", S3 API Reference,
//     "Permissions"), and the ListBucket grant does not count for GETs
//     (no s3:prefix there): the function checks existence with prefixed
//     LISTs, not by GET-ing for 404.
func backfillGrants(bucketArn *string, kp string) []s3Grant {
	trail := objectArn(bucketArn, kp+TrailFolder)
	state := objectArn(bucketArn, kp+ManifestFolder)
	return []s3Grant{
		{sid: "ArchiveRead", actions: []string{"s3:GetObject"}, resources: []*string{trail, state}},
		{sid: "ArchiveCreateTrailFiles", actions: []string{"s3:PutObject"}, resources: []*string{trail}, conditions: createOnly()},
		{sid: "ArchiveWriteState", actions: []string{"s3:PutObject"}, resources: []*string{state}, conditions: withACL()},
		{sid: "ArchiveDeleteState", actions: []string{"s3:DeleteObject"}, resources: []*string{state}},
		{sid: "ArchiveList", actions: []string{"s3:ListBucket"}, resources: []*string{bucketArn}, conditions: map[string]any{
			"StringLike": map[string]any{"s3:prefix": []string{kp + TrailFolder + "*", kp + ManifestFolder + "*"}},
		}},
	}
}

// protectTrailFiles are explicit denies in a role's own policy: whatever
// else is ever attached to the role, it cannot delete a trail file, change
// its ACL, or write one without If-None-Match: * (a Deny overrides any Allow,
// "Policy evaluation logic", IAM User Guide). StringNotEquals matches when
// the header is absent too ("Condition operators", IAM User Guide: negated
// operators return true for a missing key).
func protectTrailFiles(role awsiam.Role, trailArn *string) {
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("NeverDeleteTrailFiles"),
		Effect:    awsiam.Effect_DENY,
		Actions:   jsii.Strings("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
		Resources: &[]*string{trailArn},
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("NeverOverwriteTrailFiles"),
		Effect:     awsiam.Effect_DENY,
		Actions:    jsii.Strings("s3:PutObject"),
		Resources:  &[]*string{trailArn},
		Conditions: &map[string]any{"StringNotEquals": map[string]any{condIfNoneMatch: "*"}},
	}))
}

// kmsViaS3 limits a KMS grant to requests S3 makes on the caller's behalf in
// this region (kms:ViaService, "AWS KMS condition keys", KMS Developer Guide);
// the URL suffix gives amazonaws.com.cn in the China partition.
func kmsViaS3() map[string]any {
	return map[string]any{"StringEquals": map[string]any{
		"kms:ViaService": awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3."), awscdk.Aws_REGION(), jsii.String("."), awscdk.Aws_URL_SUFFIX()}),
	}}
}

// keyPolicyStatement is what the owner of the archive's KMS key adds to its
// key policy for principalArn (a role of the central account): the actions
// of the role's own key grant, only through S3.
func keyPolicyStatement(sid string, actions []string, account, principalArn *string) map[string]any {
	g := s3Grant{sid: sid, actions: actions, resources: []*string{jsii.String("*")}, conditions: kmsViaS3()}
	return g.policyStatement("", account, principalArn)
}

// bucketPolicyStatements renders grants for the owner of an existing bucket.
func bucketPolicyStatements(grants []s3Grant, sidPrefix string, account, principalArn *string) []any {
	out := make([]any, 0, len(grants))
	for _, g := range grants {
		out = append(out, g.policyStatement(sidPrefix, account, principalArn))
	}
	return out
}
