package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"
)

// Server access log folders in the access-logs bucket.
const (
	accessLogsArchivePrefix = "archive/"
	accessLogsStagingPrefix = "staging/"
	// accessLogsStagingDays keeps the staging bucket's access logs a while
	// longer than the staged objects themselves; the archive's are kept.
	accessLogsStagingDays = 90
)

// newAccessLogsBucket is the target of the server access logs of the buckets
// the stack creates (the archive's are an audit record of who read and wrote
// recovered files). S3 delivers them with the logging service principal,
// which needs "Bucket owner enforced" ownership and a bucket policy (CDK adds
// it), and accepts only SSE-S3 on the target bucket ("Enabling Amazon S3
// server access logging", S3 User Guide). Retained with the stack: it is part
// of the archive's record.
func newAccessLogsBucket(stack awscdk.Stack) awss3.Bucket {
	b := awss3.NewBucket(stack, jsii.String("AccessLogs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:         jsii.String("ExpireStagingAccessLogs"),
			Prefix:     jsii.String(accessLogsStagingPrefix),
			Expiration: awscdk.Duration_Days(jsii.Number(accessLogsStagingDays)),
		}},
	})
	nagSuppress(b, nag("AwsSolutions-S1", "This bucket is the target of the other buckets' server access logs: logging its own accesses would need yet another bucket, and that one another."))
	return b
}

// newStagingBucket is the state machine's staging bucket: the Distributed
// Map's items (ItemReader) and child results (ResultWriter), which must be in
// the state machine's account and region while the archive often is not
// (facts.md 3). Private, TLS-only, SSE-S3, unversioned (nothing here is worth
// a second version), objects expire after StagingExpirationDays and
// incomplete multipart uploads (ResultWriter uploads in parts) after a day.
//
// Retained when the stack is deleted rather than destroyed: CloudFormation
// cannot delete a bucket that still holds objects, so DESTROY would fail `cdk
// destroy` for up to 30 days after the last backfill, and emptying it on
// deletion (autoDeleteObjects) would add a custom-resource Lambda allowed to
// delete everything in it. Left behind, it empties itself through its
// lifecycle rule and then costs nothing.
func newStagingBucket(stack awscdk.Stack, accessLogs awss3.Bucket) awss3.Bucket {
	return awss3.NewBucket(stack, jsii.String("Staging"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		Versioned:         jsii.Bool(false),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("ExpireStagedObjects"),
			Expiration:                          awscdk.Duration_Days(jsii.Number(StagingExpirationDays)),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String(accessLogsStagingPrefix),
	})
}

// grantStaging gives the state machine's role what the Distributed Map needs
// in the staging bucket ("IAM policies for using Distributed Map states",
// Step Functions Developer Guide, iam-policies-eg-dist-map.html): s3:GetObject
// on the items file for ItemReader; s3:PutObject, s3:GetObject,
// s3:ListMultipartUploadParts and s3:AbortMultipartUpload for ResultWriter,
// which uploads its result files in parts (aws-cdk-lib's ResultWriter grants
// the same four actions). Each only under its own folder.
func grantStaging(sm awsstepfunctions.StateMachine, staging awss3.Bucket) {
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("StagingReadItems"),
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &[]*string{staging.ArnForObjects(jsii.String(StagingInputsFolder + "*"))},
	}))
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("StagingWriteResults"),
		Actions:   jsii.Strings("s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"),
		Resources: &[]*string{staging.ArnForObjects(jsii.String(StagingResultsFolder + "*"))},
	}))
}
