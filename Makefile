# FeedbackHub: `make run` starts everything, `make test` runs the whole suite on the real services.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
export PORT

.PHONY: install run serve migrate load test lint bench browser-deps services stop clean-data

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# torch first, pinned: this pin resolves to a CPU-only build; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)
	@$(PY) -m feedbackhub.devstack env

## Start PostgreSQL+pgvector, Redis, migrate, load demo data once, then web + worker + beat (Ctrl-C stops all).
run: install
	$(PY) manage.py start --port $(PORT)

## Production web server (docs/deploy.md): gunicorn + WhiteNoise, DEBUG off. With DATABASE_URL/REDIS_URL set nothing
## embedded starts and migrations are their own step (`make migrate`); workers and beat run as their own processes.
serve: install
	DEBUG=0 ALLOWED_HOSTS=$${ALLOWED_HOSTS:-localhost,127.0.0.1} $(PY) manage.py serve

migrate: install
	$(PY) manage.py migrate

## The load test against the production server on this machine (bench/load_test.py, results in docs/benchmarks.md).
load: install
	$(PY) -m bench.run --only load

## Chromium for the browser tests (Debian's package; a browser download is impossible offline).
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

## The whole suite: lint, Django checks, migrations, then pytest (exit 5 "no tests" counts as a failure).
test: install browser-deps lint
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: install
	$(PY) -m bench.run

services: install
	$(PY) -m feedbackhub.devstack up

stop:
	$(PY) -m feedbackhub.devstack down

## Remove the embedded services' data (the database, Redis, uploads).
clean-data:
	$(PY) -m feedbackhub.devstack reset
