# The two commands of the README: `make run` and `make test`. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test smoke lint format bench clean-data messages

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

messages: $(STAMP)
	@$(PY) scripts/compilemessages.py

run: $(STAMP) messages
	$(PY) scripts/run.py

test: $(STAMP) messages
	$(PY) -m pytest

smoke: $(STAMP) messages
	$(PY) -m pytest -m smoke

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmarks reseed databases whose names contain "bench" or "pages"; see bench/README.md.
bench: $(STAMP)
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/riskops_bench} $(PY) bench/engine.py
	DATABASE_URL=$${PAGES_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/riskops_pages} $(PY) bench/pages.py
	DATABASE_URL=$${APPEALS_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/riskops_appeals_bench} $(PY) bench/appeals.py

# Stops the embedded PostgreSQL and deletes var/ (the embedded database, the broker folder).
clean-data: $(STAMP)
	-$(PY) -m riskops.embedded_db stop
	rm -rf var
