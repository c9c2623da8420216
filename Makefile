# gpnn: every command a newcomer needs. `make demo` and `make test` are the README's two.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch (for the torch search backend and its tests).
TORCH ?= torch==2.13.0

.PHONY: install dev demo run test lint format bench serve worker images stack kube clean

install: $(VENV)/.installed  ## The product (library, CLI, service, S3 store); no PyTorch.

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[s3]'
	touch $@

dev: $(VENV)/.dev-installed  ## What the tests and benches need, the torch backend included.

$(VENV)/.dev-installed: $(VENV)/.installed
	command -v chromium || { apt-get update && apt-get install -y chromium chromium-driver; }  # browser tests
	command -v ip || { apt-get update && apt-get install -y iproute2; }  # network-namespace hosts
	$(BIN)/pip install --quiet -e '.[dev,s3,torch]' '$(TORCH)'
	touch $@

demo: install  ## The main job on embedded defaults: service, queue, worker, local store.
	$(BIN)/gpnn demo --samples 3 --out gpnn-out

run: demo

test: dev lint  ## Lint, then the whole test suite (starts its own Redis and S3 servers).
	$(BIN)/pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: dev  ## Speed, memory and quality tables (see docs/performance.md).
	$(BIN)/python bench/engine.py --mode both --images 16 --out build/bench
	$(BIN)/python bench/scaling.py

serve: install  ## The whole product on this machine, or only the API when REDIS_URL is set.
	$(BIN)/gpnn serve

worker: install  ## Workers for a shared Redis and store (REDIS_URL, STORE_URL).
	$(BIN)/gpnn worker

# Containers without a registry (docs/deploy.md): a Debian base from mmdebstrap, the images
# on it, then the compose stack and the Kubernetes manifests under podman, one job each.
images:  ## gpnn-base, gpnn-api, gpnn-worker, gpnn-redis, gpnn-s3 with podman; sizes, times.
	command -v podman mmdebstrap runc jq || { apt-get update && apt-get install -y podman mmdebstrap runc catatonit jq; }
	bench/containers.sh images

stack:  ## docker/compose.yaml under podman-compose; one job through the API; down.
	bench/containers.sh stack

kube: dev  ## deploy/kubernetes/base under `podman kube play`; one job; down.
	bench/containers.sh kube

clean:
	rm -rf $(VENV) gpnn-out .pytest_cache .ruff_cache
