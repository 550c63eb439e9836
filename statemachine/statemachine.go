// Package statemachine holds the backfill state machine definition (Amazon States
// Language, JSONata), embedded so that the CDK stack deploys and `trailfill run`
// executes the very same document.
package statemachine

import (
	_ "embed"
	"strings"
)

// Definition is statemachine/backfill.asl.json, with the placeholder
// ${BackfillFunctionArn} for the backfill Lambda (a CDK DefinitionSubstitution).
//
//go:embed backfill.asl.json
var Definition string

// FunctionPlaceholder is the substitution key of the backfill function's ARN.
const FunctionPlaceholder = "BackfillFunctionArn"

// LocalFunctionName is what `trailfill run` substitutes for the function ARN; the
// local executor binds it to the in-process handler.
const LocalFunctionName = "trailfill-backfill-local"

// Substitute replaces ${Key} placeholders, as CloudFormation's
// DefinitionSubstitutions do.
func Substitute(def string, subs map[string]string) string {
	for k, v := range subs {
		def = strings.ReplaceAll(def, "${"+k+"}", v)
	}
	return def
}
