# The README's quick start: `make run` starts the service, `make test` runs every test.
# Both install what is missing first (scripts/setup.sh, once per change of it).
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
SETUP_STAMP := var/.setup-stamp

.PHONY: all setup configure build run experiment test bench bench-server bench-replicas image clean fuzz fuzz-configure test-asan soak FORCE

all: build

$(SETUP_STAMP): scripts/setup.sh scripts/mnist_json_to_idx.js \
		$(wildcard tests/onnx/package-lock.json) $(wildcard web/package-lock.json) \
		$(wildcard tests/deploy/package-lock.json)
	bash scripts/setup.sh
	@mkdir -p $(dir $@) && touch $@

setup: $(SETUP_STAMP)

# CMake configures only when the build tree has no CMakeCache.txt yet, when
# BUILD_TYPE or CMAKE_FLAGS differ from the last configure (kept in
# CONFIGURE_STAMP) or when setup ran again; a changed CMakeLists.txt is
# picked up by `cmake --build` itself. (Its "Could NOT find c-ares (missing:
# c-ares_DIR)" is harmless: the next line finds c-ares another way.)
CONFIGURE_ARGS := -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)
CONFIGURE_STAMP := $(BUILD_DIR)/.configure-args
ifeq ($(wildcard $(BUILD_DIR)/CMakeCache.txt),)
CONFIGURE_FORCE := FORCE
endif
ifneq ($(strip $(shell cat $(CONFIGURE_STAMP) 2>/dev/null)),$(strip $(CONFIGURE_ARGS)))
CONFIGURE_FORCE := FORCE
endif

$(CONFIGURE_STAMP): $(SETUP_STAMP) $(CONFIGURE_FORCE)
	cmake -S . -B $(BUILD_DIR) $(CONFIGURE_ARGS)
	@printf '%s\n' '$(subst ','\'',$(CONFIGURE_ARGS))' > $@

configure: $(CONFIGURE_STAMP)

FORCE:

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The service, with its embedded SQLite registry in var/ (Ctrl-C stops it cleanly):
# gRPC on LISTEN, the Open Inference REST routes and the dashboard
# (http://127.0.0.1:8000/) on HTTP_LISTEN.
# At the first start it trains the default model "digits" (2-6 s, see README).
LISTEN ?= 127.0.0.1:50051
HTTP_LISTEN ?= 127.0.0.1:8000
run: build
	$(BUILD_DIR)/server/bnserve --listen $(LISTEN) --http_listen $(HTTP_LISTEN) --registry var/bnserve.db --data_dir var/data --default_model digits \
	  --web_root $(BUILD_DIR)/web/dist

experiment: build
	$(BUILD_DIR)/core/bnserve-experiment

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

bench: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bnserve_bench
	$(BUILD_DIR)/bench/bnserve_bench

# What the server adds: a training job against core Train(), registering a model.
bench-server: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bnserve_server_bench
	BNSERVE_DATA_DIR=$(CURDIR)/var/data $(BUILD_DIR)/bench/bnserve_server_bench

# Soak (not in CI): Predict load plus a stream of small training jobs for
# SOAK_MINUTES, the server's RSS sampled from /proc and its growth per
# minute after the warm-up printed (bench/soak.py).
SOAK_MINUTES ?= 3
soak: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bnserve bnserve_python
	/usr/bin/python3 bench/soak.py $(BUILD_DIR)/server/bnserve $(BUILD_DIR)/python $(CURDIR)/var/data $(SOAK_MINUTES)

# Predict and job throughput of 1-3 replicas on one PostgreSQL registry (docs/SCALING.md).
bench-replicas: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target bnserve bnctl
	bash bench/replicas.sh $(BUILD_DIR)

# The container image, built with buildah and checked with podman (no Docker engine needed).
image:
	bash docker/test-image.sh

clean:
	rm -rf $(BUILD_DIR)

# The libFuzzer targets (fuzz/), built with clang-14, ASan and UBSan in
# FUZZ_BUILD_DIR, each run for FUZZ_SECONDS on its committed seed corpus
# (CI: a short smoke run; `make fuzz FUZZ_SECONDS=600` for a real one).
# `make test-asan` builds the core and server tests in the same directory,
# from the same sanitized objects, and runs them: any ASan or UBSan report
# fails the test it happens in (halt_on_error, abort_on_error).
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := idx_reader import_model train_request v2_rest
ASAN_TEST_LABELS ?= core server
ASAN_EMPTY :=
ASAN_SPACE := $(ASAN_EMPTY) $(ASAN_EMPTY)
# Leaks in libraries the project did not write are suppressed in
# fuzz/lsan.supp (each with its reason); LSan needs an absolute path.
SANITIZER_ENV := ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
fuzz-configure: setup
	bash scripts/setup_fuzz.sh
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
	  -DBNSERVE_FUZZ=ON -DBNSERVE_BUILD_TESTS=ON -DBNSERVE_BUILD_BENCH=OFF -DBNSERVE_BUILD_WEB=OFF
fuzz: fuzz-configure
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target $(FUZZ_TARGETS:%=%_fuzzer)
	bash scripts/run_fuzzers.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)
test-asan: fuzz-configure
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target $(ASAN_TEST_LABELS:%=bnserve_sanitized_%_tests)
	$(SANITIZER_ENV) ctest --test-dir $(FUZZ_BUILD_DIR) \
	  -L '^($(subst $(ASAN_SPACE),|,$(strip $(ASAN_TEST_LABELS))))$$' --output-on-failure -j $(JOBS)
