# Two commands matter: `make run` and `make test`. Everything else is for maintainers.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# Links in e-mails point where `make run` serves, unless PUBLIC_URL says otherwise.
PUBLIC_URL ?= http://$(HOST):$(PORT)
# The app's local state (SQLite, secret key, e-mails as files) and, under `make run`, the pid file.
INSTANCE_PATH ?= $(CURDIR)/instance

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

# Whole platform, under supervisord (deploy/supervisor/): a process that dies is started again,
# with backoff; Ctrl+C or SIGTERM stops everything. No BROKER_URL/REDIS_URL: one embedded process
# (SQLite unless DATABASE_URL is set, in-process broker, worker and scheduler). With them: the
# Procfile's web, worker and scheduler.
run: export PUBLIC_URL := $(PUBLIC_URL)
run: export INSTANCE_PATH := $(INSTANCE_PATH)
run: $(VENV)/.runtime
	@$(BIN)/flask --app wsgi db upgrade
	@mkdir -p "$$INSTANCE_PATH"
	@if [ -n "$$REDIS_URL$$BROKER_URL" ]; then \
		echo "Starting web, worker and scheduler (Procfile) at http://$(HOST):$(PORT)"; \
		programs=procfile; \
	else \
		programs=embedded; \
	fi; \
	HOST=$(HOST) PORT=$(PORT) PATH="$(abspath $(BIN)):$$PATH" \
		exec $(BIN)/supervisord -c deploy/supervisor/$$programs.conf

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest tests/unit tests/core $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m bench $(BENCH_ARGS)

# The platform as production runs it, faulted, loaded, fuzzed and probed; one table (proof/).
proof: $(VENV)/.dev
	$(BIN)/python -m proof $(PROOF_ARGS)

# Style, types (mypy strict on core, web, workers, scheduler, assembly) and the architecture's
# import contracts (pyproject.toml [tool.importlinter]).
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

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
