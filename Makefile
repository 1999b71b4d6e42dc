# uzram front end. `make run` and `make test` install missing Debian packages first.
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)
CMAKE ?= cmake

PHONY_TESTS = test-dev test-lint test-asan test-tsan test-gcc test-fuzz test-install
.PHONY: all deps deps-bench build run test $(PHONY_TESTS) \
        stress test-swap bench install clean

all: build

deps:
	@scripts/install-deps.sh core

deps-bench:
	@scripts/install-deps.sh core bench

build: deps
	$(CMAKE) --preset dev >/dev/null
	$(CMAKE) --build build/dev -j $(JOBS)

build/release/bench/uzram-bench: deps-bench
	$(CMAKE) --preset release >/dev/null
	$(CMAKE) --build build/release -j $(JOBS)

# The main job: `uzram serve` on defaults (a 1 GiB lz4 store; NBD socket and control socket
# under $XDG_RUNTIME_DIR/uzram or ./run/uzram). Prints the NBD URI and an example command
# per client; Ctrl-C stops it.
run: deps
	$(CMAKE) --preset release >/dev/null
	$(CMAKE) --build build/release -j $(JOBS) --target uzram-cli
	build/release/src/cli/uzram serve --size 1G --algo lz4

# Every test: dev (clang debug + lock-order checker, model checking), lint (clang-format
# and clang-tidy), ASan+UBSan (clang),
# TSan, GCC with ASan+UBSan, a short fuzz run, and an install + pkg-config build of a C
# program.
test: deps
	@scripts/run-tests.sh

test-dev test-lint test-asan test-tsan test-gcc test-fuzz test-install: deps
	@scripts/run-tests.sh $(@:test-%=%)

# Swap on uzram with a real kernel (Debian's linux-image-amd64 under qemu -accel tcg, a
# busybox initramfs): tests/swap/swap.sh in each variant (scripts/test-swap.sh), 3-12
# minutes in all on 2 vCPUs, so not in `make test` (docs/uzram-serve.md#swap). Installs
# the `swap` package group.
test-swap: deps
	@scripts/install-deps.sh swap
	$(CMAKE) --preset dev >/dev/null
	$(CMAKE) --build build/dev -j $(JOBS) --target uzram-cli
	@scripts/test-swap.sh build/dev/src/cli/uzram

# The concurrency stress test for minutes (default 2 per configuration) under TSan:
#   make stress STRESS_MS=600000 STRESS_THREADS=8
STRESS_MS ?= 120000
STRESS_THREADS ?= 4
stress: deps
	$(CMAKE) --preset tsan >/dev/null
	$(CMAKE) --build build/tsan -j $(JOBS) --target concurrency_test
	UZRAM_STRESS_MS=$(STRESS_MS) UZRAM_STRESS_THREADS=$(STRESS_THREADS) build/tsan/tests/stress/concurrency_test

bench: build/release/bench/uzram-bench
	scripts/bench.sh

install: deps
	$(CMAKE) --preset release -DCMAKE_INSTALL_PREFIX=$(abspath $(PREFIX)) >/dev/null
	$(CMAKE) --build build/release -j $(JOBS)
	$(CMAKE) --install build/release

clean:
	rm -rf build
