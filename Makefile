# Two commands on a fresh machine with Python 3.11+ and pip:
#   make demo   installs meshstyle and stylizes the bundled mesh with the bundled painting
#   make test   installs meshstyle with its test extra and runs lint and the test suites
#               (everything, the slow optimisation tests included: this is what CI runs)
#   make test-fast   the same without the tests marked slow, for quick loops
# The torch spec defaults to the CPU build used here; override it, e.g.
#   make demo TORCH="torch>=2.1"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
OUT ?= out

.PHONY: demo test test-fast install install-test lint assets readme-picture bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"

demo: install
	$(BIN)/meshstyle stylize assets/teapot.obj assets/swirls.png -o $(OUT)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q -m "not cudasim"
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cudasim

test-fast: lint
	$(BIN)/python -m pytest -q -m "not cudasim and not slow"
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m "cudasim and not slow"

assets: install
	$(BIN)/python assets/make_assets.py assets

# The README's picture: the demo's before/after sheet.
readme-picture: demo
	cp $(OUT)/teapot__swirls/before_after.png assets/readme_sheet.png

bench: install
	$(BIN)/python bench/raster.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
