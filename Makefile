# Dashtam: `make run` serves the embedded default; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# This checkout's development and test secrets (.dev-secrets.json, git-ignored): generated once,
# before anything loads the settings; kept afterwards. Production reads the environment instead.
DEV_SECRETS := $(PY) manage.py init_dev_secrets

.PHONY: help venv install install-dev dev-secrets run migrate demo worker test test-embedded schemathesis lint check-deploy bench bench-ci clean \
	install-docs docs docs-build openapi openapi-check docs-screenshots

help:
	@echo "make run    - install, migrate, load demo data, serve http://$(HOST):$(PORT) with a Celery worker+beat"
	@echo "make test   - install test tools and run the whole suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)"
	@echo "make lint   - ruff, bandit, makemigrations --check"
	@echo "make schemathesis - the OpenAPI schema against a live server (needs DATABASE_URL=postgres://..., REDIS_URL)"
	@echo "make docs   - serve the documentation site on http://127.0.0.1:8001 (make docs-build: strict build into site/)"
	@echo "make bench  - benchmarks in the production configuration, beside a plain Django + DRF + simplejwt peer (docs/performance.md)"

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

$(VENV)/.installed-docs: requirements/base.txt requirements/dev.txt requirements/docs.txt | venv
	$(PIP) install --quiet -r requirements/docs.txt
	@touch $@

install: $(VENV)/.installed-base
install-dev: $(VENV)/.installed-dev
install-docs: $(VENV)/.installed-docs

dev-secrets: install
	$(DEV_SECRETS)

migrate: install
	@$(DEV_SECRETS)
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo_data

# The embedded default: SQLite, local-memory cache, and one Celery worker with
# beat on kombu's filesystem transport, stopped together with the server.
run: install
	@$(DEV_SECRETS)
	@$(PY) manage.py migrate --noinput
	@$(PY) manage.py load_demo_data
	@DEV_SERVER_URL=http://$(HOST):$(PORT) exec $(PY) manage.py run_embedded $(HOST):$(PORT)

worker: install
	@$(DEV_SECRETS)
	DJANGO_ENV_DEFAULT=development $(VENV)/bin/celery -A dashtam worker --beat --pool=solo --loglevel=INFO

test: install-dev
	@$(DEV_SECRETS)
	DJANGO_ENV=test $(VENV)/bin/pytest $(PYTEST_ARGS)

# The suite on the embedded default even when the shell has DATABASE_URL/REDIS_URL set.
test-embedded: install-dev
	@$(DEV_SECRETS)
	env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL DJANGO_ENV=test $(VENV)/bin/pytest $(PYTEST_ARGS)

# Schemathesis (every phase, every check) against gunicorn on PostgreSQL + Redis, with a
# database of its own; see .ci/schemathesis.
schemathesis: install install-dev
	@$(DEV_SECRETS)
	bash .ci/schemathesis

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/bandit -q -r dashtam accounts sessions_mgmt providers audit -x '*/migrations/*' -ll
	@$(DEV_SECRETS)
	DJANGO_ENV=test $(PY) manage.py makemigrations --check --dry-run

# The documentation site (mkdocs.yml, docs/). `docs` serves it with live reload (diagrams
# are checked by the strict build, not on every reload); `docs-build` fails on any warning,
# broken link, or Mermaid diagram that does not render in Chromium.
DOCS_PORT ?= 8001
docs: install-docs openapi
	NO_MKDOCS_2_WARNING=1 DOCS_SKIP_DIAGRAM_CHECK=1 $(VENV)/bin/mkdocs serve --dev-addr $(HOST):$(DOCS_PORT)

docs-build: install-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# docs/openapi.yaml is the schema the API serves, generated; `openapi-check` fails when the
# committed copy is stale (CI runs it).
SCHEMA_ENV := env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL DJANGO_ENV=test
openapi: install
	@$(DEV_SECRETS)
	$(SCHEMA_ENV) $(PY) manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

openapi-check: install
	@$(DEV_SECRETS)
	@mkdir -p var
	@$(SCHEMA_ENV) $(PY) manage.py spectacular --validate --fail-on-warn --file var/openapi.check.yaml
	@diff -u docs/openapi.yaml var/openapi.check.yaml \
		|| { echo "docs/openapi.yaml is stale: run make openapi and commit it"; exit 1; }

# Screenshots in docs/img/ come from the browser tests (DOCS_SCREENSHOTS=1, and
# UPDATE_DOCS_SCREENSHOTS=1 for the audit console's, make them save).
docs-screenshots: install-dev
	@$(DEV_SECRETS)
	DOCS_SCREENSHOTS=1 UPDATE_DOCS_SCREENSHOTS=1 REQUIRE_BROWSER=1 DJANGO_ENV=test $(VENV)/bin/pytest -p no:cacheprovider -q -m browser $(PYTEST_ARGS)

bench: install-dev
	@$(DEV_SECRETS)
	$(PY) bench/run.py

bench-ci: install-dev
	@$(DEV_SECRETS)
	$(PY) bench/run.py --short

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
