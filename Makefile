# podgate: a thin wrapper around meson. Every target works as root on a
# fresh Debian 12 machine from a clean checkout: `make deps` installs what
# is missing through apt-get.

BUILD      ?= build
TESTBUILD  ?= build-test
STATE      ?= state
PYTHON     ?= /usr/bin/python3

# Build and test dependencies (Debian 12 package names).
PKGS_BUILD := build-essential pkg-config meson ninja-build \
	libssh-dev libuv1-dev libssl-dev libmsgpack-dev libncurses-dev \
	libvterm-dev libyaml-dev libhttp-parser-dev libjansson-dev libwslay-dev libcurl4-openssl-dev
PKGS_TEST  := clang python3-pytest python3-pytest-timeout python3-paramiko python3-msgpack python3-yaml python3-cryptography openssh-client tmux procps python3-websockets openssl asciinema systemd vim-tiny curl strace
# Test servers from npm (an S3-compatible object store for the storage tests).
NPM_TEST   := s3rver@3.7.1

# Benchmark contenders and tools.
PKGS_BENCH := openssh-server ttyrec tlog asciinema hyperfine python3-paramiko python3-websockets python3-asyncssh

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps deps-test build run test bench fuzz clean image

all: build

# Install the missing packages; `apt-get update` only when something is missing.
deps:
	@./tests/install-deps.sh $(PKGS_BUILD)

deps-test:
	@./tests/install-deps.sh $(PKGS_BUILD) $(PKGS_TEST)
	@./tests/install-npm.sh $(NPM_TEST)
	@./tests/check-kubectl.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Db_ndebug=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Start the broker on its embedded default (127.0.0.1:2222, keys under ./state).
run: build
	./$(BUILD)/broker/podgate-broker --demo $(STATE)

$(TESTBUILD)/build.ninja:
	CC=clang meson setup $(TESTBUILD) --buildtype=debug -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false -Dfuzzing=true

# Warnings as errors, ASan and UBSan; unit, integration and fuzz smoke suites.
test: deps-test $(TESTBUILD)/build.ninja
	ninja -C $(TESTBUILD)
	PYTHON=$(PYTHON) ./tests/run-tests.sh $(TESTBUILD)

# The container image, with podman or docker; exits 2 when neither engine works.
image:
	@./container/build-image.sh

# Run every libFuzzer harness for SECONDS each (default 60), corpus replay first.
fuzz: deps-test $(TESTBUILD)/build.ninja
	ninja -C $(TESTBUILD)
	SECONDS_FUZZ=$(or $(SECONDS),60) FUZZ_SEED=0 meson test -C $(TESTBUILD) --suite fuzz \
		--timeout-multiplier 0 --print-errorlogs

bench: build
	@./tests/install-deps.sh $(PKGS_BENCH)
	$(PYTHON) tests/bench/bench.py $(BUILD) $(if $(QUICK),--quick)

clean:
	rm -rf $(BUILD) $(TESTBUILD)
