# Two commands on a fresh machine with Python 3.11+ and pip:
#   make demo   installs meshstyle and stylizes the bundled mesh with the bundled painting
#   make test   installs meshstyle with its test extra and runs lint and the test suites
#               (everything, the slow optimisation tests included: this is what CI runs)
#   make test-fast   the same without the tests marked slow, for quick loops
#   make cuda-check  the CUDA kernels as numba-cuda builds them, no GPU needed: compiled for
#                    sm_90 and sm_80 (bench/ptx_check.py), and the simulator suite (in its
#                    own venv, $(CUDA_VENV), with about 1 GB of CUDA compiler wheels)
# The torch spec defaults to the CPU build used here; override it, e.g.
#   make demo TORCH="torch>=2.1"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
CUDA_VENV ?= .venv-cuda
OUT ?= out

.PHONY: demo test test-fast install install-test lint assets readme-picture bench cuda-check clean

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

cuda-check:
	$(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_VENV)/bin/python -m pip install -q "$(TORCH)"
	$(CUDA_VENV)/bin/python -m pip install -q -e ".[cuda,test]" "numba-cuda[cu12]"
	$(CUDA_VENV)/bin/python bench/ptx_check.py --cc 9.0
	$(CUDA_VENV)/bin/python bench/ptx_check.py --cc 8.0
	NUMBA_ENABLE_CUDASIM=1 $(CUDA_VENV)/bin/python -m pytest -q -m cudasim

clean:
	rm -rf $(VENV) $(CUDA_VENV) build *.egg-info .pytest_cache .ruff_cache
