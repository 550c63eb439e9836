// Package statemachine holds the backfill state machine definition (Amazon States
// Language, JSONata), embedded so that the CDK stack deploys and `trailfill run`
// executes the very same document.
package statemachine

import (
	_ "embed"
	"strconv"
	"strings"

	"github.com/trailfill/trailfill/internal/contract"
)

// Definition is statemachine/backfill.asl.json. Its ${Name} placeholders are
// filled from Substitutions: by CloudFormation (the CDK stack's
// DefinitionSubstitutions) when deployed, by Render for the local executor.
//
//go:embed backfill.asl.json
var Definition string

// Substitutions are the placeholders of Definition and their values: the
// backfill function's ARN and the staging bucket's name (CloudFormation
// tokens when deployed), and the defaults, folder and error names of the
// contract, which the definition must not repeat as literals.
//
// The staging bucket is named by the definition, not by the execution
// input, so that the state machine's role needs its permissions on that one
// bucket only (ItemReader and ResultWriter run with the role's credentials:
// "IAM policies for using Distributed Map states", Step Functions Developer
// Guide).
func Substitutions(functionArn, stagingBucket string) map[string]string {
	return map[string]string{
		contract.FunctionPlaceholder:      functionArn,
		contract.StagingBucketPlaceholder: stagingBucket,
		"StagingResultsFolder":            contract.StagingResultsFolder,
		"DefaultWindowMinutes":            strconv.Itoa(contract.DefaultWindowMinutes),
		"DefaultMaxConcurrency":           strconv.Itoa(contract.DefaultMaxConcurrency),
		"ErrorPartitionFailed":            contract.ErrorPartitionFailed,
		"ErrorPartitionsFailed":           contract.ErrorPartitionsFailed,
	}
}

// Render is Definition with every placeholder filled: the function bound to
// functionArn, the staging bucket stagingBucket.
func Render(functionArn, stagingBucket string) string {
	return Substitute(Definition, Substitutions(functionArn, stagingBucket))
}

// Substitute replaces ${Key} placeholders, as CloudFormation's
// DefinitionSubstitutions do.
func Substitute(def string, subs map[string]string) string {
	for k, v := range subs {
		def = strings.ReplaceAll(def, "${"+k+"}", v)
	}
	return def
}
