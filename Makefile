# nofu — the two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# The benchmark's peer. --no-deps: its metadata asks for mysqlclient and psycopg2, which it never imports.
	$(BIN)/pip install --quiet --no-deps python-accounting==2.0.0 python-dateutil six
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/nofu db upgrade
	$(BIN)/nofu ledger post docs/examples/entries.json
	$(BIN)/nofu ledger trial-balance
	$(BIN)/nofu ledger verify

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.ledger

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
