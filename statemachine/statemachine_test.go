package statemachine

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/trailfill/trailfill/internal/contract"
)

// Every placeholder of the definition has a substitution and every
// substitution a placeholder: a definition rendered for the local executor
// or deployed by CloudFormation holds no ${...} left over.
func TestSubstitutionsMatchThePlaceholders(t *testing.T) {
	var used []string
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z]+)\}`).FindAllStringSubmatch(Definition, -1) {
		used = append(used, m[1])
	}
	subs := Substitutions("arn:aws:lambda:us-east-1:111122223333:function:f", "staging-bucket")
	var names []string
	for k := range subs {
		names = append(names, k)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	for _, u := range used {
		if _, ok := subs[u]; !ok {
			t.Errorf("placeholder ${%s} has no substitution", u)
		}
		seen[u] = true
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("substitution %s names no placeholder", n)
		}
	}
	def := Render("arn:aws:lambda:us-east-1:111122223333:function:f", "staging-bucket")
	if strings.Contains(def, "${") {
		t.Fatal("the rendered definition holds a placeholder")
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(def), &doc); err != nil {
		t.Fatalf("the rendered definition is not JSON: %v", err)
	}
	// The staging bucket is named where the Distributed Map reads and writes
	// S3, and the results go under the contract's folder.
	m := doc["States"].(map[string]any)["Backfill partitions"].(map[string]any)
	reader := m["ItemReader"].(map[string]any)["Arguments"].(map[string]any)
	writer := m["ResultWriter"].(map[string]any)["Arguments"].(map[string]any)
	if reader["Bucket"] != "staging-bucket" || writer["Bucket"] != "staging-bucket" ||
		writer["Prefix"] != "{% '"+contract.StagingResultsFolder+"' & $states.context.Execution.Name %}" {
		t.Errorf("ItemReader %v, ResultWriter %v", reader, writer)
	}
}
