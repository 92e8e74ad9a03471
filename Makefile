# campaign-flow: `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-fast lint typecheck install lock clean node

install: $(STAMP)

node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent && touch $@; \
	 else echo "npm not found: the web-push-testing integration test needs Node 20 and npm" >&2; fi

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
	@# bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set, every start of the
	@# `campaign` command would otherwise compile its imports again (about 3 s each)
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

demo: install
	@$(BIN)/campaign validate campaign_graphs/
	@$(BIN)/campaign demo

lint: install
	$(BIN)/ruff check orchestrator flows tests scripts
	$(BIN)/ruff format --check orchestrator flows tests scripts
	$(BIN)/lint-imports --no-cache  # the layer and library contracts in pyproject.toml

typecheck: install
	$(BIN)/mypy orchestrator

# both cores: a test file runs on one of two workers (its module fixtures are made once)
test: install node lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile

test-fast: install
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow" -x

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
