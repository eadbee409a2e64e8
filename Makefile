# Eventhub's commands. `make run` and `make test` are the two set-up commands of the README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-postgres bench bench-overview bench-backtest chaos fuzz lint

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

run: $(VENV)/.installed
	$(PY) manage.py migrate --no-input
	$(PY) manage.py collectstatic --no-input --verbosity 0
	$(PY) manage.py bootstrap_admin
	$(PY) -m eventhub.processes start -f Procfile

# The whole suite, on SQLite and then on PostgreSQL; both run even if the first fails.
test: $(VENV)/.installed
	bash tests/services.sh
	@status=0; \
	$(MAKE) --no-print-directory test-sqlite || status=1; \
	$(MAKE) --no-print-directory test-postgres || status=1; \
	exit $$status

test-sqlite:
	@echo "== test suite on SQLite"
	DATABASE_URL=sqlite:///$(CURDIR)/var/test.sqlite3 $(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres:
	@echo "== test suite on PostgreSQL"
	DATABASE_URL=$(TEST_POSTGRES_URL) $(VENV)/bin/pytest $(PYTEST_ARGS)

fuzz: $(VENV)/.installed
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(VENV)/bin/pytest -s tests/test_api_fuzz.py

# Throughput, latency and memory against a fresh eh_bench database (bench/README.md). BENCH_QUICK=1 for a short run.
bench: $(VENV)/.installed
	bash tests/services.sh
	$(PY) bench/run.py

# Faults: its own PostgreSQL, RabbitMQ and NATS on other ports, listeners killed, brokers and PostgreSQL restarted;
# exit 1 on a lost or doubled message (README: "Fault runs"). CHAOS_N (3000) messages per broker.
chaos: $(VENV)/.installed
	$(PY) bench/chaos.py

# The overview page's time with a million stored messages (within a week, then over 30 days), cold and warm, in a
# fresh eh_bench_overview database (bench/README.md). BENCH_OVERVIEW_DAYS=7 for the first case alone.
bench-overview: $(VENV)/.installed
	bash tests/services.sh
	$(PY) bench/overview.py

# Backtest speed over 100,000 stored messages, against a fresh eh_bench_backtest database (bench/README.md).
bench-backtest: $(VENV)/.installed
	bash tests/services.sh
	$(PY) bench/backtest.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
