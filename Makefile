# moneta: see README.md. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
MODULES := shared mnemonic rend client bench deploy
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Per-target fuzzing time in `make test`; `make fuzz FUZZTIME=1m` for longer runs.
FUZZTIME ?= 3s
TESTFLAGS ?= -count=1 -timeout 8m

.PHONY: all deps build run test vet unit fuzz bench clean

all: build

deps:
	@scripts/deps.sh

build:
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/mnemonic ./mnemonic/cmd/mnemonic
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/rend ./rend/cmd/rend
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/mcload ./bench/cmd/mcload

run: deps build
	@scripts/run.sh

vet:
	@for m in $(MODULES); do echo "go vet ./$$m/..."; (cd $$m && $(GO) vet ./...) || exit 1; done

# Tests open thousands of sockets: raise the soft open-files limit to the hard one.
unit:
	@ulimit -n $$(ulimit -Hn); \
	pkgs=$$(for m in $(MODULES); do echo ./$$m/...; done); \
	echo "go test $(TESTFLAGS) $$pkgs"; \
	$(GO) test $(TESTFLAGS) $$pkgs

fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

test: deps build vet unit fuzz

bench:
	@echo "see bench/README.md for the load scenarios"
	$(GO) test -run='^$$' -bench=. -benchmem ./shared/...

clean:
	rm -rf bin var
