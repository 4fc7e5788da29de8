# The one test command: `make test` (what CI runs, through .ci/run).
GO       ?= go
FUZZTIME ?= 10s

.PHONY: test check vet race fuzz js run bench

test: check vet race fuzz js

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 20m ./...

# A short pass of every fuzz target over network input.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDecodePublication$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzAuthenticate$$' -fuzztime=$(FUZZTIME) ./auth
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./adapters/jsonrpc
	$(GO) test -run='^$$' -fuzz='^FuzzInboxEntry$$' -fuzztime=$(FUZZTIME) ./adapters/redis
	$(GO) test -run='^$$' -fuzz='^FuzzRecoverOf$$' -fuzztime=$(FUZZTIME) .

# The JavaScript client: type check, unit tests, tests against the server, and browser
# end-to-end tests in headless Chromium (/usr/bin/chromium; they fail without it when
# CI=true, and are skipped with a message otherwise).
js:
	cd clients/js && npm ci && npm test

run:
	$(GO) run ./cmd/switchboard

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
