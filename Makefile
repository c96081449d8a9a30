# The two commands a newcomer needs: `make demo` and `make test`.
# Both first make sure MariaDB, Redis and RabbitMQ listen on their usual
# ports, starting them (and installing their Debian packages) if not.

GO ?= go
PKGS = ./...

.PHONY: all test demo up services check fmt vet tidy-check bench bench-e2e tf-fmt clean

all: test

services:
	$(GO) run ./local/cmd/services ensure

# E2E is the end-to-end package. Its functions run as processes it builds
# without -race, so -race there would only check the test's own harness,
# at a cost in CPU: it runs without -race, beside the other packages,
# which run with it (go test runs packages side by side anyway; one
# invocation cannot mix the two). Its output follows theirs.
E2E = ./local/e2e

## test: every unit and integration test (all but E2E under -race), plus the static checks.
test: services check tf-check
	@mkdir -p .tmp; \
	$(GO) test -count=1 -timeout 20m $(E2E) > .tmp/e2e-test.log 2>&1 & e2e=$$!; \
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v '/local/e2e$$'); race=$$?; \
	wait $$e2e; e2erc=$$?; cat .tmp/e2e-test.log; \
	if [ $$race -ne 0 ] || [ $$e2erc -ne 0 ]; then exit 1; fi

## demo: bring the stack up, run every report type end to end, print the results.
demo: services
	$(GO) run ./local/cmd/stack demo

## up: the local stack in the foreground until Ctrl-C.
up: services
	$(GO) run ./local/cmd/stack up

## check: formatting, vet and a tidy go.mod.
check: fmt vet tidy-check

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

tidy-check:
	@cp go.mod .go.mod.bak && cp go.sum .go.sum.bak; \
	$(GO) mod tidy >/dev/null 2>&1; \
	if ! cmp -s go.mod .go.mod.bak || ! cmp -s go.sum .go.sum.bak; then \
	  mv .go.mod.bak go.mod; mv .go.sum.bak go.sum; echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; fi; \
	rm -f .go.mod.bak .go.sum.bak

## bench: the join benchmarks, then the end-to-end scale benchmark (200k withdrawals, ~1 min).
bench: services
	$(GO) test -run '^$$' -bench . -benchmem ./shared/...
	$(GO) run ./local/cmd/bench

## bench-e2e: only the end-to-end benchmark; pass flags with ARGS="-withdrawals 1000000".
bench-e2e: services
	$(GO) run ./local/cmd/bench $(ARGS)

## tf-fmt: rewrite terraform/ in canonical format (make test fails on unformatted files via tf-check).
tf-fmt:
	terraform -chdir=terraform fmt -recursive

## tf-check: Terraform's own checks of terraform/ (fmt, validate, terraform test with mock providers); prints SKIPPED without terraform or providers.
.PHONY: tf-check
tf-check:
	sh local/terraform-check.sh

clean:
	rm -rf .tmp
