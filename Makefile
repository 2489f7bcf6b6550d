# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate seed worker beat clean audit lock bench

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Development server on SQLite with eager tasks: API, admin, docs and gateway simulators on :8000.
run: $(STAMP)
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py seed_demo
	DEBUG=true $(BIN)/python manage.py webpush_keys --write .env.webpush
	set -a; [ ! -f .env.webpush ] || . ./.env.webpush; set +a; \
	DEBUG=true $(BIN)/python manage.py runserver 127.0.0.1:8000

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || (echo "run: $(BIN)/ruff format ." && exit 1)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# SmartPay side by side with a bare Django + DRF reference on PostgreSQL and Redis of this machine
# (bench/README.md); writes bench/results/latest.md. BENCH_ARGS: e.g. --quick, --rounds 5, --strict.
bench: $(STAMP)
	$(BIN)/python -m bench.perf $(BENCH_ARGS)

worker: $(STAMP)
	$(BIN)/celery -A smartpay worker --loglevel=INFO

beat: $(STAMP)
	$(BIN)/celery -A smartpay beat --loglevel=INFO

# Known vulnerabilities in every locked package (needs the internet: PyPI's advisory database, which
# this project's CI machines cannot reach; run it where they can, e.g. a scheduled job with internet).
audit: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --require-hashes --disable-pip --requirement requirements.lock
	$(BIN)/pip-audit --requirement requirements-dev.txt

# requirements.lock: every runtime package with hashes, from requirements.txt (run after changing it).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file requirements.lock requirements.txt

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
