# Sutradhar: two commands on a fresh machine.
#   make demo   installs what it needs into .venv and runs `sutradhar up --demo`
#   make test   installs what the tests need (Debian packages too) and runs the suite
#   make install  the environment alone

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test lint proto system-deps bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[mesh,dev]'
	@touch $@

demo: install
	$(VENV)/bin/sutradhar up --demo

system-deps:
	bash scripts/install-system-deps.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/buf lint
	$(PY) scripts/typecheck.py

test: install system-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

proto: install
	$(PY) scripts/genproto.py
	@# the TypeScript SDK's types and stubs from the same protos (sdk/typescript/src/gen, decision 0018)
	@if command -v npm >/dev/null 2>&1; then \
	  cd sdk/typescript && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; } && npm run --silent generate; \
	else echo "npm is not installed: sdk/typescript/src/gen not regenerated (scripts/install-system-deps.sh installs it)"; fi

bench: install
	$(PY) -m pip install -q -e '.[mesh,dev,bench]'
	@command -v nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx-light; }
	$(PY) bench/router.py
	$(PY) bench/health.py
	$(PY) bench/scheduler.py
	$(PY) bench/autoscale.py
	$(PY) bench/container_scale.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
