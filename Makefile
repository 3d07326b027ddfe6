# The two commands of the README: `make run` and `make test`. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test smoke lint format bench clean-data messages screenshots

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

messages: $(STAMP)
	@$(PY) scripts/compilemessages.py

# `make run` serves the static files as collectstatic wrote them, gzip and brotli copies included (STATIC_COLLECTED
# in riskops/settings.py); they are collected again when the project's static files, the packages or the settings
# change (compressing plotly.min.js takes about 20 s).
STATIC_ROOT ?= static_root
$(STATIC_ROOT)/staticfiles.json: $(STAMP) $(shell find static -type f) riskops/settings.py riskops/staticfiles.py
	STATIC_COLLECTED=true $(PY) manage.py collectstatic --noinput -v 0

run: $(STAMP) messages $(STATIC_ROOT)/staticfiles.json
	STATIC_COLLECTED=true $(PY) scripts/run.py

test: $(STAMP) messages
	$(PY) -m pytest

smoke: $(STAMP) messages
	$(PY) -m pytest -m smoke

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -c pyproject.toml -r accounts appeals ingest riskops scripts manage.py --severity-level medium
	$(PY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmarks create, migrate and reseed databases of their own (names containing "bench" or "pages"), on the
# embedded PostgreSQL unless *_DATABASE_URL names one; see bench/README.md. The jobs benchmark copies the pages one.
bench: $(STAMP) messages
	DATABASE_URL=$${ENGINE_BENCH_DATABASE_URL:-} $(PY) bench/engine.py
	DATABASE_URL=$${PAGES_DATABASE_URL:-} $(PY) bench/pages.py
	DATABASE_URL=$${APPEALS_DATABASE_URL:-} $(PY) bench/appeals.py
	DATABASE_URL=$${JOBS_DATABASE_URL:-} $(PY) bench/jobs.py
	DATABASE_URL=$${INGEST_DATABASE_URL:-} $(PY) bench/ingest.py
	DATABASE_URL=$${STATIC_DATABASE_URL:-} $(PY) bench/static_weight.py
	DATABASE_URL=$${AUDIT_BENCH_DATABASE_URL:-} $(PY) -m bench.audit_chain
	DATABASE_URL=$${AUDIT_PAGE_DATABASE_URL:-} $(PY) bench/audit_page.py
	DATABASE_URL=$${ADMIN_BENCH_DATABASE_URL:-} $(PY) bench/admin.py
	DATABASE_URL=$${DASHBOARD_DATABASE_URL:-$${PAGES_DATABASE_URL:-}} $(PY) bench/dashboard.py
	DATABASE_URL=$${RULES_DATABASE_URL:-} $(PY) bench/rules.py

# docs/screenshots/: the queue, cases (frozen, cut), an appeal, the inbox and the jobs page in Chinese and English,
# from fresh demo data in a database of their own (SCREENSHOTS_DATABASE_URL, else the embedded server's
# riskops_screenshots). Needs Debian's chromium and fonts-wqy-microhei.
screenshots: $(STAMP) messages
	$(PY) scripts/screenshots.py

# Stops the embedded PostgreSQL and deletes var/ (the embedded database, the broker folder).
clean-data: $(STAMP)
	-$(PY) -m riskops.embedded_db stop
	rm -rf var
