package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testEquipment are the packages that exist for tests and the demo: the
// emulators and the test kit. The launcher links them for `trailfill demo`;
// the shipped Lambda bootstraps must not.
var testEquipment = []string{
	"github.com/trailfill/trailfill/internal/emulator",
	"github.com/trailfill/trailfill/internal/testkit",
	"github.com/trailfill/trailfill/internal/gitlab/gitlabemu",
	"github.com/trailfill/trailfill/internal/fakeevents",
}

// TestLambdasShipNoTestEquipment lists what every Lambda bootstrap links,
// built as make build-lambda builds it, and fails on test equipment.
func TestLambdasShipNoTestEquipment(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the Lambdas' dependencies: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", "-tags", "lambda.norpc", "./functions/...")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./functions/...: %v", err)
	}
	deps := strings.Fields(string(out))
	seen := map[string]bool{}
	for _, d := range deps {
		seen[d] = true
	}
	for _, want := range []string{"github.com/trailfill/trailfill/functions/backfill", "github.com/trailfill/trailfill/functions/gitlab-receiver"} {
		if !seen[want] {
			t.Fatalf("go list did not list %s: %s", want, out)
		}
	}
	for _, d := range deps {
		for _, bad := range testEquipment {
			if d == bad || strings.HasPrefix(d, bad+"/") {
				t.Errorf("a Lambda bootstrap links %s, test equipment", d)
			}
		}
	}
}
