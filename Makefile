# nofu — the two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps node-deps demo test bench clean

# Debian packages the tests use: a QR decoder and SVG rasterizer (to prove printed codes scan),
# and headless Chromium for the resident pages. Installed when missing and we may use apt.
APT_PACKAGES := zbar-tools librsvg2-bin chromium chromium-driver fonts-ipafont-gothic

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# The benchmark's peer. --no-deps: its metadata asks for mysqlclient and psycopg2, which it never imports.
	$(BIN)/pip install --quiet --no-deps python-accounting==2.0.0 python-dateutil six
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install$$missing (Debian) or the tests that need them will skip"; fi; \
	fi

demo: setup
	$(BIN)/nofu demo $(DEMO_ARGS)

# playwright-core drives the system Chromium in the browser tests (never a downloaded browser).
node-deps:
	@if command -v npm >/dev/null && [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then \
	  npm ci --prefix tests/browser --no-audit --no-fund --silent; fi

# Two workers (the machines have 2 cores); a test file stays on one worker.
PYTEST_ARGS ?= -n 2 --dist loadfile

test: setup system-deps node-deps
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.ledger

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
