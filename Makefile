# HaloBestie backend. Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PUBLIC_PORT ?= 3000
INTERNAL_PORT ?= 3001

# Development defaults for `make run` (a real deployment sets these in its environment).
RUN_ENV := DEBUG=$${DEBUG:-true} \
	FAZPASS_ENABLED=$${FAZPASS_ENABLED:-false} \
	XENDIT_ENABLED=$${XENDIT_ENABLED:-false} \
	OTP_TEST_PHONES=$${OTP_TEST_PHONES:-+6281200000001} \
	ADMIN_EMAIL=$${ADMIN_EMAIL:-admin@halobestie.local} \
	ADMIN_PASSWORD=$${ADMIN_PASSWORD:-halobestie-admin} \
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://127.0.0.1:$(PUBLIC_PORT)} \
	PUBLIC_PORT=$(PUBLIC_PORT) INTERNAL_PORT=$(INTERNAL_PORT)

.PHONY: help venv venv-dev run test soak lint lock format openapi messages migrate seed clean demo bench

help:
	@echo "make run      serve both listeners with demo data (SQLite and in-memory layer unless"
	@echo "              DATABASE_URL / VALKEY_URL are set)"
	@echo "make test     the whole suite against real PostgreSQL and Valkey/Redis"
	@echo "make soak     the slow reliability runs (long fuzzing; tests marked soak, see docs/RELIABILITY.md)"
	@echo "make lint     ruff, import-linter contracts (pyproject.toml); hadolint, compose config, the"
	@echo "              Kubernetes overlays (kubectl kustomize + schema + resources), alert rules"
	@echo "              (promtool), dashboard, lock file"
	@echo "make lock     rewrite requirements.lock (hashes) from requirements.txt"
	@echo "make openapi  write docs/openapi.yaml"
	@echo "make messages update the Indonesian catalogue locale/id (new texts, then translate them; compiles .mo)"
	@echo "make bench    by hand, never in CI: the performance harness (bench/, docs/PERFORMANCE.md);"
	@echo "              ~20 min, BENCH_QUICK=1 for ~3 min; its own database halobestie_bench"
	@echo "make demo     against a running \`make run\`: a scripted client and mitra pay, chat, end, rate"

# One stamp per requirement file: `make run` installs only what serving needs; `make test` and
# `make lint` add the test and lint tools, `make bench` the bench tools.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: requirements-bench.txt requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-bench.txt
	@touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-run
venv-dev: $(VENV)/.installed-dev

run: venv
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	$(RUN_ENV) $(PY) manage.py seed --demo
	@echo ""
	@echo "Public API:      http://127.0.0.1:$(PUBLIC_PORT)/api/v1/  (WebSocket ws://127.0.0.1:$(PUBLIC_PORT)/ws/v1/)"
	@echo "Control center:  http://127.0.0.1:$(INTERNAL_PORT)/admin/   API docs: http://127.0.0.1:$(INTERNAL_PORT)/api/docs/"
	@echo ""
	$(RUN_ENV) $(PY) scripts/run_all.py --public-port $(PUBLIC_PORT) --internal-port $(INTERNAL_PORT)

# Two pytest-xdist workers (each its own test database `<name>_gw0`/`_gw1` and Valkey prefix), one
# test file at a time each: most tests wait on server processes, sockets and Postgres rather than
# on the CPU. Files in collection order (tests/conftest.py starts the longest first).
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: venv-dev
	$(PY) scripts/with_services.py -- $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

soak: venv-dev
	$(PY) scripts/with_services.py -- $(PY) -m pytest -m soak tests/reliability $(PYTEST_ARGS)

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile
	sh -n docker/entrypoint.sh
	@if command -v docker-compose >/dev/null; then \
		for file in compose/*.yml; do \
			echo "docker-compose -f $$file config -q"; \
			HALOBESTIE_ENV_FILE=../.env.example POSTGRES_PASSWORD=lint docker-compose -f $$file config -q || exit 1; \
		done; \
	else echo "docker-compose not installed: compose files not checked"; fi
	$(PY) scripts/check_k8s.py
	promtool check rules deploy/monitoring/rules.yml
	promtool test rules deploy/monitoring/rules.test.yml
	$(PY) scripts/check_monitoring.py
	$(PY) scripts/check_lock.py
	$(PY) scripts/messages.py check

# The image's lock file: every runtime package pinned with its hashes, resolved for the image's
# Python (3.11.14, Debian 12 x86_64/glibc 2.36); the Dockerfile installs it with --require-hashes.
lock: venv-dev
	$(VENV)/bin/uv pip compile requirements.txt --generate-hashes --python-version 3.11.14 \
		--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" \
		--no-progress --quiet --output-file requirements.lock

format: venv-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

openapi: venv-dev
	$(PY) scripts/with_services.py -- env TESTING=true $(PY) manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

# Our texts are English msgids (`gettext_lazy as _`); this adds new ones to locale/id/LC_MESSAGES/
# django.po with an empty msgstr, drops removed ones and compiles django.mo (committed). Pure
# Python (scripts/messages.py): no GNU gettext needed. Translate the empty msgstrs, run it again.
messages: venv
	$(PY) scripts/messages.py update

demo: venv
	$(PY) scripts/demo.py --base-url http://127.0.0.1:$(PUBLIC_PORT)

# By hand only (not in CI, not in `make test`): needs PostgreSQL and Valkey/Redis like `make test`,
# wrk (apt-get install wrk) and Node + npm for the beacon's Node anchor (bench/node_beacon,
# `npm ci` from its package-lock.json). BENCH_DATABASE_NAME, BENCH_VALKEY_PREFIX and BENCH_PORTS
# (e.g. 4600-4699) keep two benches on one machine apart. Results: bench/results/*.json and chat_latency.png.
bench: $(VENV)/.installed-bench
	@if command -v npm >/dev/null; then (cd bench/node_beacon && npm ci --no-audit --no-fund --loglevel=error); \
	else echo "npm not found: the Node anchor of the beacon bench is skipped"; fi
	$(PY) scripts/with_services.py -- $(PY) -m bench

migrate: venv
	$(PY) manage.py migrate --noinput

seed: venv
	$(PY) manage.py seed

clean:
	rm -rf $(VENV) var staticfiles
