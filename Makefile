# Two commands matter: `make run` and `make test`. Everything else is for maintainers.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# Links in e-mails point where `make run` serves, unless PUBLIC_URL says otherwise.
PUBLIC_URL ?= http://$(HOST):$(PORT)

.PHONY: run test test-fast bench proof lint typecheck migrate lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

# Whole platform. No BROKER_URL/REDIS_URL: one embedded process (SQLite unless DATABASE_URL is
# set, in-process broker, worker and scheduler). With them: the Procfile processes via honcho.
run: export PUBLIC_URL := $(PUBLIC_URL)
run: $(VENV)/.runtime
	@$(BIN)/flask --app wsgi db upgrade
	@if [ -n "$$REDIS_URL$$BROKER_URL" ]; then \
		echo "Starting web, worker and scheduler (Procfile) at http://$(HOST):$(PORT)"; \
		HOST=$(HOST) PORT=$(PORT) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start web worker scheduler; \
	else \
		$(BIN)/python -m web --host $(HOST) --port $(PORT); \
	fi

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m bench $(BENCH_ARGS)

# The platform as production runs it, faulted, loaded, fuzzed and probed; one table (proof/).
proof: $(VENV)/.dev
	$(BIN)/python -m proof $(PROOF_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

migrate: $(VENV)/.runtime
	$(BIN)/flask --app wsgi db upgrade

lock:
	rm -rf /tmp/platform-lock && $(PYTHON) -m venv /tmp/platform-lock
	/tmp/platform-lock/bin/pip install --quiet .
	/tmp/platform-lock/bin/pip freeze --exclude practice-platform > /tmp/platform-runtime.txt
	/tmp/platform-lock/bin/pip install --quiet '.[dev]'
	/tmp/platform-lock/bin/pip freeze --exclude practice-platform > /tmp/platform-dev.txt
	{ echo "# Exact versions a fresh install gets (Python 3.11, Linux). Ranges live in pyproject.toml."; \
	  echo "# Regenerate: make lock"; cat /tmp/platform-runtime.txt; } > requirements.lock
	{ echo "# Test and lint tools, on top of the runtime pins. Regenerate: make lock"; \
	  echo "-r requirements.lock"; \
	  comm -13 <(sort /tmp/platform-runtime.txt) <(sort /tmp/platform-dev.txt); } > requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
