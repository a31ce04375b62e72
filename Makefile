# Weft's build. `make demo` runs the local mesh; `make test` runs every test.
GO        ?= go
BIN       := $(CURDIR)/bin
FUZZTIME  ?= 10s
STATICCHECK_VERSION := v0.8.2
# Release builds: static (Go's resolver, no libc) and without gRPC's x/net/trace, whose
# html/template use keeps every exported method alive: weft-proxy's idle RSS drops ~4 MB
# (cmd/weft-proxy package comment; TestLeanBuildLinksNoTemplates).
BUILD     := CGO_ENABLED=0 $(GO) build -tags grpcnotrace

.PHONY: all build demo test test-unit fuzz lint clean

all: build

## build: compile every command into ./bin
build:
	$(BUILD) -o $(BIN)/ ./cmd/...

## demo: run bookinfo on a local mesh (weftd, gateway, sidecars; Ctrl-C stops it)
demo: build
	$(BIN)/weft demo $(DEMO_FLAGS)

## test: all tests, then every fuzz target briefly
test: test-unit fuzz

test-unit:
	$(GO) test -count=1 ./...

## fuzz: run each Fuzz target for FUZZTIME
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

## lint: go vet and staticcheck
lint: $(BIN)/staticcheck
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

clean:
	rm -rf $(BIN)

## bench: every benchmark scenario, writes bench/results/ and BENCHMARKS.md (bench/README.md); not part of test
## bench-quick: scenario 1 only, short runs (about a minute)
BENCH_BUILD = bench/install-peers.sh && $(BUILD) -o $(BIN)/ ./cmd/weft-proxy ./cmd/weftd ./bench/cmd/...
.PHONY: bench bench-quick
bench:
	$(BENCH_BUILD)
	taskset -c 1 $(BIN)/weft-bench $(BENCHFLAGS)

bench-quick:
	$(BENCH_BUILD)
	taskset -c 1 $(BIN)/weft-bench -quick $(BENCHFLAGS)
