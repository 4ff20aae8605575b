# The two commands in the README: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint run bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rankbot demo

lint: $(STAMP)
	$(BIN)/ruff check bot digests storage tests benchmarks
	$(BIN)/ruff format --check bot digests storage tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

# One real pass: poll OpenRouter, then build today's day digest. (The long-running service, `rankbot run`,
# with its scheduler and publishers, is issue #3.)
run: $(STAMP)
	$(BIN)/rankbot poll
	$(BIN)/rankbot digest day

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_backfill.py
	$(BIN)/python benchmarks/bench_digest.py
	$(BIN)/python benchmarks/bench_outbox.py
	$(BIN)/python benchmarks/bench_charts.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
