# Every target is a thin call; the README names them. `make test` and `make demo` create what they need.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

export PREFECT_HOME ?= $(CURDIR)/.prefect-home
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: venv test lint typecheck unit demo bench scale-test fmt clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy runbook tasks kubeops flows intake sandbox

# The README's test command: lint, types, then the whole suite (pytest's exit 5, "no tests", fails).
test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest tests/runbook --ignore=tests/runbook/store $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m sandbox.demo

bench: venv
	$(BIN)/python -m bench

# The production topology on one machine (PostgreSQL, Redis, 2 Prefect APIs + services, 2 warm
# respond runners, a worker, 2 intakes, the world), one process killed per incident; needs redis-server.
scale-test: venv
	$(BIN)/python -m bench.scale --results bench/RESULTS.md

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .prefect-home .mypy_cache .ruff_cache build *.egg-info
