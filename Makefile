# umrisk: `make help` lists the targets.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    ?= demo-data
MEMBERS ?= 20000
PORT    ?= 3000

.DEFAULT_GOAL := help

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the locked dependencies and umrisk

demo: $(STAMP) ## Main job: generate, validate, build features, train and promote every model, then serve them (PORT=3000)
	$(BIN)/umrisk demo --out $(DEMO) --members $(MEMBERS) --port $(PORT)

/usr/bin/chromium:
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

chromium: /usr/bin/chromium ## Install Debian's Chromium for the browser tests (tests/ui) when it is missing

test: $(STAMP) /usr/bin/chromium ## Run lint and the test suite
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n 2

bench: $(STAMP) ## Run the benchmarks (prints figures; slow)
	$(BIN)/python -m bench

lock: ## Re-resolve requirements.lock from pyproject.toml (needs uv)
	uv pip compile --python-version 3.11 pyproject.toml --extra dev -o requirements.lock

clean: ## Remove the virtual environment and generated data
	rm -rf $(VENV) $(DEMO) .pytest_cache mlflow.db mlruns reports

.PHONY: help install demo test bench lock clean chromium
