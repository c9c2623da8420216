# gpnn: every command a newcomer needs. `make demo` and `make test` are the README's two.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch (for the torch search backend and its tests).
TORCH ?= torch==2.13.0

.PHONY: install demo run test lint format bench serve worker clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,s3]' '$(TORCH)'
	touch $@

demo: install  ## The main job on embedded defaults: service, queue, worker, local store.
	$(BIN)/gpnn demo --samples 3 --out gpnn-out

run: demo

test: install lint  ## Lint, then the whole test suite (starts its own Redis and S3 servers).
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## Speed, memory and quality tables (see docs/performance.md).
	$(BIN)/python bench/engine.py --mode both --images 16 --out build/bench
	$(BIN)/python bench/scaling.py

serve: install  ## The whole product on this machine, or only the API when REDIS_URL is set.
	$(BIN)/gpnn serve

worker: install  ## Workers for a shared Redis and store (REDIS_URL, STORE_URL).
	$(BIN)/gpnn worker

clean:
	rm -rf $(VENV) gpnn-out .pytest_cache .ruff_cache
