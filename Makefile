# The README's quick start: `make run` starts the service, `make test` runs every test.
# Both install what is missing first (scripts/setup.sh, once per change of it).
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
SETUP_STAMP := var/.setup-stamp

.PHONY: all setup configure build run experiment test bench bench-server image clean

all: build

$(SETUP_STAMP): scripts/setup.sh scripts/mnist_json_to_idx.js
	bash scripts/setup.sh
	@mkdir -p $(dir $@) && touch $@

setup: $(SETUP_STAMP)

configure: $(SETUP_STAMP)
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The service, with its embedded SQLite registry in var/ (Ctrl-C stops it cleanly).
# At the first start it trains the default model "digits" (about 2 s).
LISTEN ?= 127.0.0.1:50051
run: build
	$(BUILD_DIR)/server/bnserve --listen $(LISTEN) --registry var/bnserve.db --data_dir var/data --default_model digits

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

# The container image, built with buildah and checked with podman (no Docker engine needed).
image:
	bash docker/test-image.sh

clean:
	rm -rf $(BUILD_DIR)
