# Dashtam: `make run` serves the embedded default; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help venv install install-dev run migrate demo worker test test-embedded schemathesis lint check-deploy bench bench-ci clean

help:
	@echo "make run    - install, migrate, load demo data, serve http://$(HOST):$(PORT) with a Celery worker+beat"
	@echo "make test   - install test tools and run the whole suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)"
	@echo "make lint   - ruff, bandit, makemigrations --check"
	@echo "make schemathesis - the OpenAPI schema against a live server (needs DATABASE_URL=postgres://..., REDIS_URL)"
	@echo "make bench  - benchmarks in the production configuration (see docs/performance.md)"

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

venv: $(VENV)/bin/python

$(VENV)/.installed-base: requirements/base.txt requirements/prod.txt | venv
	$(PIP) install --quiet -r requirements/prod.txt
	@touch $@

$(VENV)/.installed-dev: requirements/base.txt requirements/dev.txt | venv
	$(PIP) install --quiet -r requirements/dev.txt
	@touch $@

install: $(VENV)/.installed-base
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo_data

# The embedded default: SQLite, local-memory cache, and one Celery worker with
# beat on kombu's filesystem transport, stopped together with the server.
run: install
	@$(PY) manage.py migrate --noinput
	@$(PY) manage.py load_demo_data
	@DEV_SERVER_URL=http://$(HOST):$(PORT) exec $(PY) manage.py run_embedded $(HOST):$(PORT)

worker: install
	DJANGO_ENV_DEFAULT=development $(VENV)/bin/celery -A dashtam worker --beat --pool=solo --loglevel=INFO

test: install-dev
	DJANGO_ENV=test $(VENV)/bin/pytest $(PYTEST_ARGS)

# The suite on the embedded default even when the shell has DATABASE_URL/REDIS_URL set.
test-embedded: install-dev
	env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL DJANGO_ENV=test $(VENV)/bin/pytest $(PYTEST_ARGS)

# Schemathesis (every phase, every check) against gunicorn on PostgreSQL + Redis, with a
# database of its own; see .ci/schemathesis.
schemathesis: install install-dev
	bash .ci/schemathesis

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/bandit -q -r dashtam accounts sessions_mgmt providers audit -x '*/migrations/*' -ll
	DJANGO_ENV=test $(PY) manage.py makemigrations --check --dry-run

bench: install-dev
	$(PY) bench/run.py

bench-ci: install-dev
	$(PY) bench/run.py --short

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
