# trailfill — every target prints what it does.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools
CDK_VERSION := 2.1148.1
ASL_VALIDATOR_VERSION := 4.0.0
CDK := $(TOOLS)/node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1

.PHONY: all build build-lambda lambda-e2e e2e demo test lint bench tools synth diff deploy destroy validate-asl clean

all: build

build: ## the launcher, bin/trailfill
	@echo "==> go build -o bin/trailfill ./cmd/trailfill"
	$(GO) build -o bin/trailfill ./cmd/trailfill

build-lambda: ## Lambda binaries for provided.al2023 / arm64
	@echo "==> building Lambda binaries (linux/arm64, -tags lambda.norpc) into build/"
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags='-s -w' -o build/backfill/bootstrap ./functions/backfill
	@if [ -d functions/gitlab-receiver ]; then \
	  echo "GOOS=linux GOARCH=arm64 go build ./functions/gitlab-receiver"; \
	  GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags='-s -w' -o build/gitlab-receiver/bootstrap ./functions/gitlab-receiver; fi

# The Lambda Runtime Interface Emulator (Linux only), pinned; installed into .tools/bin.
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
RIE := $(TOOLS)/bin/aws-lambda-rie
HOST_BOOTSTRAPS := build/host

lambda-e2e: ## the real bootstraps under aws-lambda-rie against the emulators (tests tagged lambdae2e)
	@echo "==> aws-lambda-rie@$(RIE_VERSION) into .tools/bin; bootstraps as build-lambda does but for the host into $(HOST_BOOTSTRAPS)/; go test -tags lambdae2e -race ./internal/e2e/..."
	GOBIN=$(TOOLS)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)
	GOOS=$$($(GO) env GOHOSTOS) GOARCH=$$($(GO) env GOHOSTARCH) CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags='-s -w' -o $(HOST_BOOTSTRAPS)/backfill/bootstrap ./functions/backfill
	GOOS=$$($(GO) env GOHOSTOS) GOARCH=$$($(GO) env GOHOSTARCH) CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -ldflags='-s -w' -o $(HOST_BOOTSTRAPS)/gitlab-receiver/bootstrap ./functions/gitlab-receiver
	TRAILFILL_E2E_RIE=$(RIE) \
	TRAILFILL_E2E_BACKFILL_BOOTSTRAP=$(CURDIR)/$(HOST_BOOTSTRAPS)/backfill/bootstrap \
	TRAILFILL_E2E_GITLAB_BOOTSTRAP=$(CURDIR)/$(HOST_BOOTSTRAPS)/gitlab-receiver/bootstrap \
	$(GO) test -tags lambdae2e -race -count=1 -timeout 10m ./internal/e2e/...

e2e: lambda-e2e ## the slower end-to-end suites: lambda-e2e, and launcher processes paused (SIGSTOP) and killed beside other runs
	@echo "==> go test -tags e2e -race ./internal/e2e/... (launcher processes against the emulators); go test -tags e2e ./internal/plan/... (plans of 1,000 and 5,000 accounts)"
	$(GO) test -tags e2e -race -count=1 -timeout 15m ./internal/e2e/...
	$(GO) test -tags e2e -count=1 -timeout 15m -run TestPlanAtScale -v ./internal/plan/...
	@echo "==> go test -tags e2e -run TestPlanningArchivedDays ./internal/engine/ (an invocation plans 90 archived days: 4,320 manifests)"
	$(GO) test -tags e2e -race -count=1 -timeout 15m -run TestPlanningArchivedDays -v ./internal/engine/
	@echo "==> go test -tags e2e -run 'TestScale|TestPlanNinetyDays' ./internal/cli/ (one execution of 2,000 partitions, 50 failing: start + watch on emulated Step Functions, and run; 90 days of 14 accounts in every region planned)"
	$(GO) test -tags e2e -count=1 -timeout 15m -run 'TestScale|TestPlanNinetyDays' ./internal/cli/

demo: ## emulated CloudTrail + a real backfill into ./trailfill-demo
	@echo "==> trailfill demo (emulators on 127.0.0.1, output in ./trailfill-demo)"
	$(GO) run ./cmd/trailfill demo

test: ## all tests, race detector on
	@echo "==> go test -race ./..."
	$(GO) test -race -timeout 10m ./...

lint: ## gofmt, go vet, staticcheck
	@echo "==> gofmt -l, go vet, staticcheck"
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$$($(GO) env GOPATH)/bin/staticcheck ./...

bench: ## throughput and memory figures against the emulator
	@echo "==> go test -run '^$$' -bench . -benchtime 1x ./internal/bench (prints the figures table)"
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./internal/bench

tools: $(CDK) ## pinned CDK CLI and ASL validator under .tools/ (outside the Go module walk)
$(CDK):
	@echo "==> npm install aws-cdk@$(CDK_VERSION) asl-validator@$(ASL_VALIDATOR_VERSION) into .tools/"
	mkdir -p $(TOOLS)
	cd $(TOOLS) && [ -f package.json ] || echo '{"name":"trailfill-tools","private":true}' > $(TOOLS)/package.json
	cd $(TOOLS) && npm install --no-audit --no-fund --save-exact aws-cdk@$(CDK_VERSION) asl-validator@$(ASL_VALIDATOR_VERSION)

validate-asl: $(CDK) ## the state machine definition against the ASL schema
	@echo "==> asl-validator statemachine/backfill.asl.json"
	$(TOOLS)/node_modules/.bin/asl-validator --json-path statemachine/backfill.asl.json

# Extra arguments for cdk, e.g. CDK_ARGS='-c bucketName=my-trail-bucket --profile audit'
# (context keys: docs/deploy.md). STACKS: which stacks (default --all).
CDK_ARGS ?=
STACKS ?= --all

synth: build-lambda $(CDK) ## CloudFormation templates into cdk.out/ (no credentials needed)
	@echo "==> cdk synth $(CDK_ARGS) (app: go run ./cmd/cdk; templates in cdk.out/)"
	$(CDK) synth --quiet $(CDK_ARGS)

diff: build-lambda $(CDK) ## what deploy would change (uses your AWS credentials)
	@echo "==> cdk diff $(STACKS) $(CDK_ARGS)"
	$(CDK) diff $(STACKS) $(CDK_ARGS)

deploy: build-lambda $(CDK) ## deploy the stacks (uses your AWS credentials; docs/deploy.md)
	@echo "==> cdk deploy $(STACKS) $(CDK_ARGS)"
	$(CDK) deploy $(STACKS) $(CDK_ARGS)

destroy: $(CDK) ## delete the stacks (a bucket the stack created and the log groups are retained)
	@echo "==> cdk destroy $(STACKS) $(CDK_ARGS)"
	$(CDK) destroy $(STACKS) $(CDK_ARGS)

clean:
	@echo "==> removing build outputs"
	rm -rf bin build cdk.out
