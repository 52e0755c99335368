# minint — README command 1 is `make demo`, command 2 is `make test`.
# Both install missing host packages first (scripts/setup-host.sh, needs root).

GO       ?= go
OUT      ?= out
MININT   := $(OUT)/minint
# Tests that boot QEMU guests run only when MININT_E2E=1; `make test` sets it.
export MININT_CACHE ?= $(CURDIR)/$(OUT)/cache

.PHONY: all build setup test unit demo bench bench-deploy bench-serve fuzz pe iso qemu fmt vet clean man

all: build

setup:
	@bash scripts/setup-host.sh

build:
	@mkdir -p $(OUT)
	$(GO) build -o $(MININT) ./cmd/minint

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

# Unit tests, fuzz seed corpora and QEMU end-to-end tests, in one go test run
# so that the closing line counts everything.
test: setup build vet
	MININT_E2E=1 $(GO) test -timeout 55m -count=1 ./...

# Quick: no QEMU guests.
unit: build
	$(GO) test -count=1 ./...

# The PE alone (kernel + initramfs), cached on its inputs.
pe: setup build
	$(MININT) build -o $(OUT)/pe

# The hybrid ISO with the PE alone, and a boot of it (FIRMWARE=bios|uefi).
iso: setup build
	$(MININT) iso -o $(OUT)/minint.iso

qemu: iso
	$(MININT) qemu --iso $(OUT)/minint.iso --firmware $${FIRMWARE:-bios} --disk :64M

demo: setup build
	bash scripts/demo.sh

bench: setup build
	bash scripts/bench-wim.sh

# Fetch alone, apply alone and pipelined against a rate-limited nginx (host,
# with CPU time), the download's CPU staged vs pipelined, the chunk hash
# (BLAKE3, own code against the library) under qemu-x86_64 with a CPU
# without AVX2 as a PE under TCG has, then the guest
# benchmark: a Debian image deployed in QEMU from the medium and from nginx
# with 1 and 2 vCPUs, against the read and apply floors of the same guest.
bench-deploy: setup build
	$(GO) test ./pe -run '^$$' -bench DeployPipeline -benchtime 5x -cpu 1,2 -v
	$(GO) test ./pe/fetch -run '^$$' -bench Transfer -benchtime 5x -cpu 1 -v
	$(GO) test -c -o $(OUT)/blake3.test ./internal/blake3
	qemu-x86_64 -cpu qemu64 $(OUT)/blake3.test -test.run '^$$' -test.bench Sum256 -test.benchtime 5x
	MININT=$(MININT) bash scripts/bench-deploy.sh

# 1,000 simulated machines post events to `minint serve` on 127.0.0.1.
bench-serve:
	MININT_LOAD_EVENTS=$(or $(LOAD_EVENTS),30) $(GO) test ./serve -run '^TestLoad$$' -count=1 -v

# Every fuzz target for FUZZTIME (default 20s) each.
fuzz:
	bash scripts/fuzz.sh

# Man pages for every command, from the same definitions as --help.
man: build
	$(MININT) man $(OUT)/man

clean:
	rm -rf $(OUT)
